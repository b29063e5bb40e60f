"""Score every customer on Spark's workers: the same features, model artifact and numbers as `ml.score`.

`score_on_spark(spark, con, tables)` is `ml.score.score` for a shop whose marts Spark built
(RETAIN_ENGINE=spark). No customer rows pass through the driver's Python:

1. **Feature rows, on the workers.** The customers are split into buckets by a hash of their
   id, one Spark task per bucket (`mapInPandas` over the bucket numbers). Each task opens an
   in-memory DuckDB over the marts' Parquet folders in the lake, keeps its bucket's customers
   and runs `ml.features.build_features` and the order summary of `ml.clv` for them: the very
   SQL of the single-machine path, so the features cannot drift apart.
2. **Population fits, on the driver from a sample.** BG/NBD and Gamma-Gamma describe the
   whole population. The driver fetches the frequency, recency, age and spend of at most
   `BG_NBD_SAMPLE` customers (the same customers `ml.clv`'s sampling picks on one machine:
   all of them up to that size) and fits them once.
3. **Scores, on the workers.** `mapInPandas` over the feature rows (Arrow batches) with the
   fitted scikit-learn artifact and the fits shipped with the task function: the BG/NBD features, the churn risk
   and its reasons (`ml.reasons`), the risk tier, P(alive), expected purchases and CLV.
4. **Written by Spark** as Parquet to `<lake>/ml/churn_scores/`; the warehouse's
   `ml.churn_scores` and its history are filled from those files by DuckDB
   (`ml.score.write_score_rows`), for outreach and the dashboard.

Drift against the model's reference is measured on at most `BG_NBD_SAMPLE` scored rows (all
of them on shops up to that size, as on one machine).

pyspark is imported here only (this module is imported only with the Spark engine). The
workers import `ml` themselves: the package must be on their Python path (a local session
gets it from `pipelines.core.spark.session`; on a cluster install retain on the workers'
image, or ship it with `spark.submit.pyFiles`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ml import features
from ml.features import (
    CATEGORICAL,
    NUMERIC,
    ORDERS_TABLE,
    _frame,
    bg_nbd_columns,
    build_features,
    fit_bg_nbd_days,
    rfm_from_features,
    table_columns,
)
from ml.score import (
    NOT_FITTED,
    SCORE_COLUMNS,
    RiskThresholds,
    ScoreSummary,
    ScoringRun,
    clv_fits,
    clv_values,
    risk_tier,
    write_score_rows,
)

#: Order summary columns (`ml.clv.rfm_summary_duckdb`) carried with each feature row.
RFM = {"frequency": "_rfm_frequency", "recency": "_rfm_recency", "T": "_rfm_T", "monetary_value": "_rfm_monetary"}
#: Score columns computed on the workers (the batch's as_of_date, scored_at and model_version are added after).
WORKER_SCORES = [c for c in SCORE_COLUMNS if c not in ("scored_at", "as_of_date", "model_version")]


def _feature_schema() -> str:
    cols = ["customer_id string"] + [f"{n} double" for n in NUMERIC] + [f"{n} string" for n in CATEGORICAL]
    return ", ".join(cols + [f"{c} double" for c in RFM.values()])


def _score_schema() -> str:
    return ", ".join(f"{c} {'double' if SCORE_COLUMNS[c] == 'DOUBLE' else 'string'}" for c in WORKER_SCORES)


def _bucket_connection(tables: dict[str, str], bucket: int, buckets: int):
    """In-memory DuckDB whose `schema.table` views read the lake's Parquet, one bucket of customers."""
    import duckdb

    con = duckdb.connect()
    for qualified, folder in tables.items():
        schema, _ = qualified.split(".")
        con.execute(f"create schema if not exists {schema}")
        files = f"{str(folder).rstrip('/')}/**/*.parquet".replace("'", "''")
        source = f"read_parquet('{files}', hive_partitioning = true, union_by_name = true)"
        names = {r[0] for r in con.execute(f"describe select * from {source}").fetchall()}
        keep = f" where hash(cast(customer_id as varchar)) % {buckets} = {bucket}" if "customer_id" in names else ""
        con.execute(f"create view {qualified} as select * from {source}{keep}")
    return con


