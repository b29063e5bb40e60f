"""The daily job after one more day of data, end to end, on a copy of the session's CLI-built shop,
run as the Dagster daemon runs a scheduled or sensor run (`dagster.execute_job`, the job's own executor).

Real Dagster, dbt and DuckDB: the new files are ingested, dbt builds incrementally with its
tests scoped to the rows it wrote, the customers are re-scored, and the dashboard snapshot is
published incrementally, and must hold exactly what a full publish of the same warehouse holds.
"""

from __future__ import annotations

import json
import os

import duckdb
import pytest


@pytest.fixture(scope="module")
def daily(cli_shop_daily):
    """The session's CLI-built shop after one more day of landing files and `daily_job` (`cli_shop_daily`)."""
    from pipelines.core.config import settings

    data_dir, built = cli_shop_daily
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("RETAIN_") and v != "RETAIN_TEST_CUSTOMERS"]:
            mp.delenv(var)
        mp.setenv("RETAIN_DATA_DIR", str(data_dir))
        yield {**built, "settings": settings()}


def test_daily_job_takes_in_the_new_day_only(daily):
    summary = daily["summary"]
    assert summary.success, summary.error
    ingest = next(st for st in summary.stages if st.stage == "ingest")
    assert ingest.rows_in == sum(daily["increment"]["rows"].values()) > 0
    assert {st.stage for st in summary.stages} >= {"ingest", "dbt", "score", "outreach", "publish"}
    assert "train" not in {st.stage for st in summary.stages}, "the daily job scores with the current model"


def test_a_run_the_daemon_starts_runs_its_steps_in_one_process(daily):
    """Scheduled and sensor runs use the job's executor: retain's runs every step in the run's
    process, around the warm dbt, instead of Dagster's default of one new process per step."""
    from pipelines.definitions import defs

    assert {defs.resolve_job_def(job).executor_def.name for job in ("full_job", "daily_job", "retrain_job")} == {
        "retain_in_process"
    }
    assert any(m.startswith("Executing steps in process") for m in daily["engine_events"]), daily["engine_events"]
    assert not any("multiprocess" in m for m in daily["engine_events"]), daily["engine_events"]
    assert len(daily["dbt_messages"]) == 3, daily["dbt_messages"]
    assert all("a fork of the job's warm dbt" in m for m in daily["dbt_messages"]), daily["dbt_messages"]


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


def test_daily_job_rebuilds_the_order_lines_of_changed_customers_only_and_exactly(daily):
    """marts.fct_order_lines after the incremental run equals a full rebuild from staging and fct_orders."""
    assert daily["summary"].success, daily["summary"].error
    con = duckdb.connect(str(daily["settings"].warehouse), read_only=True)
    columns = ("order_id, line_number, customer_id, ordered_at, purchase_number, product_id, product_name, "
               "category, quantity, line_amount, is_returned, _source_loaded_at")
    con.execute("""create temp table rebuilt as
        select i.order_id, i.line_number, o.customer_id, o.ordered_at,
               dense_rank() over (partition by o.customer_id order by o.ordered_at) as purchase_number,
               i.product_id, coalesce(i.product_name, i.product_id) as product_name,
               coalesce(i.category, 'unknown') as category, i.quantity, i.line_amount, o.has_return as is_returned,
               greatest(o._source_loaded_at, i._loaded_at) as _source_loaded_at
        from staging.stg_shop__order_items i
        join (select * from marts.fct_orders where is_valid) o on o.order_id = i.order_id""")
    for a, b in (("marts.fct_order_lines", "rebuilt"), ("rebuilt", "marts.fct_order_lines")):
        extra = con.execute(f"select count(*) from (select {columns} from {a} except all "
                            f"select {columns} from {b})").fetchone()[0]
        assert extra == 0, f"{extra} order lines in {a} but not in {b}"
    # only the customers of the new day were rewritten; every other row kept its build time
    rewritten, total, new_day = con.execute("""
        select count(*) filter (where _built_at = (select max(_built_at) from marts.fct_order_lines)), count(*),
               count(*) filter (where cast(ordered_at as date) = ?)
        from marts.fct_order_lines""", [daily["increment"]["day"]]).fetchone()
    con.close()
    assert new_day > 0 and new_day <= rewritten < total / 10
