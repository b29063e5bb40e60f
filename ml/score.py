"""Score every customer: churn risk, tier, reasons, P(alive), expected purchases and 12-month CLV.

`score(con)` writes `ml.churn_scores` (replaced each run: today's list) and appends to
`ml.churn_scores_history` (one batch per as-of date and model version; re-scoring the same
date with the same model replaces that batch, so reruns are idempotent; older batches are
thinned, see `pipelines.core.history`). It also writes the
drift of today's features and scores against the model's reference to `ml.churn_score_drift`
(see `ml.drift`), from the features it already holds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ml import clv
from ml._threads import threads_for
from ml.drift import drift_report, write_drift
from ml.features import (
    BG_NBD_SAMPLE,
    ORDERS_TABLE,
    build_features,
    fit_bg_nbd_days,
    latest_order_date,
    table_columns,
)
from ml.reasons import risk_and_explain
from ml.registry import current_run_id, load_artifact
from ml.status import write_status
from ml.train import NotEnoughHistory, check_history
from pipelines.core.history import HistoryPolicy

SCORE_COLUMNS = {
    "customer_id": "VARCHAR",
    "scored_at": "TIMESTAMP",
    "as_of_date": "DATE",
    "churn_probability": "DOUBLE",
    "risk_tier": "VARCHAR",
    "p_alive": "DOUBLE",
    "expected_purchases_90d": "DOUBLE",
    "clv_12m": "DOUBLE",
    "reason_1": "VARCHAR",
    "reason_2": "VARCHAR",
    "reason_3": "VARCHAR",
    "model_version": "VARCHAR",
}


@dataclass(frozen=True)
class RiskThresholds:
    """Churn probability at or above which a customer is high / medium risk (else low)."""

    high: float = 0.6
    medium: float = 0.3

    @classmethod
    def from_env(cls) -> RiskThresholds:
        """RETAIN_RISK_HIGH and RETAIN_RISK_MEDIUM override the defaults."""
        high = float(os.environ.get("RETAIN_RISK_HIGH", cls.high))
        medium = float(os.environ.get("RETAIN_RISK_MEDIUM", cls.medium))
        if not 0 <= medium <= high <= 1:
            raise ValueError(f"risk thresholds must satisfy 0 <= medium ({medium}) <= high ({high}) <= 1")
        return cls(high, medium)


def risk_tier(probability, thresholds: RiskThresholds) -> np.ndarray:
    """'high', 'medium' or 'low' per probability."""
    p = np.asarray(probability, dtype=float)
    return np.where(p >= thresholds.high, "high", np.where(p >= thresholds.medium, "medium", "low"))


def clv_columns(
    con, as_of: date, customers: pd.Series, annual_discount_rate: float = 0.10
) -> pd.DataFrame:
    """P(alive), expected purchases in 90 days and 12-month discounted CLV from BG/NBD + Gamma-Gamma.

    Fitted on all valid orders up to `as_of` in days. CLV is NaN when spend cannot be
    modelled (too few repeat buyers, or an infinite mean spend estimate). The BG/NBD fit is
    the one `build_features` made for the same customers when it ran just before (the
    features' P(alive) is this P(alive)).
    """
    cols = table_columns(con, ORDERS_TABLE)
    where = "coalesce(is_valid, true)" if "is_valid" in cols else None
    rfm = clv.rfm_summary_duckdb(con, ORDERS_TABLE, "customer_id", "ordered_at", "total", as_of, "D", where=where)
    ids = rfm["customer_id"].astype(str).to_numpy()
    wanted = customers.astype(str).to_numpy()
    if not (len(ids) == len(wanted) and (ids == wanted).all()):  # both are in customer_id order when they match
        rfm = rfm.set_index(ids).reindex(wanted)
    f, r, t, m = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value"))
    bg, gg = clv_fits(f, r, t, m)
    return clv_values(bg, gg, f, r, t, m, annual_discount_rate)


#: `clv_fits` could not fit the model (its columns are NaN).
NOT_FITTED = None


def clv_fits(f: np.ndarray, r: np.ndarray, t: np.ndarray, m: np.ndarray) -> tuple:
    """(BG/NBD, Gamma-Gamma) parameters fitted in days on up to `BG_NBD_SAMPLE` customers.

    Either is `NOT_FITTED` when its fit fails (too few repeat buyers, an infinite mean spend).
    """
    try:
        bg = fit_bg_nbd_days(f, r, t)
    except (ValueError, RuntimeError):
        return NOT_FITTED, NOT_FITTED
    try:
        gg = clv.fit_gamma_gamma(f, m, sample_size=BG_NBD_SAMPLE)
    except (ValueError, RuntimeError):
        gg = NOT_FITTED
    return bg, gg


def clv_values(bg, gg, f, r, t, m, annual_discount_rate: float = 0.10) -> pd.DataFrame:
    """P(alive), expected purchases in 90 days and 12-month CLV of each customer from fitted parameters."""
    out = pd.DataFrame(index=range(len(f)))
    if bg is NOT_FITTED:
        out["p_alive"] = out["expected_purchases_90d"] = out["clv_12m"] = np.nan
        return out
    out["p_alive"] = clv.p_alive(bg, f, r, t)
    out["expected_purchases_90d"] = clv.expected_purchases(bg, 90, f, r, t)
    out["clv_12m"] = np.nan
    if gg is NOT_FITTED:
        return out
    try:
        daily = (1 + annual_discount_rate) ** (1 / 365) - 1
        out["clv_12m"] = clv.clv(bg, gg, f, r, t, m, 365, daily, n_steps=12)
    except (ValueError, RuntimeError):
        out["clv_12m"] = np.nan
    return out


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring run reports: how many customers, per risk tier, as of when, by which model."""

    rows: int
    as_of_date: date | None
    model_version: str
    risk_tiers: dict[str, int]
    mean_churn_probability: float

    @classmethod
    def of(cls, scores: pd.DataFrame) -> ScoreSummary:
        """The summary of scores in hand (`score`'s frame)."""
        if not len(scores):
            return cls(0, None, "", {}, 0.0)
        tiers = {str(k): int(v) for k, v in scores["risk_tier"].value_counts().items()}
        return cls(len(scores), scores["as_of_date"].iloc[0], str(scores["model_version"].iloc[0]), tiers,
                   float(scores["churn_probability"].mean()))


class ScoringSkipped(RuntimeError):
    """No honest churn score can be computed for this warehouse yet; `reason` says why.

    `score` has then replaced `ml.churn_scores` with an empty table (no stale scores are
    left for outreach) and recorded the reason in `ml.churn_status`.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def skip_reason(con, as_of: date | None, models_dir: Path | str) -> str | None:
    """Why scoring must be skipped, or None when the promoted model can score `as_of`.

    With enough history the promoted model scores (none promoted: skipped). With too short
    a history (or too few customers) for a churn model of its own, the warehouse is scored
    only by a model trained on this warehouse's own orders: one whose first order is no
    earlier than the warehouse's (the same shop, scored at an earlier date for an audit). A
    model trained on orders the warehouse no longer holds (an earlier run on another or a
    longer export) describes other customers, and is not used. There is no model-free
    fallback: BG/NBD P(alive) fitted on a few weeks of orders would be a number without
    meaning; the pages show nothing, with the reason.
    """
    run_id = current_run_id(models_dir)
    try:
        check_history(con, as_of)
    except NotEnoughHistory as exc:
        reason = f"not enough history yet: {exc.reason}"
        if run_id is None:
            return reason
        trained_from = _model_first_order(models_dir, run_id)
        first = con.execute(f"select min(ordered_at)::date from {ORDERS_TABLE}").fetchone()[0]
        if trained_from is None or first is None or first > trained_from:
            return (f"{reason}; the earlier model {run_id} learned from orders since {trained_from or 'unknown'}, "
                    "which this warehouse does not hold, so it is not used")
        return None
    if run_id is None:
        return "no churn model has been trained yet (run `retain train` or the full job)"
    return None


def _model_first_order(models_dir: Path | str, run_id: str) -> date | None:
    """The first order date of the data a saved model was trained on (its metadata.json), or None."""
    path = Path(models_dir) / run_id / "metadata.json"
    try:
        value = json.loads(path.read_text()).get("data_first_order")
        return pd.Timestamp(value).date() if value else None
    except (OSError, ValueError):
        return None


def skip_scoring(con, as_of: date, reason: str) -> None:
    """Empty `ml.churn_scores` (history kept) and record the reason in `ml.churn_status`."""
    cols = ", ".join(f"{name} {typ}" for name, typ in SCORE_COLUMNS.items())
    con.execute("create schema if not exists ml")
    con.execute(f"create or replace table ml.churn_scores ({cols})")
    write_status(con, as_of_date=as_of, scoring="skipped", scoring_reason=reason)


@dataclass(frozen=True)
class ScoringRun:
    """The settings of one scoring run, checked before anyone is scored."""

    as_of: date
    models_dir: Path
    thresholds: RiskThresholds
    history: HistoryPolicy

    @classmethod
    def start(cls, con, as_of, models_dir, thresholds: RiskThresholds | None) -> ScoringRun:
        """Resolve the defaults; raises `ScoringSkipped` (scores emptied) when `skip_reason` gives one."""
        if models_dir is None:
            from pipelines.core.config import settings  # plain settings module

            models_dir = settings().models
        thresholds = thresholds or RiskThresholds.from_env()
        history = HistoryPolicy.from_env()  # a bad setting fails here, not after scoring everyone
        as_of = pd.Timestamp(as_of).date() if as_of is not None else latest_order_date(con)
        reason = skip_reason(con, as_of, models_dir)
        if reason is not None:
            skip_scoring(con, as_of, reason)
            raise ScoringSkipped(reason)
        return cls(as_of, Path(models_dir), thresholds, history)


def score(
    con,
    as_of: date | str | None = None,
    models_dir: Path | str | None = None,
    thresholds: RiskThresholds | None = None,
    annual_discount_rate: float = 0.10,
) -> pd.DataFrame:
    """Score all customers with a valid order by `as_of` (default: the latest order date).

    Uses the promoted model in `models_dir` (default: RETAIN_MODELS). Replaces
    `ml.churn_scores`, appends to `ml.churn_scores_history`, and returns the scores. Raises
    `ScoringSkipped` (after emptying `ml.churn_scores`) when `skip_reason` gives a reason.
    """
    run = ScoringRun.start(con, as_of, models_dir, thresholds)
    as_of, models_dir, thresholds, history = run.as_of, run.models_dir, run.thresholds, run.history
    artifact = load_artifact(models_dir)
    feats = build_features(con, as_of)
    with threads_for(len(feats)):
        # one pass over the trees gives the risk and, per driver group, the what-if risk
        risk, reasons, _ = risk_and_explain(artifact, feats)
        values = clv_columns(con, as_of, feats["customer_id"], annual_discount_rate)
    scores = pd.DataFrame({
        "customer_id": feats["customer_id"].to_numpy(),
        "scored_at": pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).floor("s"),
        "as_of_date": as_of,
        "churn_probability": risk,
        "risk_tier": risk_tier(risk, thresholds),
        "p_alive": values["p_alive"].to_numpy(),
        "expected_purchases_90d": values["expected_purchases_90d"].to_numpy(),
        "clv_12m": values["clv_12m"].to_numpy(),
        "reason_1": reasons["reason_1"].to_numpy(),
        "reason_2": reasons["reason_2"].to_numpy(),
        "reason_3": reasons["reason_3"].to_numpy(),
        "model_version": artifact.run_id,
    })
    write_scores(con, scores, history)
    write_status(con, as_of_date=as_of, scoring="scored", scoring_reason=None, model_version=artifact.run_id)
    try:
        # today's features are in memory now: measure drift here rather than rebuild them in the check
        drift = drift_report(feats, risk, models_dir, run_id=artifact.run_id)
    except FileNotFoundError:  # no reference sample stored with the model: the check reports it
        drift = None
    if drift is not None:
        write_drift(con, drift, as_of, artifact.run_id)
    return scores


def write_scores(con, scores: pd.DataFrame, history: HistoryPolicy | None = None) -> None:
    """Replace `ml.churn_scores` with `scores` and append them to `ml.churn_scores_history`.

    The history is then thinned by `history` (default: `HistoryPolicy.from_env()`, see
    `pipelines.core.history`), in the same transaction.
    """
    try:
        # as Arrow (typed columns) DuckDB reads the rows without inspecting Python objects such
        # as the as_of_date column: 1.6 s -> 0.8 s for 922k rows
        rows = pa.Table.from_pandas(scores, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        rows = scores
    con.register("_scores", rows)
    try:
        write_score_rows(con, "_scores", scores["as_of_date"].iloc[0] if len(scores) else None,
                         scores["model_version"].iloc[0] if len(scores) else None, history)
    finally:
        con.unregister("_scores")


def write_score_rows(con, relation: str, as_of, model_version: str | None, history: HistoryPolicy | None = None
                     ) -> None:
    """`write_scores` from a relation DuckDB reads (a registered frame, or Parquet files scored elsewhere).

    `relation` holds the `SCORE_COLUMNS` of one batch: `as_of` and `model_version` name it.
    """
    history = history or HistoryPolicy.from_env()
    cols = ", ".join(f"{name} {typ}" for name, typ in SCORE_COLUMNS.items())
    select = ", ".join(f"cast({name} as {typ}) as {name}" for name, typ in SCORE_COLUMNS.items())
    con.execute("create schema if not exists ml")
    try:
        con.execute("begin transaction")
        con.execute(f"create or replace table ml.churn_scores as select {select} from {relation}")
        con.execute(f"create table if not exists ml.churn_scores_history ({cols})")
        con.execute("delete from ml.churn_scores_history where as_of_date = ? and model_version = ?",
                    [as_of, model_version])
        con.execute(f"insert into ml.churn_scores_history select {select} from {relation}")
        history.prune(con, "ml.churn_scores_history", "as_of_date", protect=as_of)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
