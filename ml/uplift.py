"""Uplift: who does a play's outreach change, learned from its random holdout.

The lift mart says whether a play works on average; an uplift model says for whom. With the
holdout as a randomised control group, a two-model learner (a "T-learner") fits one model of
the chance to order within the window on the contacted customers and one on the held-out
customers, both on what the list knew at the list date (churn probability, 12-month CLV);
a customer's uplift is the difference of the two predictions: how much contacting them
changes their chance to order. Ranking by it targets the customers outreach moves, not
those who would order anyway (high churn risk and high uplift are not the same people).

The training data is `marts.outreach_first_listing_outcomes` (each customer once, at their
first listing, windows that have passed). `backtest` trains on the earlier list dates and
scores the later ones, comparing targeting by predicted uplift with random targeting on the
held-out data itself (the Qini curve; scikit-learn has none, so it is written here with
cumulative sums and tested on a hand-computed example).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, SplineTransformer

#: What the list row knew at the list date.
FEATURES = ("churn_probability", "clv_12m")
TRAINING_TABLE = "marts.outreach_first_listing_outcomes"


def training_frame(con: duckdb.DuckDBPyConnection, play: str, window_days: int = 60,
                   experiment: str | None = None) -> pd.DataFrame:
    """A play's first listings whose window has passed: features, `treated` (contacted) and `converted`."""
    where = "play = $play AND window_days = $window" + (" AND experiment = $experiment" if experiment else "")
    params = {"play": play, "window": window_days} | ({"experiment": experiment} if experiment else {})
    return con.execute(
        f"""SELECT customer_id, experiment, list_date, {", ".join(FEATURES)},
                   arm = 'contacted' AS treated, is_converted AS converted
            FROM {TRAINING_TABLE} WHERE {where} ORDER BY list_date, customer_id""",
        params,
    ).df()


def _arm_model(random_state: int) -> Pipeline:
    """P(order in the window | features) for one arm: smooth in each feature, CLV on a log scale."""
    columns = ColumnTransformer([
        ("churn_probability", make_pipeline(SimpleImputer(strategy="median"),
                                            SplineTransformer(n_knots=4, degree=2)), ["churn_probability"]),
        ("clv_12m", make_pipeline(SimpleImputer(strategy="median"), FunctionTransformer(np.log1p),
                                  SplineTransformer(n_knots=4, degree=2)), ["clv_12m"]),
    ])
    return Pipeline([("features", columns), ("model", LogisticRegression(C=1.0, max_iter=1000,
                                                                          random_state=random_state))])


@dataclass
class UpliftModel:
    """Two fitted arm models; `predict` gives P(order | contacted) − P(order | held out) per row."""

    contacted: Pipeline
    held_out: Pipeline
    features: tuple[str, ...] = FEATURES

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The predicted uplift of each row of `frame` (a fraction: 0.05 = 5 points more likely to order)."""
        x = frame[list(self.features)]
        return self.contacted.predict_proba(x)[:, 1] - self.held_out.predict_proba(x)[:, 1]


def fit_two_model(frame: pd.DataFrame, random_state: int = 0) -> UpliftModel:
    """Fit the T-learner on a `training_frame`; both arms need customers who ordered and who did not."""
    treated = frame["treated"].astype(bool)
    for name, part in (("contacted", frame[treated]), ("held out", frame[~treated])):
        if part["converted"].nunique() < 2:
            raise ValueError(f"the {name} customers all have the same outcome: no uplift can be learned yet")
    x = frame[list(FEATURES)]
    y = frame["converted"].astype(int)
    contacted = _arm_model(random_state).fit(x[treated], y[treated])
    held_out = _arm_model(random_state).fit(x[~treated], y[~treated])
    return UpliftModel(contacted=contacted, held_out=held_out)


def qini_curve(uplift, treated, converted) -> pd.DataFrame:
    """Radcliffe's Qini curve: targeting the top k customers by `uplift`, the extra orders it gains.

    For each k: gain(k) = conversions among the contacted in the top k − conversions among the
    held out in the top k × (contacted ÷ held out in the top k); `random` is the gain of
    targeting k customers at random (the overall gain × k / n). Ties keep the input order.
    """
    order = np.argsort(-np.asarray(uplift, dtype=float), kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(converted, dtype=float)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(n_c > 0, y_t - y_c * n_t / n_c, np.nan)
    k = np.arange(1, len(t) + 1)
    return pd.DataFrame({"targeted": k, "gain": gain, "random": gain[-1] * k / len(t)})


@dataclass
class Backtest:
    """Targeting the later customers by an uplift model fitted on the earlier ones, against random."""

    train_customers: int
    test_customers: int
    top_share: float
    uplift_top: float  # observed conversion lift (contacted − held out) among the top_share by predicted uplift
    uplift_all: float  # observed conversion lift among all test customers: what random targeting gets
    qini: float  # mean gap between the Qini curve and random targeting, per test customer


def backtest(frame: pd.DataFrame, train_share: float = 0.6, top_share: float = 0.3,
             random_state: int = 0) -> Backtest:
    """Fit on the first `train_share` of list dates, evaluate on the rest (time-ordered, never random)."""
    dates = np.sort(frame["list_date"].unique())
    cut = dates[min(int(len(dates) * train_share), len(dates) - 1)]
    train, test = frame[frame["list_date"] < cut], frame[frame["list_date"] >= cut]
    if train.empty or test.empty:
        raise ValueError("the backtest needs list dates before and after the cut-off")
    model = fit_two_model(train, random_state)
    predicted = model.predict(test)
    top = test.assign(p=predicted).nlargest(max(int(len(test) * top_share), 1), "p")

    def observed_lift(part: pd.DataFrame) -> float:
        t = part["treated"].astype(bool)
        return float(part.loc[t, "converted"].mean() - part.loc[~t, "converted"].mean())

    curve = qini_curve(predicted, test["treated"], test["converted"])
    return Backtest(
        train_customers=len(train), test_customers=len(test), top_share=top_share,
        uplift_top=observed_lift(top), uplift_all=observed_lift(test),
        qini=float(np.nanmean(curve["gain"] - curve["random"]) / len(test)),
    )
