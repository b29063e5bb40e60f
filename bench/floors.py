"""The floor of each stage of the full run: the least work that gives the same output, timed alone.

    python -m bench.floors ingest  --landing DIR --scratch FILE
    python -m bench.floors train   --warehouse FILE
    python -m bench.floors score   --warehouse FILE --models DIR
    python -m bench.floors publish --warehouse FILE --scratch FILE

`bench.run` runs each one in its own process (`bench.common.run_measured`) on the data of the
full run it has just measured, and reports the stage's seconds in that run ÷ the floor's. Each
prints one JSON line; its `seconds` covers only the timed part described below (no
interpreter start-up, no imports, no preparation):

- **ingest**: for each source, `CREATE TABLE <source> AS SELECT * FROM read_csv([its files])`
  into a new DuckDB file, closed (`bench.bench_ingest.step_baseline`): no sha256, no
  validation, no quarantine, no ledger, no identity resolution.
- **train**: the training matrices are built exactly as `ml.train.train` builds them (the same
  cut-offs, the same per-cut-off sample, `ml.features.labelled_features`, `model_input`) and
  are in memory before the clock starts; timed is only `ml.train.fit_calibrated`, the call
  training itself makes: the estimator's fit (early stopping on the same customer split) and
  its calibration on the calibration cut-off. Not timed: feature SQL, labels, the evaluation, the baselines
  (recency rule, logistic regression, BG/NBD), permutation importance, saving the model.
- **score**: today's features for every customer (`ml.features.build_features`) and the
  promoted model loaded from disk are in memory before the clock starts; timed is one
  `predict_proba` of that model on the whole matrix. Not timed: the feature SQL, the
  reasons (one more prediction per driver group), BG/NBD and CLV, recommendations, writing.
- **publish**: the same tables as `pipelines.publish` copies (every table and view of its
  schemas but those it leaves out), `CREATE TABLE ... AS SELECT *` each into a new DuckDB file
  `ATTACH`ed to a connection that has the warehouse attached read-only, under the same memory
  limit, closed: no sorting by customer, no masking of contact data, no metadata.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path

import duckdb


def floor_ingest(landing: Path, scratch: Path) -> dict:
    """A bare `read_csv` of every source's landing files into one table each (`bench_ingest`'s baseline)."""
    from bench.bench_ingest import READERS, step_baseline
    from pipelines.core.contract import SOURCE_NAMES
    from pipelines.ingest import landing_files

    files = [p for name in SOURCE_NAMES for p in landing_files(landing, name)]
    formats = {fmt for p in files for fmt in READERS if p.name.endswith("." + fmt)}
    fmt = "csv.gz" if formats == {"csv.gz"} else (formats.pop() if len(formats) == 1 else "csv")
    scratch.unlink(missing_ok=True)
    out = step_baseline(landing, scratch, fmt)
    mb = round(scratch.stat().st_size / 2**20, 1)
    scratch.unlink(missing_ok=True)
    return {"db_mb": mb, "seconds": round(out["seconds"], 3), "rows": out["rows"], "files": len(files), "format": fmt,
            "mb": round(sum(p.stat().st_size for p in files) / 2**20, 1)}


def _train_defaults() -> dict:
    """The keyword defaults of `ml.train.train`, so the floor follows what the pipeline's training uses."""
    from ml.train import train

    return {k: p.default for k, p in inspect.signature(train).parameters.items()
            if p.default is not inspect.Parameter.empty}


def floor_train(warehouse: Path) -> dict:
    """Fit and calibrate the promoted model's estimator on training matrices already in memory."""
    import pandas as pd

    from ml._threads import threads_for
    from ml.features import ORDERS_TABLE, labelled_features
    from ml.registry import model_input
    from ml.train import check_history, fit_calibrated, sample_share, usable_features

    d = _train_defaults()
    horizon, n_fit, step = d["horizon_days"], d["n_fit_cutoffs"], d["cutoff_step_days"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set enable_progress_bar = false")
        plan = check_history(con, d["as_of"], horizon, n_fit, step)
        customers = con.execute(f"select count(distinct customer_id) from {ORDERS_TABLE}").fetchone()[0]
        share = sample_share(customers, d["max_rows_per_cutoff"])
        fit = pd.concat([labelled_features(con, c, horizon, share) for c in plan.fit_cutoffs], ignore_index=True)
        cal = labelled_features(con, plan.calibration_cutoff, horizon, share)
    numeric, categorical = usable_features(fit)
    X_fit, y_fit = model_input(fit, numeric, categorical), fit["churned"].to_numpy()
    X_cal, y_cal = model_input(cal, numeric, categorical), cal["churned"].to_numpy()
    # the same thread limit as training (ml.train.train sets it from the shop's size)
    with threads_for(customers * (n_fit + 2)):
        t0 = time.perf_counter()
        booster, calibrated = fit_calibrated(numeric, categorical, X_fit, y_fit, fit["customer_id"], X_cal, y_cal,
                                             d["random_state"])
        seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 3), "fit_rows": len(X_fit), "calibration_rows": len(X_cal),
            "features": len(numeric) + len(categorical),
            "booster_iterations": int(booster.named_steps["model"].n_iter_), "calibration": calibrated.method}


