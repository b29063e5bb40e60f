"""retain on Spark, end to end: the same shop through both engines gives the same marts and scores.

One small generated shop (the same landing files, byte for byte, in two data folders) runs
through the real Dagster `full_job`, then one more day (`retain generate --next-day`'s
function) and the `daily_job`:
once with RETAIN_ENGINE=duckdb and once with RETAIN_ENGINE=spark (dbt-spark's local session,
Parquet raw layer in the lake, incremental models rewritten as Parquet). After each run every
table dbt built on Spark must equal DuckDB's (`pipelines.engines.compare_schema`: integers,
decimals, text and dates exactly, floats within 1e-9 relative), and so must the churn scores.
Data tests run in both builds and a failing one fails the run. On Spark the churn scores are
computed on Spark's workers (`ml.spark_score`, mapInPandas) and must equal DuckDB's.

Small on purpose (the session's 300-customer `cli_shop`, whose full run on DuckDB is the first
comparison and whose daily run on DuckDB, `cli_shop_daily`, the second; one shuffle partition,
interpreted plans, no UI): Spark's fixed cost per query is what this test pays, and each job
runs its dbt steps and scoring on one local Spark Connect server (`pipelines.runner`), so the
JVM starts once per job rather than once per step. The seconds of each run and stage are
printed (`-s`). Marked `spark`;
skipped, saying why, only when Java is missing.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pipelines.core.spark import JAVA_PACKAGE, java_available

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(not java_available(), reason=f"Spark needs a Java 17 runtime: apt-get install {JAVA_PACKAGE}"),
]

SCORE_TABLES = ["churn_scores"]


def _use(engine: str, data_dir: Path) -> None:
    from pipelines.core.config import export_environment

    keep = ("RETAIN_TEST_CUSTOMERS", "RETAIN_SPARK_REMOTE")  # the module's Spark Connect server, once started
    for var in [v for v in os.environ if v.startswith("RETAIN_") and v not in keep]:
        del os.environ[var]
    os.environ["RETAIN_DATA_DIR"] = str(data_dir)
    os.environ["RETAIN_ENGINE"] = engine
    # a few hundred rows per table: one partition and interpreted plans (no Java compiled per query)
    os.environ["RETAIN_SPARK_SHUFFLE_PARTITIONS"] = "1"
    os.environ["RETAIN_SPARK_CODEGEN"] = "false"
    export_environment()


def _compare(duck: Path, spark_folder: Path) -> dict:
    """Every table dbt built on Spark and the Spark run's scores against the DuckDB warehouse `duck`."""
    from pipelines.engines import MODEL_SCHEMAS, compare_schema, compare_warehouses

    lake = str(spark_folder / "lake" / "warehouse")
    diffs = [d for schema in MODEL_SCHEMAS for d in compare_schema(duck, schema, spark_warehouse_dir=lake)]
    scores = compare_warehouses(duck, spark_folder / "warehouse.duckdb", "ml", SCORE_TABLES)
    return {"models": diffs, "scores": scores}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cli_shop, cli_shop_daily):
    """The session's CLI-built shop (`cli_shop`, its full run on DuckDB, and `cli_shop_daily`, one
    more day and the daily job on DuckDB); its landing files through the full job, one more day
    and the daily job on Spark; compared after each job.

    Both Spark jobs, and the Python session of the tests below, share one local Spark Connect
    server.
    """
    from pipelines.core import spark as sp
    from pipelines.core.config import settings
    from pipelines.generate.next_day import append_next_day
    from pipelines.runner import run_job

    root = tmp_path_factory.mktemp("engines")
    folders = {"duckdb": cli_shop_daily[0], "spark": root / "spark"}
    shutil.copytree(cli_shop / "landing", folders["spark"] / "landing")
    saved = dict(os.environ)
    out: dict = {"seconds": {}, "folders": folders}

    def run(engine: str, job: str) -> None:
        if job == "daily_job":
            append_next_day(settings().landing)
        started = time.monotonic()
        summary = run_job(job)
        out["seconds"][f"{engine} {job}"] = round(time.monotonic() - started, 1)
        out["seconds"][f"{engine} {job} stages"] = {st.stage: round(st.seconds, 1) for st in summary.stages}
        assert summary.success, f"{engine} {job} failed: {summary.error}"
        out[(engine, job)] = summary

    out[("duckdb", "daily_job")] = cli_shop_daily[1]["summary"]
    try:
        _use("spark", folders["spark"])
        started = time.monotonic()
        with sp.local_connect_server():
            out["seconds"]["spark server start"] = round(time.monotonic() - started, 1)
            run("spark", "full_job")
            out["full_job"] = _compare(cli_shop / "warehouse.duckdb", folders["spark"])
            run("spark", "daily_job")
            out["daily_job"] = _compare(folders["duckdb"] / "warehouse.duckdb", folders["spark"])
            yield out
    finally:
        os.environ.clear()
        os.environ.update(saved)
        print("seconds per run:", out["seconds"])


