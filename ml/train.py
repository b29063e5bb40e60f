"""Train, backtest and (maybe) promote the churn model.

Time-ordered backtest, never a random split. With `as_of` the last day of data and H the
horizon (180 days by default):

    evaluation cut-off   e = as_of - H          its outcome window (e, as_of] is fully observed
    calibration cut-off  k = e - H              outcome window ends at e: never overlaps e's
    fit cut-offs         k - step, k - 2*step, ...  (monthly by default)

The gradient-boosted pipeline learns from the fit cut-offs' rows (a customer appears once
per cut-off), its probabilities are calibrated on the later calibration cut-off, and every
metric is measured on the evaluation cut-off, whose outcomes no part of training has seen.
The evaluated model is the one saved and used for scoring, so the reported numbers are
the numbers of the deployed model.

Baselines on the same evaluation rows: a recency-only rule (logistic on log days since the
last order), a logistic regression on all features, and BG/NBD fitted on the orders up to
the evaluation cut-off: 1 - P(alive), and P(no purchase in H) which matches the label.

Promotion gate: the new model replaces the current one only if its ROC AUC beats the
recency rule and is not more than `tolerance` below the current model's AUC measured on
the same new evaluation rows. The very first model is promoted regardless (scoring needs
one), its reason saying whether it beat the rule. Every run is logged in `ml.model_runs`.
"""

from __future__ import annotations

import hashlib
import platform
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from ml import clv
from ml._threads import threads_for
from ml.features import (
    BG_NBD_SAMPLE,
    CATEGORICAL,
    GROUPS,
    INPUT_TABLES,
    NUMERIC,
    ORDERS_TABLE,
    fit_bg_nbd_days,
    labelled_feature_batches,
    labelled_features,
    labels_query,
    latest_order_date,
    table_columns,
)
from ml.metrics import evaluate
from ml.registry import (
    ModelArtifact,
    current_run_id,
    load_artifact,
    model_input,
    record_run,
    save_artifact,
    set_current,
)

DEFAULT_TOLERANCE = 0.02
#: Fewer customers with a valid order than this and a backtest measures noise: training is skipped.
MIN_CUSTOMERS = 100
#: Days of history a cut-off needs before it (the features look back at least this far).
MIN_DAYS_BEFORE_CUTOFF = 30
#: Evaluation rows drawn for the driver importance and for the drift reference stored with the model.
IMPORTANCE_SAMPLE = 30_000
REFERENCE_SAMPLE = 20_000