def floor_score(warehouse: Path, models: Path) -> dict:
    """One `predict_proba` of the promoted model on every customer's features, already in memory."""
    from ml._threads import threads_for
    from ml.features import build_features, latest_order_date
    from ml.registry import load_artifact

    artifact = load_artifact(models)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set enable_progress_bar = false")
        feats = build_features(con, latest_order_date(con))
    X = artifact.model_input(feats)
    with threads_for(len(X)):  # as ml.score.score
        t0 = time.perf_counter()
        risk = artifact.model.predict_proba(X)[:, 1]
        seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 3), "rows": len(X), "features": X.shape[1], "model": artifact.run_id,
            "mean_risk": round(float(risk.mean()), 4)}


def published_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    """The (schema, table) pairs `pipelines.publish.publish` copies from the warehouse attached as `catalog`."""
    from pipelines.publish import NOT_PUBLISHED, PUBLISHED_SCHEMAS

    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = ? and table_schema in (select unnest(?)) order by 1, 2",
        [catalog, list(PUBLISHED_SCHEMAS)],
    ).fetchall()
    return [(s, t) for s, t in rows if (s, t) not in NOT_PUBLISHED]


def floor_publish(warehouse: Path, scratch: Path) -> dict:
    """`CREATE TABLE ... AS SELECT *` of every table a publish copies, into a new file."""
    from pipelines.core.config import duckdb_memory_limit

    scratch.unlink(missing_ok=True)
    limit = duckdb_memory_limit()
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    con.execute(f"set memory_limit = '{limit}'")
    con.execute(f"attach '{warehouse}' as wh (read_only)")
    con.execute(f"attach '{scratch}' as copy")
    tables = published_tables(con, "wh")
    rows = 0
    for schema in sorted({s for s, _ in tables}):
        con.execute(f'create schema copy."{schema}"')
    for schema, table in tables:
        con.execute(f'create table copy."{schema}"."{table}" as select * from wh."{schema}"."{table}"')
    con.execute("detach copy")
    seconds = time.perf_counter() - t0
    con.execute(f"attach '{scratch}' as copy (read_only)")
    for schema, table in tables:
        rows += con.execute(f'select count(*) from copy."{schema}"."{table}"').fetchone()[0]
    con.close()
    mb = round(scratch.stat().st_size / 2**20, 1)
    scratch.unlink(missing_ok=True)
    return {"seconds": round(seconds, 3), "tables": len(tables), "rows": rows, "mb": mb, "memory_limit": limit}


def main(argv: list[str] | None = None) -> int:
    """Run one floor and print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["ingest", "train", "score", "publish"])
    parser.add_argument("--landing", type=Path, help="ingest: the landing folder the run loaded")
    parser.add_argument("--warehouse", type=Path, help="train, score, publish: the warehouse of the run")
    parser.add_argument("--models", type=Path, help="score: the models folder (its promoted model)")
    parser.add_argument("--scratch", type=Path, help="ingest, publish: the DuckDB file to write (replaced)")
    args = parser.parse_args(argv)
    needed = {"ingest": ("landing", "scratch"), "train": ("warehouse",), "score": ("warehouse", "models"),
              "publish": ("warehouse", "scratch")}[args.stage]
    missing = [f"--{n}" for n in needed if getattr(args, n) is None]
    if missing:
        parser.error(f"{args.stage} needs {' '.join(missing)}")
    if args.stage == "ingest":
        out = floor_ingest(args.landing, args.scratch)
    elif args.stage == "train":
        out = floor_train(args.warehouse)
    elif args.stage == "score":
        out = floor_score(args.warehouse, args.models)
    else:
        out = floor_publish(args.warehouse, args.scratch)
    print(f"{args.stage} floor: {out['seconds']:.2f} s", flush=True)
    print(json.dumps({"stage": args.stage, **out}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