@pytest.mark.parametrize("job", ["full_job", "daily_job"])
def test_every_dbt_table_equals_duckdb(runs, job):
    diffs = runs[job]["models"]
    assert len(diffs) >= 54, [str(d) for d in diffs]  # every table dbt builds but the views
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
    session = sp.session("retain-tests")  # a client of the module's Spark Connect server
    yield session
    session.stop()
    os.environ.clear()
    os.environ.update(saved)


def test_scores_were_computed_on_spark(runs):
    """The Spark run's scores came from Spark's workers: its Parquet files hold every score row."""
    from pipelines.core.warehouse import connect
    from pipelines.engines import parquet_relation

    folder = runs["folders"]["spark"]
    scores = folder / "lake" / "scores" / "churn_scores"
    assert list(scores.glob("*.parquet")), "no scores written by Spark"
    con = connect(folder / "warehouse.duckdb", read_only=True)
    try:
        rows = f"SELECT count(*), count(DISTINCT customer_id) FROM {parquet_relation(scores)}"
        from_spark = con.execute(rows).fetchone()
        assert from_spark[0] == from_spark[1] == con.execute("SELECT count(*) FROM ml.churn_scores").fetchone()[0] > 0
    finally:
        con.close()


def test_sampled_population_fits_are_those_of_one_machine(spark, runs, monkeypatch, tmp_path):
    """Above `BG_NBD_SAMPLE` customers the BG/NBD and Gamma-Gamma fits use a sample: Spark fetches the
    very customers one machine draws, and several buckets of customers score as one."""
    from ml import features
    from ml import score as one_machine
    from ml.inputs import INPUT_TABLES
    from ml.spark_score import score_on_spark
    from pipelines.core import spark as sp
    from pipelines.core.config import settings
    from pipelines.core.warehouse import connect
    from pipelines.engines import compare_warehouses

    monkeypatch.setattr(features, "BG_NBD_SAMPLE", 90)
    monkeypatch.setattr(one_machine, "BG_NBD_SAMPLE", 90)
    folder = runs["folders"]["spark"]
    paths = {name: tmp_path / f"{name}.duckdb" for name in ("duckdb", "spark")}
    for path in paths.values():
        shutil.copy(folder / "warehouse.duckdb", path)
    con = connect(paths["duckdb"])
    n = one_machine.score(con, models_dir=settings().models).rows
    con.close()
    assert n > 90, "the shop must have more customers than the sample for this test"
    con = connect(paths["spark"])
    summary = score_on_spark(spark, con, sp.table_paths(INPUT_TABLES), str(tmp_path / "scores"),
                             models_dir=settings().models, buckets=3)
    con.close()
    assert summary.rows == n
    (diff,) = compare_warehouses(paths["duckdb"], paths["spark"], "ml", SCORE_TABLES)
    assert diff.equal, str(diff)


def test_sources_are_registered_again_only_when_they_change(spark, runs):
    """dbt's on-run-start registers the lake's sources (about 30 catalog statements) only when they
    changed, schema by schema: the full job's first step registered `raw`, its later steps only
    the scores and lists scoring and outreach had just written, and the daily job's steps found
    everything as the full job left it."""
    from datetime import UTC, datetime

    props = {row.info_name: row.info_value for row in spark.sql("describe database extended raw").collect()}
    for schema in ("raw", "ml", "exports"):
        assert f"retain_sources_md5_{schema}," in props.get("Properties", ""), props

    def created(table: str) -> datetime:
        (value,) = [row.data_type for row in spark.sql(f"describe table extended {table}").collect()
                    if row.col_name == "Created Time"]
        return datetime.strptime(value, "%a %b %d %H:%M:%S %Z %Y").replace(tzinfo=UTC)

    full, daily = runs[("spark", "full_job")], runs[("spark", "daily_job")]
    raw, scores = created("raw.orders"), created("ml.churn_scores")
    assert datetime.fromisoformat(full.started_at) <= raw < scores < datetime.fromisoformat(daily.started_at)
    # the scores were registered after the first dbt step, training and scoring: raw was not again
    assert (scores - raw).total_seconds() > 10, (raw, scores)


def test_python_session_reads_the_marts_dbt_built(spark, runs):
    from pipelines.core import spark as sp
    from pipelines.core.warehouse import connect

    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert "-XX:+UseParallelGC" in spark.conf.get("spark.driver.extraJavaOptions")  # see session_conf
    customers = sp.table(spark, "marts", "dim_customers").count()
    con = connect(runs["folders"]["duckdb"] / "warehouse.duckdb", read_only=True)
    assert customers == con.execute("SELECT count(*) FROM marts.dim_customers").fetchone()[0] > 0
    con.close()