class NotEnoughHistory(ValueError):
    """The orders are too few or span too short a time to train and backtest a churn model.

    Not an error of the data: a new shop's first export is often a few weeks long. The
    pipeline reports it as a skipped training step (`reason`), not as a failure.
    """

    def __init__(self, reason: str, days: int | None = None, days_needed: int | None = None,
                 customers: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.days = days
        self.days_needed = days_needed
        self.customers = customers


def history_days_needed(horizon_days: int = 180, cutoff_step_days: int = 30) -> int:
    """Days from the first order to the as-of date a backtest needs (420 for the defaults).

    Evaluation cut-off as_of - H, calibration cut-off H before that, the latest fit cut-off a
    step before that, and that one needs `MIN_DAYS_BEFORE_CUTOFF` days of orders before it.
    """
    return 2 * horizon_days + cutoff_step_days + MIN_DAYS_BEFORE_CUTOFF


@dataclass(frozen=True)
class CutoffPlan:
    """The cut-offs of one backtest."""

    as_of: date
    horizon_days: int
    eval_cutoff: date
    calibration_cutoff: date
    fit_cutoffs: tuple[date, ...]


@dataclass
class TrainResult:
    """What a training run produced and decided."""

    run_id: str
    promoted: bool
    reason: str
    metrics: dict
    plan: CutoffPlan
    features: list[str]
    model_dir: Path
    n_train_rows: int
    n_calibration_rows: int
    n_eval_rows: int
    seconds: float
    timings: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for logs and the CLI."""
        m = self.metrics
        lines = [
            f"run {self.run_id}: {'promoted' if self.promoted else 'not promoted'} ({self.reason})",
            f"evaluated at {self.plan.eval_cutoff} on {self.n_eval_rows:,} customers "
            f"(churn rate {m['model']['churn_rate']:.1%}), trained on {self.n_train_rows:,} rows",
        ]
        for name, vals in m.items():
            if isinstance(vals, dict) and "roc_auc" in vals:
                lines.append(
                    f"  {name:<26} AUC {vals['roc_auc']:.3f}  PR AUC {vals['pr_auc']:.3f}  "
                    f"Brier {vals['brier']:.3f}  lift@10% {vals['lift_top_decile']:.2f}  ECE {vals['ece']:.3f}"
                )
        return "\n".join(lines)


def plan_cutoffs(
    con, as_of: date | None, horizon_days: int, n_fit_cutoffs: int, step_days: int
) -> CutoffPlan:
    """Place the cut-offs; drop fit cut-offs before the data starts, fail if too few remain."""
    as_of = pd.Timestamp(as_of).date() if as_of is not None else latest_order_date(con)
    first = pd.Timestamp(con.execute(f"select min(ordered_at) from {ORDERS_TABLE}").fetchone()[0]).date()
    eval_cutoff = as_of - timedelta(days=horizon_days)
    calibration = eval_cutoff - timedelta(days=horizon_days)
    # a cut-off needs some history before it; 30 days of orders is the least we accept
    earliest = first + timedelta(days=MIN_DAYS_BEFORE_CUTOFF)
    fits = tuple(
        c for c in (calibration - timedelta(days=step_days * i) for i in range(1, n_fit_cutoffs + 1)) if c >= earliest
    )
    if not fits:
        days, need = (as_of - first).days, history_days_needed(horizon_days, step_days)
        raise NotEnoughHistory(
            f"{days} days of orders ({first} to {as_of}), the churn model needs at least {need} "
            f"to backtest a {horizon_days}-day horizon (see docs/churn-model.md)",
            days=days, days_needed=need,
        )
    return CutoffPlan(as_of, horizon_days, eval_cutoff, calibration, fits)


def check_history(
    con, as_of: date | str | None = None, horizon_days: int = 180, n_fit_cutoffs: int = 4, cutoff_step_days: int = 30
) -> CutoffPlan:
    """The backtest's cut-offs; `NotEnoughHistory` when the orders span too few days or customers.

    Cheap (two aggregates over the order fact): the scoring step asks it too, to tell a
    warehouse that cannot support a churn model from one that merely has no model yet.
    """
    plan = plan_cutoffs(con, as_of, horizon_days, n_fit_cutoffs, cutoff_step_days)
    cols = table_columns(con, ORDERS_TABLE)
    valid = "where coalesce(is_valid, true)" if "is_valid" in cols else ""
    customers = con.execute(f"select count(distinct customer_id) from {ORDERS_TABLE} {valid}").fetchone()[0]
    if customers < MIN_CUSTOMERS:
        raise NotEnoughHistory(
            f"{customers} customers with orders, the churn model needs at least {MIN_CUSTOMERS} "
            "(see docs/churn-model.md)",
            customers=customers,
        )
    return plan


def usable_features(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Features with information in the training rows: not all missing, not constant."""
    numeric = [c for c in NUMERIC if frame[c].notna().any() and frame[c].nunique(dropna=False) > 1]
    categorical = [c for c in CATEGORICAL if frame[c].notna().any() and frame[c].nunique(dropna=False) > 1]
    return numeric, categorical


def make_model(numeric: list[str], categorical: list[str], random_state: int = 0) -> Pipeline:
    """`Pipeline(ColumnTransformer, HistGradientBoostingClassifier)`; trees take NaN as is."""
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan, max_categories=60
    )
    prep = ColumnTransformer(
        [("num", "passthrough", numeric), ("cat", encoder, categorical)], verbose_feature_names_out=False
    )
    booster = HistGradientBoostingClassifier(
        # small, strongly regularised trees: the same customers appear at every monthly cut-off,
        # so deep trees memorise them instead of learning churn patterns (measured: held-out
        # AUC drops by 0.015); few trees also keep the per-driver explanation cheap
        learning_rate=0.05,
        max_iter=200,
        max_leaf_nodes=15,
        min_samples_leaf=200,
        l2_regularization=1.0,
        early_stopping=True,
        n_iter_no_change=20,
        categorical_features=list(categorical) or None,
        random_state=random_state,
    )
    return Pipeline([("prep", prep), ("model", booster)]).set_output(transform="pandas")


