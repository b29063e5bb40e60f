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


# --- the pipeline step: fit per play when the holdout is big enough, score today's customers ---

#: The outcome window the pipeline's uplift models predict (days after the list date).
WINDOW_DAYS = 60
#: First listings (window passed) each arm of a play needs before its uplift is modelled: with
#: fewer, the two arm models and the backtest's later lists are mostly noise.
MIN_PER_ARM = 1000
#: List dates a play needs: the backtest fits on earlier ones and checks on later ones.
MIN_LIST_DATES = 2
#: Per customer and play: the predicted uplift for today's scores (replaced every run).
SCORES_TABLE = "ml.uplift_scores"
#: Per play: the backtest against random targeting, and what it was fitted on.
BACKTEST_TABLE = "ml.uplift_backtest"

SCORES_COLUMNS = {
    "play": "VARCHAR", "customer_id": "VARCHAR", "as_of_date": "DATE", "window_days": "INTEGER",
    "uplift": "DOUBLE", "p_order_if_contacted": "DOUBLE", "p_order_if_held_out": "DOUBLE",
    "uplift_rank": "BIGINT", "trained_at": "TIMESTAMP",
}
BACKTEST_COLUMNS = {
    "play": "VARCHAR", "window_days": "INTEGER", "treated": "BIGINT", "held_out": "BIGINT",
    "list_dates": "BIGINT", "train_customers": "BIGINT", "test_customers": "BIGINT", "top_share": "DOUBLE",
    "uplift_top": "DOUBLE", "uplift_all": "DOUBLE", "qini": "DOUBLE", "trained_at": "TIMESTAMP",
}