def feature_rows(tables: dict[str, str], as_of, buckets: int):
    """`mapInPandas` function: bucket numbers in, feature rows (with their order summary) out."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from ml import clv

        for batch in batches:
            for bucket in batch["id"].tolist():
                con = _bucket_connection(tables, int(bucket), buckets)
                try:
                    feats = build_features(con, as_of, bg_nbd=None)
                    if not len(feats):
                        continue
                    where = "coalesce(is_valid, true)" if "is_valid" in table_columns(con, ORDERS_TABLE) else None
                    rfm = clv.rfm_summary_duckdb(con, ORDERS_TABLE, "customer_id", "ordered_at", "total", as_of, "D",
                                                 where=where)
                finally:
                    con.close()
                rfm = rfm.set_index(rfm["customer_id"].astype(str)).reindex(feats["customer_id"].astype(str))
                out = feats.drop(columns=["as_of_date"])
                out["customer_id"] = out["customer_id"].astype(object)
                for name in CATEGORICAL:
                    out[name] = out[name].astype(object).where(out[name].notna(), None)
                for source, name in RFM.items():
                    out[name] = rfm[source].to_numpy(dtype=float)
                yield out

    return run


def score_rows(model: tuple, as_of, thresholds: RiskThresholds, annual_discount_rate: float):
    """`mapInPandas` function: feature rows in, score rows out, with the model and fits it carries.

    `model`: (artifact, BG/NBD fit of the features, BG/NBD and Gamma-Gamma fits of CLV).
    """

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from ml._threads import threads_for
        from ml.reasons import risk_and_explain

        artifact, bg_features, bg, gg = model
        for batch in batches:
            if not len(batch):
                continue
            feats = features_frame(batch, bg_features, as_of)
            f, r, t, m = (batch[RFM[c]].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value"))
            with threads_for(len(feats)):
                risk, reasons, _ = risk_and_explain(artifact, feats)
                values = clv_values(bg, gg, f, r, t, m, annual_discount_rate)
            yield pd.DataFrame({
                "customer_id": batch["customer_id"].to_numpy(dtype=object),
                "churn_probability": risk,
                "risk_tier": risk_tier(risk, thresholds),
                "p_alive": values["p_alive"].to_numpy(),
                "expected_purchases_90d": values["expected_purchases_90d"].to_numpy(),
                "clv_12m": values["clv_12m"].to_numpy(),
                **{c: reasons[c].to_numpy(dtype=object) for c in ("reason_1", "reason_2", "reason_3")},
            })

    return run


def features_frame(batch: pd.DataFrame, bg_features, as_of) -> pd.DataFrame:
    """The `build_features` frame of feature rows from Spark, BG/NBD columns from the population's fit."""
    numeric = {n: batch[n].to_numpy(dtype=float) for n in NUMERIC}
    if bg_features is NOT_FITTED:
        nan = np.full(len(batch), np.nan)
        numeric.update({"bgnbd_p_alive": nan, "bgnbd_p_no_purchase_180d": nan.copy()})
    else:
        numeric.update(bg_nbd_columns(numeric["order_days"], numeric["tenure_days"], numeric["days_since_last_order"],
                                      params=bg_features))
    strings = {n: pa.array(batch[n], type=pa.string(), from_pandas=True) for n in ["customer_id", *CATEGORICAL]}
    return _frame(numeric, strings, len(batch), as_of)


