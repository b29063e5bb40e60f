"""The daily job after one more day of data, end to end, on a copy of the shared warehouse.

Real Dagster, dbt and DuckDB: the new files are ingested, dbt builds incrementally with its
tests scoped to the rows it wrote, the customers are re-scored, and the dashboard snapshot is
published incrementally, and must hold exactly what a full publish of the same warehouse holds.
"""

from __future__ import annotations

import json
import os
import shutil

import duckdb
import pytest


@pytest.fixture(scope="module")
def daily(pipeline, tmp_path_factory):
    """Copy the shared data folder, add one day of landing files and run `daily_job` on the copy."""
    from pipelines.core.config import export_environment
    from pipelines.generate.next_day import append_next_day
    from pipelines.runner import run_job

    data_dir = tmp_path_factory.mktemp("retain-daily") / "data"
    shutil.copytree(pipeline.data_dir, data_dir)
    saved = dict(os.environ)
    try:
        for var in [v for v in os.environ if v.startswith("RETAIN_") and v != "RETAIN_TEST_CUSTOMERS"]:
            del os.environ[var]
        os.environ["RETAIN_DATA_DIR"] = str(data_dir)
        s = export_environment()
        increment = append_next_day(s.landing)
        summary = run_job("daily_job")
        yield {"summary": summary, "increment": increment, "settings": s}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_daily_job_takes_in_the_new_day_only(daily):
    summary = daily["summary"]
    assert summary.success, summary.error
    ingest = next(st for st in summary.stages if st.stage == "ingest")
    assert ingest.rows_in == sum(daily["increment"]["rows"].values()) > 0
    assert {st.stage for st in summary.stages} >= {"ingest", "dbt", "score", "outreach", "publish"}
    assert "train" not in {st.stage for st in summary.stages}, "the daily job scores with the current model"


def test_daily_job_publishes_incrementally_and_exactly(daily):
    from pipelines.publish import BY_CUSTOMER, CHANGE_SOURCES, current_snapshot

    s = daily["settings"]
    snap = current_snapshot(s.published)
    con = duckdb.connect()
    con.execute(f"attach '{snap}' as snap (read_only)")
    con.execute(f"attach '{s.warehouse}' as wh (read_only)")
    info = json.loads(con.execute("select info from snap.meta.snapshot").fetchone()[0])
    assert info["mode"] == "incremental", info["reason"]
    # every change source exists in retain's warehouse: a renamed model must fail here, not go unseen
    assert set(info["watermarks"]) == {f"{table}.{column}" for table, column in CHANGE_SOURCES}
    assert info["generation"] == 1
    # the rewritten customer-keyed tables hold exactly the warehouse's rows
    for schema, table in BY_CUSTOMER:
        for a, b in (("wh", "snap"), ("snap", "wh")):
            extra = con.execute(
                f"select count(*) from (select * from {a}.{schema}.{table} "
                f"except all select * from {b}.{schema}.{table})"
            ).fetchone()[0]
            assert extra == 0, f"{schema}.{table}: {extra} rows in {a} but not in {b}"
    day = daily["increment"]["day"]
    new_orders = con.execute(
        "select count(*) from snap.marts.fct_orders where cast(ordered_at as date) = ?", [day]
    ).fetchone()[0]
    assert new_orders == daily["increment"]["rows"]["orders"]
    # the score history and the outreach lists hold both runs' batches, like the warehouse
    for batches in (
        "select as_of_date, model_version, count(*) from {}.ml.churn_scores_history group by all order by all",
        "select run_id, count(*), max(created_at) from {}.exports.outreach_lists group by all order by all",
        "select run_id, count(*), max(created_at) from {}.exports.suppressions group by all order by all",
    ):
        history = con.execute(batches.format("snap")).fetchall()
        assert len(history) == 2 and history == con.execute(batches.format("wh")).fetchall()