def make_logistic(numeric: list[str], categorical: list[str]) -> Pipeline:
    """Logistic regression baseline: log-scaled, imputed (with indicators), standardised inputs."""
    signed_log = FunctionTransformer(lambda x: np.sign(x) * np.log1p(np.abs(x)), feature_names_out="one-to-one")
    transformers = [("num", make_pipeline(signed_log, SimpleImputer(strategy="median", add_indicator=True),
                                          StandardScaler()), numeric)]
    if categorical:
        transformers.append(("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20), categorical))
    return Pipeline([("prep", ColumnTransformer(transformers)), ("model", LogisticRegression(max_iter=500, C=0.5))])


def make_recency_rule() -> Pipeline:
    """Recency-only rule: churn risk rises with log days since the last order."""
    log_days = FunctionTransformer(lambda x: np.log1p(np.asarray(x, dtype=float)))
    return Pipeline([
        ("prep", ColumnTransformer([("days", log_days, ["days_since_last_order"])])),
        ("model", LogisticRegression()),
    ])


def fit_model(pipe: Pipeline, X: pd.DataFrame, y: np.ndarray, customers: pd.Series, val_share: float = 0.15):
    """Fit the pipeline, early-stopping on a validation set of whole customers.

    Rows of one customer at different cut-offs are near copies; a row-wise validation split
    would share customers with training and never stop. Customers are assigned to the
    validation set by a hash of their id, so the split is stable across runs.
    """
    val = (pd.util.hash_array(customers.astype(str).to_numpy()) % 1000) < val_share * 1000
    if val.sum() < 100 or (~val).sum() < 100 or len(np.unique(y[val])) < 2:
        return pipe.fit(X, y)
    prep = pipe.named_steps["prep"].fit(X[~val])
    pipe.named_steps["model"].fit(prep.transform(X[~val]), y[~val], X_val=prep.transform(X[val]), y_val=y[val])
    return pipe


def _sample(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    return frame if limit is None or len(frame) <= limit else frame.sample(limit, random_state=seed)


def sample_positions(n: int, limit: int, seed: int) -> np.ndarray:
    """The rows `_sample` draws from a frame of `n` rows, in its order: what `DataFrame.sample`
    draws (`RandomState(seed).choice` without replacement), or all rows up to `limit`."""
    if n <= limit:
        return np.arange(n)
    return np.random.RandomState(seed).choice(n, size=limit, replace=False)


@dataclass
class EvaluationPass:
    """Everything training needs of the evaluation cut-off, gathered a batch of customers at a time
    (`RETAIN_ML_BATCH_ROWS`, 250,000 by default).

    The predictions of the new model, its baselines and the current model on every evaluation
    customer are kept (a few numbers per customer), the feature rows only for the samples.
    """

    y: np.ndarray
    days_since_last_order: np.ndarray
    predictions: dict[str, np.ndarray]
    customers: pd.Series
    samples: dict[int, pd.DataFrame]
    current: str | None = None
    current_error: str | None = None

    @classmethod
    def run(cls, con, cutoff: date, horizon_days: int, rows: int, *, features: tuple[list[str], list[str]],
            models: dict, models_dir: Path, seed: int, bg_nbd: object,
            batch_size: int | None = None) -> EvaluationPass:
        """Predict `models` (name -> fitted pipeline on the model input of `features`, the
        (numeric, categorical) columns) and the current model on every row.

        `rows`: the number of evaluation customers (the labels' count), which fixes the samples'
        positions before the first batch.
        """
        from pipelines.core.config import ml_batch_rows  # plain settings module, no orchestration imports

        size = batch_size or ml_batch_rows()
        wanted = {limit: sample_positions(rows, limit, seed) for limit in (IMPORTANCE_SAMPLE, REFERENCE_SAMPLE)}
        y = np.empty(rows, dtype=np.int64)
        days = np.empty(rows, dtype=float)
        predictions = {name: np.empty(rows, dtype=float) for name in models}
        current, current_error, current_model = current_run_id(models_dir), None, None
        if current is not None:
            try:
                current_model = load_artifact(models_dir, current)
            except Exception as exc:  # an unreadable or incompatible old model must not block a good new one
                current_error, current = f"{current}: {exc}", None
        if current is not None:
            predictions["current"] = np.empty(rows, dtype=float)
        customers, parts = [], {limit: [] for limit in wanted}
        start = 0
        numeric, categorical = features
        for batch in labelled_feature_batches(con, cutoff, horizon_days, bg_nbd, size):
            stop = start + len(batch)
            if stop > rows:
                raise AssertionError("more evaluation rows than labels")
            X = model_input(batch, numeric, categorical)
            for name, model in models.items():
                predictions[name][start:stop] = model.predict_proba(X)[:, 1]
            if current is not None:
                try:
                    predictions["current"][start:stop] = current_model.predict_risk(batch)
                except Exception as exc:  # as above: recorded, and the gate goes on without it
                    current_error, current = f"{current}: {exc}", None
                    del predictions["current"]
            y[start:stop] = batch["churned"].to_numpy()
            days[start:stop] = batch["days_since_last_order"].to_numpy()
            customers.append(batch["customer_id"].to_numpy(dtype=object))
            for limit, positions in wanted.items():
                here = positions[(positions >= start) & (positions < stop)]
                if len(here):
                    part = batch.iloc[here - start]
                    part.index = here
                    parts[limit].append(part)
            start = stop
        if start != rows:
            raise AssertionError(f"{start:,} evaluation rows for {rows:,} labels")
        # in `_sample`'s order, indexed by position; a frame no larger than the limit comes whole (RangeIndex)
        samples = {
            limit: pd.concat(parts[limit]).loc[wanted[limit]] if rows > limit
            else pd.concat(parts[limit]).reset_index(drop=True)
            for limit in wanted
        }
        return cls(y, days, predictions, pd.Series(np.concatenate(customers)), samples, current, current_error)


def data_fingerprint(con) -> str:
    """A short hash of the warehouse tables the model reads: changes when their data change."""
    parts = []
    for table in INPUT_TABLES:
        cols = table_columns(con, table)
        if not cols:
            parts.append(f"{table}:absent")
            continue
        extra = ", max(ordered_at), sum(cast(total as double))" if table == ORDERS_TABLE else ""
        parts.append(f"{table}:{con.execute(f'select count(*){extra} from {table}').fetchone()}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def library_versions() -> dict:
    """Versions of the libraries that shape the model and its numbers."""
    import duckdb
    import joblib
    import scipy
    import sklearn

    return {
        "python": platform.python_version(), "scikit-learn": sklearn.__version__, "numpy": np.__version__,
        "pandas": pd.__version__, "scipy": scipy.__version__, "duckdb": duckdb.__version__,
        "joblib": joblib.__version__,
    }


def order_summary(con, cutoff: date) -> pd.DataFrame:
    """`ml.clv.rfm_summary_duckdb` in days of every customer's valid orders up to `cutoff`."""
    cols = table_columns(con, ORDERS_TABLE)
    where = "coalesce(is_valid, true)" if "is_valid" in cols else None
    rfm = clv.rfm_summary_duckdb(con, ORDERS_TABLE, "customer_id", "ordered_at", "total", cutoff, "D", where=where)
    rfm["customer_id"] = rfm["customer_id"].astype(str)
    return rfm


def bg_nbd_baselines(
    con, cutoff: date, horizon_days: int, customers: pd.Series, rfm: pd.DataFrame | None = None
) -> dict[str, np.ndarray]:
    """BG/NBD fitted on valid orders up to `cutoff` (days): 1 - P(alive) and P(no purchase in H).

    `rfm`: `order_summary(con, cutoff)` when the caller has it already."""
    rfm = order_summary(con, cutoff) if rfm is None else rfm
    rfm = rfm.set_index("customer_id").reindex(customers.to_numpy())
    params = clv.fit_bg_nbd(rfm["frequency"], rfm["recency"], rfm["T"], time_unit="D", sample_size=BG_NBD_SAMPLE)
    f, r, t = rfm["frequency"].to_numpy(), rfm["recency"].to_numpy(), rfm["T"].to_numpy()
    return {
        "params": params,
        "bgnbd_1_minus_p_alive": 1.0 - clv.p_alive(params, f, r, t),
        "bgnbd_p_no_purchase": clv.p_no_purchase(params, horizon_days, f, r, t),
    }


def group_importance(artifact: ModelArtifact, frame: pd.DataFrame, y: np.ndarray, seed: int = 0) -> dict:
    """Permutation importance per driver group: ROC AUC lost when the group's columns are shuffled.

    One batch prediction per group, columns of a group shuffled together (they describe the
    same thing, so shuffling one alone would understate it).
    """
    rng = np.random.default_rng(seed)
    X = artifact.model_input(frame)
    base = roc_auc_score(y, artifact.model.predict_proba(X)[:, 1])
    out = {}
    for group, cols in artifact.groups.items():
        perm = rng.permutation(len(X))
        shuffled = X.copy()
        for c in cols:
            shuffled[c] = X[c].to_numpy()[perm]
        out[group] = float(base - roc_auc_score(y, artifact.model.predict_proba(shuffled)[:, 1]))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def train(
    con,
    as_of: date | str | None = None,
    horizon_days: int = 180,
    models_dir: Path | str | None = None,
    n_fit_cutoffs: int = 4,
    cutoff_step_days: int = 30,
    tolerance: float = DEFAULT_TOLERANCE,
    max_rows_per_cutoff: int | None = 200_000,
    random_state: int = 0,
) -> TrainResult:
    """Backtest a new churn model, log it in `ml.model_runs`, save it, promote it if it passes the gate.

    `con` is a writable DuckDB connection to the warehouse; `as_of` defaults to the latest
    order date; `models_dir` defaults to the configured models folder (RETAIN_MODELS).
    `max_rows_per_cutoff` samples customers per fit and calibration cut-off to bound
    training time on very large shops (None: all; the evaluation cut-off is never sampled).
    """
    started = time.perf_counter()
    models_dir = Path(models_dir) if models_dir is not None else _default_models_dir()
    plan = check_history(con, as_of, horizon_days, n_fit_cutoffs, cutoff_step_days)
    customers = con.execute(f"select count(distinct customer_id) from {ORDERS_TABLE}").fetchone()[0]
    with threads_for(customers * (n_fit_cutoffs + 2)):
        return _train(con, plan, horizon_days, models_dir, tolerance, sample_share(customers, max_rows_per_cutoff),
                      random_state, started)


def sample_share(customers: int, max_rows_per_cutoff: int | None) -> float | None:
    """The share of customers a fit or calibration cut-off samples (None: all of them)."""
    return None if max_rows_per_cutoff is None else min(1.0, max_rows_per_cutoff / max(customers, 1))


def calibration_method(rows: int) -> str:
    """Isotonic calibration from 5,000 calibration rows; below that the steadier sigmoid."""
    return "isotonic" if rows >= 5000 else "sigmoid"


def fit_calibrated(numeric: list[str], categorical: list[str], X_fit: pd.DataFrame, y_fit: np.ndarray,
                   customers: pd.Series, X_cal: pd.DataFrame, y_cal: np.ndarray, random_state: int = 0):
    """The churn model: the estimator fitted (early stopping on a split by customer), then calibrated
    on the calibration cut-off. Returns (fitted estimator, calibrated model)."""
    booster = fit_model(make_model(numeric, categorical, random_state), X_fit, y_fit, customers)
    method = calibration_method(len(X_cal))
    return booster, CalibratedClassifierCV(FrozenEstimator(booster), method=method).fit(X_cal, y_cal)


def _train(con, plan: CutoffPlan, horizon_days: int, models_dir: Path, tolerance: float,
           share: float | None, random_state: int, started: float) -> TrainResult:
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    # sample customers inside the feature query (a stable hash of the id) so big shops never
    # build features for rows training would drop; the evaluation cut-off is never sampled
    fit = pd.concat([labelled_features(con, c, horizon_days, share) for c in plan.fit_cutoffs], ignore_index=True)
    cal = labelled_features(con, plan.calibration_cutoff, horizon_days, share)
    # the evaluation cut-off is never sampled, and read in batches (EvaluationPass): here only its outcomes
    ev_rows, ev_lowest, ev_highest = con.execute(
        f"select count(*), min(churned), max(churned) from ({labels_query(con, plan.eval_cutoff, horizon_days)})"
    ).fetchone()
    timings["features"] = time.perf_counter() - tick
    outcomes = [(name, frame["churned"].nunique(), frame["churned"].iloc[0] if len(frame) else None)
                for name, frame in (("fit", fit), ("calibration", cal))]
    outcomes.append(("evaluation", 2 if ev_rows and ev_lowest != ev_highest else 1, ev_lowest))
    for name, distinct, first in outcomes:
        if distinct < 2:
            raise NotEnoughHistory(
                f"at the {name} cut-off every customer {'churned' if first else 'stayed'}: "
                "a churn model cannot learn or be evaluated on one outcome (see docs/churn-model.md)"
            )

    tick = time.perf_counter()
    numeric, categorical = usable_features(fit)
    X_fit, y_fit = model_input(fit, numeric, categorical), fit["churned"].to_numpy()
    X_cal, y_cal = model_input(cal, numeric, categorical), cal["churned"].to_numpy()
    booster, calibrated = fit_calibrated(numeric, categorical, X_fit, y_fit, fit["customer_id"], X_cal, y_cal,
                                         random_state)
    timings["fit"] = time.perf_counter() - tick

    # Reasons compare a customer with a typical *retained* customer (median / most common value
    # among training rows that did not churn): with churn rates of 60-80 % the overall median
    # describes a churner, against which a typical at-risk customer would show no reason at all.
    retained = X_fit[y_fit == 0]
    reference = {c: float(np.nanmedian(retained[c])) if retained[c].notna().any() else np.nan for c in numeric}
    reference |= {c: retained[c].mode().iloc[0] for c in categorical}
    groups = {g: [c for c in cols if c in numeric or c in categorical] for g, cols in GROUPS.items()}
    groups = {g: cols for g, cols in groups.items() if cols}
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    artifact = ModelArtifact(run_id, calibrated, numeric, categorical, reference, groups)

    tick = time.perf_counter()
    rule = make_recency_rule().fit(X_fit, y_fit)
    # the baseline learns from at most 100k rows: its AUC is stable long before that, and a
    # full-size fit dominated training time on a million customers
    lr_rows = _sample(pd.DataFrame({"i": np.arange(len(X_fit))}), 100_000, random_state)["i"].to_numpy()
    logistic = make_logistic(numeric, categorical).fit(X_fit.iloc[lr_rows], y_fit[lr_rows])
    # the evaluation customers' BG/NBD features: fitted on all of them, as `labelled_features` fits its frame
    rfm = order_summary(con, plan.eval_cutoff)
    try:
        ev_bg_nbd = fit_bg_nbd_days(*(rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")))
    except (ValueError, RuntimeError):
        ev_bg_nbd = None
    ev = EvaluationPass.run(
        con, plan.eval_cutoff, horizon_days, ev_rows, features=(numeric, categorical),
        models={"model": calibrated, "recency_rule": rule, "logistic": logistic},
        models_dir=models_dir, seed=random_state, bg_nbd=ev_bg_nbd,
    )
    y_ev, p_model = ev.y, ev.predictions["model"]
    metrics: dict = {"model": evaluate(y_ev, p_model)}
    recent = ev.days_since_last_order <= 365
    if recent.sum() > 0 and len(np.unique(y_ev[recent])) == 2:
        metrics["model_recent_buyers_365d"] = evaluate(y_ev[recent], p_model[recent])
    metrics["recency_rule"] = evaluate(y_ev, ev.predictions["recency_rule"])
    metrics["logistic_regression"] = evaluate(y_ev, ev.predictions["logistic"])
    try:
        bg = bg_nbd_baselines(con, plan.eval_cutoff, horizon_days, ev.customers, rfm)
        metrics["bgnbd_1_minus_p_alive"] = evaluate(y_ev, bg["bgnbd_1_minus_p_alive"])
        metrics["bgnbd_p_no_purchase"] = evaluate(y_ev, bg["bgnbd_p_no_purchase"])
        metrics["bgnbd_params"] = bg["params"].to_dict()
    except (ValueError, RuntimeError) as exc:  # e.g. nobody bought twice: record, do not fail training
        metrics["bgnbd_error"] = str(exc)
    del rfm
    sample = ev.samples[IMPORTANCE_SAMPLE]
    metrics["driver_importance"] = group_importance(artifact, sample, sample["churned"].to_numpy(), random_state)
    # reasons are computed for the groups the model measurably relies on (one batch
    # prediction each at scoring time); the others cannot move a customer's risk much
    explain_groups = [g for g, drop in metrics["driver_importance"].items() if drop >= 0.0005][:12]
    timings["evaluate"] = time.perf_counter() - tick

    promoted, reason, current_auc = _gate(ev, metrics, tolerance)
    metrics["current_model_auc_on_this_eval"] = current_auc

    reference_sample = ev.samples[REFERENCE_SAMPLE].copy()
    reference_sample["churn_probability"] = artifact.predict_risk(reference_sample)
    artifact.metadata = {
        "run_id": run_id,
        "trained_at": datetime.now(UTC).isoformat(),
        "as_of_date": plan.as_of.isoformat(),
        "horizon_days": horizon_days,
        "fit_cutoffs": [c.isoformat() for c in plan.fit_cutoffs],
        "calibration_cutoff": plan.calibration_cutoff.isoformat(),
        "calibration_method": calibrated.method,
        "eval_cutoff": plan.eval_cutoff.isoformat(),
        "n_train_rows": len(fit),
        "n_calibration_rows": len(cal),
        "n_eval_rows": ev_rows,
        "data_first_order": con.execute(f"select min(ordered_at) from {ORDERS_TABLE}").fetchone()[0],
        "features": {"numeric": numeric, "categorical": categorical},
        "groups": groups,
        "explain_groups": explain_groups or list(groups)[:1],
        "reference_values": reference,
        "booster_iterations": int(booster.named_steps["model"].n_iter_),
        "metrics": metrics,
        "library_versions": library_versions(),
        "data_fingerprint": data_fingerprint(con),
        "promoted": promoted,
        "reason": reason,
    }
    run_dir = save_artifact(models_dir, artifact, reference_sample)
    record_run(con, {
        "run_id": run_id,
        "trained_at": datetime.now(UTC).replace(tzinfo=None),
        "as_of_date": plan.as_of,
        "horizon_days": horizon_days,
        "train_cutoffs": [c.isoformat() for c in (*plan.fit_cutoffs, plan.calibration_cutoff)],
        "calibration_cutoff": plan.calibration_cutoff,
        "eval_cutoff": plan.eval_cutoff,
        "n_train_rows": len(fit) + len(cal),
        "n_eval_rows": ev_rows,
        "metrics": metrics,
        "features": [*numeric, *categorical],
        "library_versions": artifact.metadata["library_versions"],
        "data_fingerprint": artifact.metadata["data_fingerprint"],
        "promoted": promoted,
        "reason": reason,
        "model_path": str(run_dir),
    })
    if promoted:
        set_current(models_dir, run_id)
    return TrainResult(
        run_id, promoted, reason, metrics, plan, [*numeric, *categorical], run_dir,
        len(fit), len(cal), ev_rows, time.perf_counter() - started, timings,
    )


def promotion_decision(
    new_auc: float, recency_auc: float, current_auc: float | None, tolerance: float = DEFAULT_TOLERANCE,
    current_id: str | None = None,
) -> tuple[bool, str]:
    """The promotion gate: (promote?, reason).

    Promote only if the new model's ROC AUC beats the recency rule's and is not more than
    `tolerance` below the current model's AUC on the same evaluation rows. With no current
    model (`current_auc` None) the new one is promoted regardless, since scoring needs a
    model; the reason records whether it beat the recency rule.
    """
    if current_auc is None:
        # nothing to replace: scoring needs a model, so the first one is promoted either way,
        # with the comparison on record
        verdict = "beats" if new_auc > recency_auc else "does NOT beat"
        return True, f"first model; ROC AUC {new_auc:.3f} {verdict} the recency rule's {recency_auc:.3f}"
    if not new_auc > recency_auc:
        return False, f"ROC AUC {new_auc:.3f} does not beat the recency rule's {recency_auc:.3f}"
    name = f"current model {current_id}" if current_id else "current model"
    if new_auc < current_auc - tolerance:
        return False, (
            f"ROC AUC {new_auc:.3f} is more than {tolerance:.3f} below the {name} "
            f"({current_auc:.3f} on the same evaluation rows)"
        )
    return True, (
        f"ROC AUC {new_auc:.3f} beats the recency rule ({recency_auc:.3f}) and is within {tolerance:.3f} "
        f"of the {name} ({current_auc:.3f})"
    )


def _gate(ev: EvaluationPass, metrics: dict, tolerance: float):
    """The current model's ROC AUC on the new evaluation rows, then `promotion_decision`."""
    current, current_auc = ev.current, None
    if ev.current_error is not None:
        metrics["current_model_error"] = ev.current_error
    if current is not None:
        try:
            current_auc = float(roc_auc_score(ev.y, ev.predictions["current"]))
        except Exception as exc:  # an unreadable or incompatible old model must not block a good new one
            metrics["current_model_error"] = f"{current}: {exc}"
            current = None
    promoted, reason = promotion_decision(
        metrics["model"]["roc_auc"], metrics["recency_rule"]["roc_auc"], current_auc, tolerance, current
    )
    return promoted, reason, current_auc


def _default_models_dir() -> Path:
    from pipelines.core.config import settings  # plain settings module, no orchestration imports

    return settings().models