def population_sample(rows, columns: list[str], size: int | None = None) -> pd.DataFrame:
    """`columns` of the customers `ml.clv`'s sampling fits on (seed 0), in the order it draws them.

    On one machine the fits draw `size` of the N customers (in customer_id order) with
    `numpy.random.default_rng(0).choice(N, size)`, or take all N up to that size. Here the
    same positions are drawn on the driver and only those rows are fetched from Spark.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    size = size or features.BG_NBD_SAMPLE
    n = rows.count()
    picked = rows.select("customer_id", *columns)
    if n <= size:
        return picked.orderBy("customer_id").toPandas()
    keep = np.random.default_rng(0).choice(n, size, replace=False)
    spark = rows.sparkSession
    positions = spark.createDataFrame(pd.DataFrame({"_pos": keep.astype(np.int64), "_draw": np.arange(size)}))
    numbered = picked.withColumn("_pos", F.row_number().over(Window.orderBy("customer_id")) - 1)
    return numbered.join(positions, "_pos").orderBy("_draw").drop("_pos", "_draw").toPandas()


def score_on_spark(
    spark,
    con,
    tables: dict[str, str],
    scores_path: str,
    as_of=None,
    models_dir: Path | str | None = None,
    thresholds: RiskThresholds | None = None,
    annual_discount_rate: float = 0.10,
    buckets: int | None = None,
) -> ScoreSummary:
    """Score every customer on Spark's workers (see the module docstring); returns the run's summary.

    `con`: the warehouse (DuckDB) that receives `ml.churn_scores`; its copy of the marts
    decides the cut-off and whether there is enough history, as on one machine. `tables`:
    each mart `ml.features` reads (`marts.fct_orders`, ...) -> its Parquet folder in the lake.
    `scores_path`: the folder Spark writes the scores to. `buckets`: tasks computing
    features, each over the customers of one hash bucket (default 1).
    """
    from ml.registry import load_artifact
    from ml.status import write_status

    run = ScoringRun.start(con, as_of, models_dir, thresholds)
    artifact = load_artifact(run.models_dir)
    # a mart without a folder is a domain without rows, as a missing table is on one machine
    present = {q: p for q, p in tables.items() if "://" in str(p) or Path(p).is_dir()}
    if ORDERS_TABLE not in present:
        raise FileNotFoundError(f"{ORDERS_TABLE} has no Parquet folder in the lake ({tables.get(ORDERS_TABLE)}): "
                                "run dbt on Spark first")
    buckets = buckets or 1
    feats = (spark.range(buckets, numPartitions=buckets)
             .mapInPandas(feature_rows(present, run.as_of, buckets), _feature_schema())
             .persist())
    try:
        sample = population_sample(feats, ["order_days", "tenure_days", "days_since_last_order", *RFM.values()])
        f, r, t = rfm_from_features(*(sample[c].to_numpy(dtype=float)
                                      for c in ("order_days", "tenure_days", "days_since_last_order")))
        try:
            bg_features = fit_bg_nbd_days(f, r, t)
        except (ValueError, RuntimeError):
            bg_features = NOT_FITTED
        bg, gg = clv_fits(*(sample[RFM[c]].to_numpy(dtype=float)
                            for c in ("frequency", "recency", "T", "monetary_value")))
        # the artifact and the fits travel with the task function (PySpark broadcasts a large
        # function once per executor; Spark Connect ships it with the plan)
        model = (artifact, bg_features, bg, gg)
        scored = feats.mapInPandas(score_rows(model, run.as_of, run.thresholds, annual_discount_rate), _score_schema())
        scored.write.mode("overwrite").parquet(scores_path)
        # drift of the features and scores against the model's reference, on the sample
        drift_rows = features_frame(population_sample(feats, [*NUMERIC, *CATEGORICAL]), bg_features, run.as_of)
    finally:
        feats.unpersist()
    files = f"{scores_path.rstrip('/')}/*.parquet".replace("'", "''")
    scored_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).floor("s").to_pydatetime()
    relation = (f"(select *, timestamp '{scored_at.isoformat(sep=' ')}' as scored_at, "
                f"date '{run.as_of.isoformat()}' as as_of_date, '{artifact.run_id}' as model_version "
                f"from read_parquet('{files}'))")
    write_score_rows(con, relation, run.as_of, artifact.run_id, run.history)
    write_status(con, as_of_date=run.as_of, scoring="scored", scoring_reason=None, model_version=artifact.run_id)
    _write_drift(con, drift_rows, run, artifact.run_id)
    return ScoreSummary.read(con)


def _write_drift(con, feats: pd.DataFrame, run: ScoringRun, run_id: str) -> None:
    """Drift of the sampled customers' features and scores (their scores read back from the warehouse)."""
    from ml.drift import drift_report, write_drift

    con.register("_drift_ids", pa.table({"customer_id": feats["customer_id"].astype(str).to_numpy(dtype=object),
                                         "_n": np.arange(len(feats))}))
    try:
        risk = np.array([r[0] for r in con.execute(
            "select s.churn_probability from _drift_ids i join ml.churn_scores s using (customer_id) order by i._n"
        ).fetchall()], dtype=float)
    finally:
        con.unregister("_drift_ids")
    try:
        drift = drift_report(feats, risk, run.models_dir, run_id=run_id)
    except FileNotFoundError:  # no reference sample stored with the model: the check reports it
        return
    write_drift(con, drift, run.as_of, run_id)
