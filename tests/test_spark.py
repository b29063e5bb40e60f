"""retain on Spark, end to end: the same shop through both engines gives the same marts and scores.

One small generated shop (the same landing files, byte for byte, in two data folders) runs
through the real Dagster `full_job`, then `retain generate --next-day` and the `daily_job`:
once with RETAIN_ENGINE=duckdb and once with RETAIN_ENGINE=spark (dbt-spark's local session,
Parquet raw layer in the lake, incremental models rewritten as Parquet). After each run every
table dbt built on Spark must equal DuckDB's (`pipelines.engines.compare_schema`: integers,
decimals, text and dates exactly, floats within 1e-9 relative), and so must the churn scores.
Data tests run in both builds and a failing one fails the run.

Small on purpose (a few hundred customers, 2 shuffle partitions, no UI): Spark's fixed cost
per query is what this test pays. Skipped, saying why, only when Java is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipelines.core.spark import JAVA_PACKAGE, java_available

pytestmark = pytest.mark.skipif(
    not java_available(), reason=f"Spark needs a Java 17 runtime: apt-get install {JAVA_PACKAGE}"
)

CUSTOMERS = 400
SEED = 13
ENGINES = ("duckdb", "spark")
SCORE_TABLES = ["churn_scores"]


def _use(engine: str, data_dir: Path) -> None:
    from pipelines.core.config import export_environment

    for var in [v for v in os.environ if v.startswith("RETAIN_") and v != "RETAIN_TEST_CUSTOMERS"]:
        del os.environ[var]
    os.environ["RETAIN_DATA_DIR"] = str(data_dir)
    os.environ["RETAIN_ENGINE"] = engine
    os.environ["RETAIN_SPARK_SHUFFLE_PARTITIONS"] = "2"
    os.environ["RETAIN_SPARK_DRIVER_MEMORY"] = "1g"
    export_environment()


def _compare(folders: dict[str, Path]) -> dict:
    from pipelines.engines import MODEL_SCHEMAS, compare_schema, compare_warehouses

    duck = folders["duckdb"] / "warehouse.duckdb"
    lake = str(folders["spark"] / "lake" / "warehouse")
    diffs = [d for schema in MODEL_SCHEMAS for d in compare_schema(duck, schema, spark_warehouse_dir=lake)]
    scores = compare_warehouses(duck, folders["spark"] / "warehouse.duckdb", "ml", SCORE_TABLES)
    return {"models": diffs, "scores": scores}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Full run, comparison, next day, daily run, comparison: on both engines."""
    from pipelines.core.config import settings
    from pipelines.generate import generate
    from pipelines.generate.next_day import append_next_day
    from pipelines.runner import run_job

    root = tmp_path_factory.mktemp("engines")
    folders = {engine: root / engine for engine in ENGINES}
    saved = dict(os.environ)
    out: dict = {"seconds": {}}
    try:
        for job in ("full_job", "daily_job"):
            for engine, folder in folders.items():
                _use(engine, folder)
                if job == "full_job":
                    generate(settings().landing, customers=CUSTOMERS, seed=SEED)
                else:
                    append_next_day(settings().landing)
                started = time.monotonic()
                summary = run_job(job)
                out["seconds"][f"{engine} {job}"] = round(time.monotonic() - started, 1)
                assert summary.success, f"{engine} {job} failed: {summary.error}"
                out[(engine, job)] = summary
            out[job] = _compare(folders)
        out["folders"] = folders
        yield out
    finally:
        os.environ.clear()
        os.environ.update(saved)
        print("seconds per run:", out["seconds"])


@pytest.mark.parametrize("job", ["full_job", "daily_job"])
def test_every_dbt_table_equals_duckdb(runs, job):
    diffs = runs[job]["models"]
    assert len(diffs) >= 31, [str(d) for d in diffs]  # every table dbt builds but one view
    unequal = [str(d) for d in diffs if not d.equal]
    assert not unequal, unequal


@pytest.mark.parametrize("job", ["full_job", "daily_job"])
def test_scores_equal_duckdb(runs, job):
    (diff,) = runs[job]["scores"]
    assert diff.rows[0] > 0, "the DuckDB run scored nobody: the shop is too small for a churn model"
    assert diff.equal, str(diff)


def test_daily_run_is_incremental_on_spark(runs):
    """The daily job rewrote the new day's rows, not history: `_built_at` keeps the full run's time."""
    from pipelines.core.warehouse import scratch
    from pipelines.engines import parquet_relation

    summary = runs[("spark", "daily_job")]
    assert "train" not in {st.stage for st in summary.stages}
    lake = runs["folders"]["spark"] / "lake" / "warehouse"
    con = scratch()
    builds = con.execute(
        f"SELECT count(DISTINCT _built_at) FROM {parquet_relation(lake / 'staging.db' / 'stg_messaging__messages')}"
    ).fetchone()[0]
    assert builds == 2, "the full run's messages kept their build time and the new day's got the daily run's"


def test_raw_layer_is_parquet_per_load_matching_the_ledger(runs):
    """Spark read the raw rows from the lake: one folder per committed load, none half-written."""
    from pipelines.core.warehouse import connect
    from pipelines.engines import parquet_relation

    folder = runs["folders"]["spark"]
    raw = folder / "lake" / "raw"
    con = connect(folder / "warehouse.duckdb", read_only=True)
    ledger = con.execute(
        "SELECT source, load_id, rows_loaded FROM raw._loads WHERE status = 'loaded' AND rows_loaded > 0"
    ).fetchall()
    assert any(source == "orders" for source, *_ in ledger)
    for source, load_id, rows in ledger:
        part = raw / source / f"load-{load_id:09d}"
        assert part.is_dir(), f"load {load_id} of {source} is in the ledger but not in the lake"
        assert con.execute(f"SELECT count(*) FROM {parquet_relation(part)}").fetchone()[0] == rows
    assert not list(raw.glob("*/.tmp-*")), "a half-written load folder was left behind"
    con.close()


@pytest.fixture(scope="module")
def spark(runs):
    """One local Spark session for this module, reading the Spark run's lake."""
    from pipelines.core import spark as sp

    saved = dict(os.environ)
    _use("spark", runs["folders"]["spark"])
    session = sp.session("retain-tests")
    yield session
    session.stop()
    os.environ.clear()
    os.environ.update(saved)


def test_python_session_reads_the_marts_dbt_built(spark, runs):
    from pipelines.core import spark as sp
    from pipelines.core.warehouse import connect

    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    customers = sp.table(spark, "marts", "dim_customers").count()
    con = connect(runs["folders"]["duckdb"] / "warehouse.duckdb", read_only=True)
    assert customers == con.execute("SELECT count(*) FROM marts.dim_customers").fetchone()[0] > 0
    con.close()