class UpliftSkipped(Exception):
    """No play has enough holdout data (or no churn scores exist) to fit and score an uplift model."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class UpliftRun:
    """What `run_uplift` did: the plays scored, their backtests, the plays skipped and why."""

    backtests: pd.DataFrame
    customers: int
    skipped_plays: dict[str, str]

    def describe(self) -> str:
        parts = [f"{r.play}: top {r.top_share:.0%} by uplift {r.uplift_top:+.1%} vs {r.uplift_all:+.1%} random, "
                 f"Qini {r.qini:+.4f}" for r in self.backtests.itertuples()]
        skipped = [f"{play} skipped ({why})" for play, why in self.skipped_plays.items()]
        return "; ".join(parts + skipped)


def _table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, table]).fetchone()[0] > 0


def holdout_counts(con: duckdb.DuckDBPyConnection, window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """Per play: first listings with a passed window in each arm, and list dates (most held out first)."""
    if not _table_exists(con, TRAINING_TABLE):
        return pd.DataFrame(columns=["play", "treated", "held_out", "list_dates"])
    return con.execute(
        f"""SELECT play, count(*) FILTER (WHERE arm = 'contacted') AS treated,
                   count(*) FILTER (WHERE arm <> 'contacted') AS held_out, count(DISTINCT list_date) AS list_dates
            FROM {TRAINING_TABLE} WHERE window_days = ? GROUP BY play ORDER BY held_out DESC, treated DESC, play""",
        [window_days],
    ).df()


def not_enough_reason(counts: pd.DataFrame, min_per_arm: int = MIN_PER_ARM) -> str:
    """The "not enough holdout data yet" sentence for the play closest to enough."""
    need = f"need {min_per_arm:,} / {min_per_arm:,} over {MIN_LIST_DATES} list dates"
    if counts.empty:
        return f"not enough holdout data yet: no outreach list has a passed {WINDOW_DAYS}-day window, {need}"
    best = counts.iloc[0]
    return (f"not enough holdout data yet: {int(best.treated):,} treated / {int(best.held_out):,} held out "
            f"({best.play}, {int(best.list_dates)} list dates with a passed {WINDOW_DAYS}-day window), {need}")


def _empty(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> None:
    cols = ", ".join(f"{name} {typ}" for name, typ in columns.items())
    con.execute(f"CREATE OR REPLACE TABLE {table} ({cols})")


def run_uplift(con: duckdb.DuckDBPyConnection, window_days: int = WINDOW_DAYS, min_per_arm: int = MIN_PER_ARM,
               random_state: int = 0) -> UpliftRun:
    """Backtest and fit the uplift model of every play with enough holdout data; score today's customers.

    Replaces `ml.uplift_scores` (every customer of `ml.churn_scores` × each modelled play) and
    `ml.uplift_backtest`; both are emptied and `UpliftSkipped` raised when no play qualifies.
    """
    from datetime import UTC, datetime

    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    counts = holdout_counts(con, window_days)
    ready = counts[(counts["treated"] >= min_per_arm) & (counts["held_out"] >= min_per_arm)
                   & (counts["list_dates"] >= MIN_LIST_DATES)]
    has_scores = _table_exists(con, "ml.churn_scores") and con.execute(
        "SELECT count(*) FROM ml.churn_scores").fetchone()[0] > 0

    def skip(reason: str) -> UpliftSkipped:
        _empty(con, SCORES_TABLE, SCORES_COLUMNS)
        _empty(con, BACKTEST_TABLE, BACKTEST_COLUMNS)
        return UpliftSkipped(reason)

    if ready.empty:
        raise skip(not_enough_reason(counts, min_per_arm))
    if not has_scores:
        raise skip("no churn scores to rank by uplift (scoring was skipped)")
    today = con.execute(f"SELECT customer_id, as_of_date, {', '.join(FEATURES)} FROM ml.churn_scores").df()
    trained_at = datetime.now(UTC).replace(tzinfo=None)
    backtests, scores, skipped = [], [], {}
    for row in ready.itertuples():
        frame = training_frame(con, row.play, window_days)
        try:
            result = backtest(frame, random_state=random_state)
            model = fit_two_model(frame, random_state)  # all the data for today's scores
        except ValueError as exc:
            skipped[row.play] = str(exc)
            continue
        backtests.append({"play": row.play, "window_days": window_days, "treated": int(row.treated),
                          "held_out": int(row.held_out), "list_dates": int(row.list_dates),
                          "train_customers": result.train_customers, "test_customers": result.test_customers,
                          "top_share": result.top_share, "uplift_top": result.uplift_top,
                          "uplift_all": result.uplift_all, "qini": result.qini, "trained_at": trained_at})
        x = today[list(FEATURES)]
        p_t, p_c = model.contacted.predict_proba(x)[:, 1], model.held_out.predict_proba(x)[:, 1]
        scores.append(pd.DataFrame({
            "play": row.play, "customer_id": today["customer_id"], "as_of_date": today["as_of_date"],
            "window_days": window_days, "uplift": p_t - p_c, "p_order_if_contacted": p_t, "p_order_if_held_out": p_c,
            "trained_at": trained_at,
        }))
    if not backtests:
        raise skip("no play's holdout can be modelled yet: " + "; ".join(f"{p}: {w}" for p, w in skipped.items()))
    backtest_frame = pd.DataFrame(backtests)
    con.register("uplift_score_frame", pd.concat(scores, ignore_index=True))
    con.register("uplift_backtest_frame", backtest_frame)
    rank = "row_number() OVER (PARTITION BY play ORDER BY uplift DESC, customer_id)"
    score_cols = ", ".join(f"CAST({rank if c == 'uplift_rank' else c} AS {t}) AS {c}"
                           for c, t in SCORES_COLUMNS.items())
    bt_cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in BACKTEST_COLUMNS.items())
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TABLE {SCORES_TABLE} AS SELECT {score_cols} FROM uplift_score_frame")
        con.execute(f"CREATE OR REPLACE TABLE {BACKTEST_TABLE} AS SELECT {bt_cols} FROM uplift_backtest_frame")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("uplift_score_frame")
        con.unregister("uplift_backtest_frame")
    return UpliftRun(backtests=backtest_frame, customers=len(today), skipped_plays=skipped)