def test_rewrite_a_killed_run_left_is_finished_by_the_next_run(spark, runs):
    """A run killed while `insert overwrite` rewrote an incremental model leaves the model partly
    written and its complete stage behind: the next run over the model restores it from the stage
    (macros/spark_incremental.sql) and the model equals DuckDB's again."""
    from pipelines.defs.dbt.project import dbt_cli
    from pipelines.engines import compare_schema

    model = "stg_messaging__messages"
    lake = runs["folders"]["spark"] / "lake" / "warehouse"
    full = spark.table(f"staging.{model}").count()
    spark.sql(f"create table staging.{model}__dbt_stage using parquet as select * from staging.{model}")
    # what a kill during the overwrite leaves: some of the rows, the stage still registered
    spark.sql(f"insert overwrite table staging.{model} select * from staging.{model}__dbt_stage "
              "where pmod(hash(message_id), 2) = 0")
    assert 0 < spark.table(f"staging.{model}").count() < full

    assert dbt_cli(["run", "--select", model, "--quiet"]) == 0
    assert not spark.catalog.tableExists(f"staging.{model}__dbt_stage")
    (diff,) = compare_schema(runs["folders"]["duckdb"] / "warehouse.duckdb", "staging", [model],
                             spark_warehouse_dir=str(lake))
    assert diff.equal, str(diff)


def test_table_folder_a_killed_create_left_is_removed(spark, runs):
    """A run killed during `create table ... as` leaves files in a folder the catalog has no table
    for, and Spark refuses to create the table there again (LOCATION_ALREADY_EXISTS). A job's
    Connect server removes such folders when it starts; the registered tables stay."""
    from pipelines.core import spark as sp

    lake = runs["folders"]["spark"] / "lake" / "warehouse"
    orphan = lake / "marts.db" / "kpi_left_half_written"
    orphan.mkdir()
    shutil.copy(next((lake / "marts.db" / "dim_customers").glob("*.parquet")), orphan / "part-00000.parquet")
    with pytest.raises(Exception, match="LOCATION_ALREADY_EXISTS"):
        spark.sql("create table marts.kpi_left_half_written using parquet as select 1 as x")
    tables = sorted(p.name for p in (lake / "marts.db").iterdir() if p != orphan)

    assert sp.remove_unregistered_table_folders(spark, str(lake)) == [orphan]
    assert sorted(p.name for p in (lake / "marts.db").iterdir()) == tables
    assert spark.table("marts.dim_customers").count() > 0
    spark.sql("create table marts.kpi_left_half_written using parquet as select 1 as x")
    spark.sql("drop table marts.kpi_left_half_written")


def test_spark_writes_lake_files_owner_only(spark, runs):
    """The lake holds personal data: a table Spark writes is owner-only as written (Hadoop's
    file-system umask 077 in session_conf), not only after retain tightens the data folder."""
    lake = runs["folders"]["spark"] / "lake" / "warehouse"
    spark.sql("create table marts.retain_mode_probe using parquet as select 'a@shop.test' as email")
    try:
        written = [lake / "marts.db" / "retain_mode_probe", *(lake / "marts.db" / "retain_mode_probe").rglob("*")]
        assert any(p.suffix == ".parquet" for p in written)
        readable = {p.name: oct(p.stat().st_mode & 0o777) for p in written if p.stat().st_mode & 0o077}
        assert not readable, f"other accounts can read what Spark wrote: {readable}"
    finally:
        spark.sql("drop table marts.retain_mode_probe")


def test_dbts_connect_cursor_returns_what_dbt_sparks_own_cursor_returns(spark, runs):
    """retain's cursor for dbt-spark on Spark Connect (pipelines/dbt_spark_connect.py: a `select`
    in one request) gives dbt the same description and rows as dbt-spark's cursor, runs other
    statements as it does, and reports a query's error as dbt-spark does (DbtRuntimeError)."""
    from dbt.adapters.spark import session as dbt_session
    from dbt_common.exceptions import DbtRuntimeError

    from pipelines.dbt_spark_connect import install

    assert install()
    ours = dbt_session.Cursor
    theirs = next(c for c in ours.__mro__[1:] if c.__module__ == "dbt.adapters.spark.session")
    assert ours is not theirs
    params = {"spark.sql.session.timeZone": "UTC"}
    statements = [
        "/* {\"app\": \"dbt\"} */\nselect customer_id, first_order_at, cast(1.25 as decimal(18, 2)) as d, "
        "cast(null as string) as n from marts.dim_customers order by customer_id limit 5",
        "select count(*) as failures, count(*) != 0 as should_warn from (select customer_id from "
        "marts.dim_customers where customer_id is null) dbt_internal_test",
        "show tables in marts",
        "describe table marts.dim_customers",
    ]
    for sql in statements:
        got = []
        for cls in (ours, theirs):
            cursor = cls(server_side_parameters=params)
            cursor.execute(sql)
            got.append((cursor.description, [tuple(r) for r in cursor.fetchall()]))
        assert got[0] == got[1], sql
        assert got[0][1], sql
    cursor = ours(server_side_parameters=params)
    cursor.execute("select * from marts.no_such_table")
    with pytest.raises(DbtRuntimeError, match="TABLE_OR_VIEW_NOT_FOUND"):
        cursor.fetchall()
    cursor = ours(server_side_parameters=params)
    cursor.execute("create table marts.retain_cursor_probe using parquet as select 1 as x")
    assert spark.table("marts.retain_cursor_probe").count() == 1
    cursor.execute("drop table marts.retain_cursor_probe")
    assert not spark.catalog.tableExists("marts.retain_cursor_probe")
