"""Score every customer: churn risk, tier, reasons, P(alive), expected purchases and 12-month CLV.

`score(con)` writes `ml.churn_scores` (replaced each run: today's list) and appends to
`ml.churn_scores_history` (one batch per as-of date and model version; re-scoring the same
date with the same model replaces that batch, so reruns are idempotent; older batches are
thinned, see `pipelines.core.history`). It also writes the
drift of today's features and scores against the model's reference to `ml.churn_score_drift`
(see `ml.drift`), from the features it already holds.

Customers are scored a batch at a time (`RETAIN_ML_BATCH_ROWS`, 250,000 by default), so memory
does not grow with the shop: the features come out of DuckDB batch by batch, and the
population fits (BG/NBD, Gamma-Gamma) are made once before the first batch, so the scores are
those of one batch of everyone.
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
    arrow_batches,
    feature_query,
    features_from_arrow,
    fit_bg_nbd_days,
    latest_order_date,
    table_columns,
)
from ml.reasons import risk_and_explain
from ml.registry import current_run_id, load_artifact
from ml.status import write_status
from ml.train import NotEnoughHistory, check_history
from pipelines.core.config import ml_batch_rows
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
    def read(cls, con) -> ScoreSummary:
        """The summary of the warehouse's `ml.churn_scores` (today's list)."""
        rows, mean, as_of, model = con.execute(
            "select count(*), coalesce(avg(churn_probability), 0), min(as_of_date), min(model_version) "
            "from ml.churn_scores").fetchone()
        if not rows:
            return cls(0, None, "", {}, 0.0)
        tiers = {str(k): int(v) for k, v in con.execute(
            "select risk_tier, count(*) from ml.churn_scores group by 1 order by 1").fetchall()}
        return cls(int(rows), as_of, str(model), tiers, float(mean))


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


#: Customers scored at a time. A shop with more is scored in batches of this many, in
#: customer_id order, so scoring's memory stays that of one batch (about 3 KB per customer
#: in pandas) however many customers there are: 10 million at once would need some 30 GB.
#: The features are computed once, in DuckDB, and read batch by batch; the BG/NBD and
#: Gamma-Gamma fits are made once on the population before the first batch.


@dataclass(frozen=True)
class Population:
    """Every scored customer's order summary (`ml.clv`, in days) and the fits made on it."""

    customer_id: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray
    bg: object  # BG/NBD (`NOT_FITTED` when it cannot be fitted): the features' P(alive) and the CLV columns
    gg: object  # Gamma-Gamma (or `NOT_FITTED`)

    @classmethod
    def of(cls, con, as_of: date) -> Population:
        """The order summary of every customer with a valid order by `as_of`, in customer_id order, and its fits.

        The summary's frequency, recency and age are the numbers `ml.features.rfm_from_features`
        makes of the feature rows, so the one BG/NBD fit serves the features and the CLV alike.
        """
        cols = table_columns(con, ORDERS_TABLE)
        where = "coalesce(is_valid, true)" if "is_valid" in cols else None
        rfm = clv.rfm_summary_duckdb(con, ORDERS_TABLE, "customer_id", "ordered_at", "total", as_of, "D", where=where)
        f, r, t, m = (rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value"))
        bg, gg = clv_fits(f, r, t, m)
        return cls(rfm["customer_id"].astype(str).to_numpy(dtype=object), f, r, t, m, bg, gg)

    def rows(self, customers: pd.Series, start: int) -> tuple[np.ndarray, ...]:
        """(frequency, recency, T, monetary_value) of `customers`, the batch that starts at position `start`."""
        wanted = customers.astype(str).to_numpy(dtype=object)
        arrays = (self.frequency, self.recency, self.T, self.monetary_value)
        stop = start + len(wanted)
        if stop <= len(self.customer_id) and (self.customer_id[start:stop] == wanted).all():
            return tuple(a[start:stop] for a in arrays)  # both in customer_id order: the batch is a slice
        position = pd.Index(self.customer_id).get_indexer(wanted)  # -1: not in the summary (NaN)
        return tuple(np.where(position >= 0, a[position], np.nan) for a in arrays)


def score(
    con,
    as_of: date | str | None = None,
    models_dir: Path | str | None = None,
    thresholds: RiskThresholds | None = None,
    annual_discount_rate: float = 0.10,
    batch_size: int | None = None,
) -> ScoreSummary:
    """Score all customers with a valid order by `as_of` (default: the latest order date).

    Uses the promoted model in `models_dir` (default: RETAIN_MODELS). Replaces
    `ml.churn_scores`, appends to `ml.churn_scores_history`, and returns the run's summary
    (the scores are in the warehouse). Raises `ScoringSkipped` (after emptying
    `ml.churn_scores`) when `skip_reason` gives a reason. `batch_size`: customers scored at a
    time (default `RETAIN_ML_BATCH_ROWS`, 250,000); the scores do not depend on it.

    Drift against the model's reference is measured on at most `BG_NBD_SAMPLE` scored
    customers (all of them up to that size), drawn as `ml.clv`'s fits draw theirs.
    """
    run = ScoringRun.start(con, as_of, models_dir, thresholds)
    artifact = load_artifact(run.models_dir)
    population = Population.of(con, run.as_of)
    drift_rows = _drift_positions(len(population.customer_id))
    drift_feats, drift_risk = [], []
    size = batch_size or ml_batch_rows()
    names = [c for c in SCORE_COLUMNS if c not in ("scored_at", "as_of_date", "model_version")]
    # the scores go to a temporary table of a second connection to the same database: `con`
    # is busy streaming the feature rows until the last batch
    cur = con.cursor()
    try:
        cur.execute("create or replace temp table _scored ("
                    + ", ".join(f"{c} {SCORE_COLUMNS[c]}" for c in names) + ")")
        start = 0
        with feature_query(con, run.as_of) as select:
            for table in arrow_batches(con.sql(select).to_arrow_reader(size), size):
                feats = features_from_arrow(table, run.as_of, population.bg)
                del table
                f, r, t, m = population.rows(feats["customer_id"], start)
                with threads_for(len(feats)):
                    # one pass over the trees gives the risk and, per driver group, the what-if risk
                    risk, reasons, _ = risk_and_explain(artifact, feats)
                    values = clv_values(population.bg, population.gg, f, r, t, m, annual_discount_rate)
                batch = pa.table({
                    "customer_id": pa.array(feats["customer_id"].to_numpy(dtype=object), pa.string()),
                    "churn_probability": risk,
                    "risk_tier": pa.array(risk_tier(risk, run.thresholds), pa.string()),
                    "p_alive": values["p_alive"].to_numpy(),
                    "expected_purchases_90d": values["expected_purchases_90d"].to_numpy(),
                    "clv_12m": values["clv_12m"].to_numpy(),
                    **{c: pa.array(reasons[c].to_numpy(dtype=object), pa.string(), from_pandas=True)
                       for c in ("reason_1", "reason_2", "reason_3")},
                })
                cur.register("_batch", batch)
                try:
                    cur.execute(f"insert into _scored select {', '.join(names)} from _batch")
                finally:
                    cur.unregister("_batch")
                here = drift_rows[(drift_rows >= start) & (drift_rows < start + len(feats))] - start
                drift_feats.append(feats.iloc[here])
                drift_risk.append(risk[here])
                start += len(feats)
                del feats, batch, reasons, values
        scored_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).floor("s")
        relation = (f"(select *, timestamp '{scored_at.isoformat(sep=' ')}' as scored_at, "
                    f"date '{run.as_of.isoformat()}' as as_of_date, '{artifact.run_id}' as model_version "
                    "from _scored)")
        write_score_rows(cur, relation, run.as_of, artifact.run_id, run.history)
    finally:
        cur.close()
    write_status(con, as_of_date=run.as_of, scoring="scored", scoring_reason=None, model_version=artifact.run_id)
    if drift_feats:
        try:
            drift = drift_report(pd.concat(drift_feats, ignore_index=True), np.concatenate(drift_risk),
                                 run.models_dir, run_id=artifact.run_id)
        except FileNotFoundError:  # no reference sample stored with the model: the check reports it
            drift = None
        if drift is not None:
            write_drift(con, drift, run.as_of, artifact.run_id)
    return ScoreSummary.read(con)


def _drift_positions(n: int) -> np.ndarray:
    """Positions (in customer_id order) of the customers drift is measured on: all up to
    `BG_NBD_SAMPLE`, else that many drawn as `ml.clv`'s fits draw (seed 0), sorted."""
    if n <= BG_NBD_SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, BG_NBD_SAMPLE, replace=False))


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
