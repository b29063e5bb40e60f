"""Publishing: snapshots switch atomically, old ones are pruned, a failed run keeps the last good one."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from pipelines.defs.ops import make_publish_asset
from pipelines.defs.resources import RESOURCES
from pipelines.publish import (
    current_snapshot,
    publish,
    read_run_status,
    record_run_status,
)


def _warehouse(path, revenue: float) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        con.execute(
            "create or replace table marts.kpi_monthly as select date '2026-10-01' as month, ? as revenue", [revenue]
        )
        con.execute("create schema if not exists staging")
        con.execute("create or replace table staging.secret as select 'a@example.com' as email")


def _published_revenue(published_dir) -> float:
    snap = current_snapshot(published_dir)
    with duckdb.connect(str(snap), read_only=True) as con:
        return con.execute("select revenue from marts.kpi_monthly").fetchone()[0]


def test_nothing_published_yet(tmp_path):
    assert current_snapshot(tmp_path / "published") is None
    assert read_run_status(tmp_path / "published") == {}


def test_snapshot_copies_only_published_schemas_and_switches(tmp_path):
    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 100.0)
    first = publish(wh, pub, run_info={"run_id": "r1"}).path
    assert current_snapshot(pub) == first
    assert _published_revenue(pub) == 100.0
    with duckdb.connect(str(first), read_only=True) as con:
        schemas = {r[0] for r in con.execute("select distinct table_schema from information_schema.tables").fetchall()}
        info = con.execute("select info->>'run_id' from meta.snapshot").fetchone()[0]
    assert "staging" not in schemas, "only marts/ml/exports are published: staging holds raw personal data"
    assert info == "r1"

    _warehouse(wh, 250.0)
    second = publish(wh, pub).path
    assert second != first and current_snapshot(pub) == second
    assert _published_revenue(pub) == 250.0
    assert not list(pub.glob(".*.tmp")), "no temporary files are left behind"


def test_only_the_newest_snapshots_are_kept(tmp_path):
    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 1.0)
    made = [publish(wh, pub, keep=2).path for _ in range(4)]
    kept = sorted(pub.glob("snapshot-*.duckdb"))
    assert kept == made[-2:]
    assert current_snapshot(pub) == made[-1]


def test_run_status_keeps_last_success_after_a_failure(tmp_path):
    pub = tmp_path / "published"
    record_run_status(pub, {"run_id": "ok", "success": True})
    record_run_status(pub, {"run_id": "bad", "success": False, "failed_checks": ["marts/kpi_monthly:x"]})
    status = read_run_status(pub)
    assert status["last_run"]["run_id"] == "bad"
    assert status["last_success"]["run_id"] == "ok"


def test_a_failed_run_never_replaces_the_published_snapshot(tmp_path, monkeypatch):
    """Real Dagster: the publish asset sits downstream of everything, so a failure upstream skips it."""
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    for var in ("RETAIN_WAREHOUSE", "RETAIN_PUBLISHED"):
        monkeypatch.delenv(var, raising=False)
    wh, pub = tmp_path / "warehouse.duckdb", tmp_path / "published"
    _warehouse(wh, 100.0)

    state = {"fail": False}

    @asset(key=AssetKey(["marts", "kpi_monthly"]))
    def kpis() -> None:
        if state["fail"]:
            raise RuntimeError("a dbt test failed")
        _warehouse(wh, 100.0 if not state.get("second") else 999.0)

    publish = make_publish_asset([kpis.key])
    with DagsterInstance.ephemeral() as instance:
        ok = materialize([kpis, publish], instance=instance, resources=RESOURCES)
        assert ok.success
        good = current_snapshot(pub)
        assert _published_revenue(pub) == 100.0

        state.update(fail=True, second=True)
        failed = materialize([kpis, publish], instance=instance, raise_on_error=False, resources=RESOURCES)
        assert not failed.success
        assert current_snapshot(pub) == good
        assert _published_revenue(pub) == 100.0

        state.update(fail=False)
        assert materialize([kpis, publish], instance=instance, resources=RESOURCES).success
        assert current_snapshot(pub) != good
        assert _published_revenue(pub) == pytest.approx(999.0)


# ----------------------------------------------------------------------------- incremental publishing


def _timeline_warehouse(path) -> None:
    """A small warehouse shaped like retain's: an order fact, staged messages and tickets, a timeline view."""
    with duckdb.connect(str(path)) as con:
        for schema in ("marts", "staging", "ml"):
            con.execute(f"create schema if not exists {schema}")
        con.execute(
            """
            create table marts.fct_orders as
            select 'o' || i as order_id, 'c' || lpad(cast(i % 50 as varchar), 3, '0') as customer_id,
                   timestamp '2026-01-01' + to_days(i) as ordered_at, 10.0 * i as total,
                   timestamp '2026-06-01 06:00' as _built_at
            from range(200) as t(i)
            """
        )
        con.execute(
            """
            create table staging.stg_messaging__messages as
            select 'm' || i as message_id, 'c' || lpad(cast(i % 60 as varchar), 3, '0') as customer_id,
                   timestamp '2026-01-01' + to_hours(i) as sent_at, 'email' as channel,
                   1 as _load_id, timestamp '2026-06-01 06:00' as _built_at
            from range(1000) as t(i)
            """
        )
        con.execute(
            """
            create table staging.stg_helpdesk__support_tickets as
            select 't' || i as ticket_id, 'c' || lpad(cast(i as varchar), 3, '0') as customer_id,
                   timestamp '2026-02-01' + to_days(i) as created_at, 1 as _load_id
            from range(10) as t(i)
            """
        )
        con.execute(
            """
            create view marts.fct_customer_events as
            select 'order:' || order_id as event_id, customer_id, ordered_at as event_at, 'order' as event_type
            from marts.fct_orders
            union all
            select 'message:' || message_id, customer_id, sent_at, 'message' from staging.stg_messaging__messages
            union all
            select 'ticket:' || ticket_id, customer_id, created_at, 'ticket' from staging.stg_helpdesk__support_tickets
            """
        )
        con.execute(
            """
            create table ml.churn_scores_history as
            select 'c' || i as customer_id, date '2026-06-01' as as_of_date, 'm1' as model_version,
                   timestamp '2026-06-01 07:00' as scored_at, 0.5 as churn_probability
            from range(50) as t(i)
            """
        )
        con.execute("create table marts.kpi_monthly as select date '2026-06-01' as month, 1.0 as revenue")


def _one_more_day(path) -> None:
    """New orders for two customers, new messages for a third, a new ticket version for a fourth, new scores."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            """
            insert into marts.fct_orders values
              ('o900', 'c001', timestamp '2026-06-02 10:00', 99.0, timestamp '2026-06-02 06:00'),
              ('o901', 'c002', timestamp '2026-06-02 11:00', 5.0, timestamp '2026-06-02 06:00')
            """
        )
        # dbt rebuilt every order of a changed customer
        con.execute("update marts.fct_orders set _built_at = timestamp '2026-06-02 06:00' where customer_id = 'c001'")
        con.execute(
            "insert into staging.stg_messaging__messages values "
            "('m9000', 'c003', timestamp '2026-06-02 09:00', 'sms', 2, timestamp '2026-06-02 06:00')"
        )
        con.execute(
            "update staging.stg_helpdesk__support_tickets set created_at = timestamp '2026-06-02', _load_id = 2 "
            "where ticket_id = 't4'"
        )
        con.execute(
            """
            insert into ml.churn_scores_history
            select customer_id, date '2026-06-02', 'm1', timestamp '2026-06-02 07:00', 0.4
            from ml.churn_scores_history where as_of_date = date '2026-06-01'
            """
        )
        con.execute("update marts.kpi_monthly set revenue = 2.0")


def _rows(snapshot, sql: str) -> list:
    with duckdb.connect(str(snapshot), read_only=True) as con:
        return con.execute(sql).fetchall()


def _info(snapshot) -> dict:
    return json.loads(_rows(snapshot, "select info from meta.snapshot")[0][0])


def test_incremental_publish_equals_a_full_one(tmp_path):
    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _timeline_warehouse(wh)
    first = publish(wh, pub, incremental=True)
    assert first.mode == "full", "nothing to build on yet"
    _one_more_day(wh)

    inc = publish(wh, pub, incremental=True)
    assert inc.mode == "incremental", inc.reason
    assert inc.changed_customers == 4  # c001, c002 (orders), c003 (message), c004 (ticket)
    full = publish(wh, tmp_path / "full", incremental=False)
    for table, order in [
        ("marts.fct_customer_events", "event_id"),
        ("marts.fct_orders", "order_id"),
        ("ml.churn_scores_history", "customer_id, as_of_date"),
        ("marts.kpi_monthly", "month"),
    ]:
        got = _rows(inc.path, f"select * from {table} order by {order}")
        want = _rows(full.path, f"select * from {table} order by {order}")
        assert got == want, table
    assert _rows(inc.path, "select count(*) from ml.churn_scores_history")[0][0] == 100
    info = _info(inc.path)
    assert info["mode"] == "incremental" and info["generation"] == 1

    # the full snapshot stores the timeline in customer order
    stored = [r[0] for r in _rows(full.path, "select customer_id from marts.fct_customer_events")]
    assert stored == sorted(stored)


def test_incremental_publish_drops_history_batches_thinned_in_the_warehouse(tmp_path):
    from pipelines.core.history import HistoryPolicy

    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _timeline_warehouse(wh)
    publish(wh, pub, incremental=True)
    _one_more_day(wh)
    with duckdb.connect(str(wh)) as con:  # the run that wrote 2026-06-02 thinned the day before away
        assert HistoryPolicy(daily_days=0, keep_days=1).prune(
            con, "ml.churn_scores_history", "as_of_date"
        ) == 50
    inc = publish(wh, pub, incremental=True)
    assert inc.mode == "incremental", inc.reason
    assert _rows(inc.path, "select distinct as_of_date from ml.churn_scores_history") == [(date(2026, 6, 2),)]


def test_incremental_publish_falls_back_to_full_when_it_cannot_be_exact(tmp_path):
    from pipelines.publish import MAX_INCREMENTAL_GENERATIONS

    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _timeline_warehouse(wh)
    publish(wh, pub)

    # a deleted row is not announced by any watermark: the row counts of the keyed tables catch it
    with duckdb.connect(str(wh)) as con:
        con.execute("delete from marts.fct_orders where order_id = 'o5'")
    result = publish(wh, pub, incremental=True)
    assert result.mode == "full" and "rows after the incremental publish" in result.reason
    assert _rows(result.path, "select count(*) from marts.fct_customer_events where event_id = 'order:o5'") == [(0,)]

    # a change source that went away (a renamed model, a dropped watermark column) publishes in full
    with duckdb.connect(str(wh)) as con:
        con.execute("alter table staging.stg_helpdesk__support_tickets drop column _load_id")
    result = publish(wh, pub, incremental=True)
    assert result.mode == "full" and "change sources" in result.reason
    with duckdb.connect(str(wh)) as con:
        con.execute("alter table staging.stg_helpdesk__support_tickets add column _load_id integer default 1")
    publish(wh, pub)

    # a changed view (a new version of the timeline) publishes in full
    with duckdb.connect(str(wh)) as con:
        con.execute(
            "create or replace view marts.fct_customer_events as "
            "select 'order:' || order_id as event_id, customer_id, ordered_at as event_at, 'order' as event_type "
            "from marts.fct_orders"
        )
    result = publish(wh, pub, incremental=True)
    assert result.mode == "full" and "views" in result.reason

    # after MAX_INCREMENTAL_GENERATIONS incremental ones, a full one re-sorts everything
    modes = [publish(wh, pub, incremental=True).mode for _ in range(MAX_INCREMENTAL_GENERATIONS + 1)]
    assert modes == ["incremental"] * MAX_INCREMENTAL_GENERATIONS + ["full"]


def test_big_timeline_is_copied_in_sorted_customer_ranges(tmp_path, monkeypatch):
    import pipelines.publish as publishing

    monkeypatch.setattr(publishing, "CHUNK_ROWS", 150)  # 1,210 events: 9 ranges
    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _timeline_warehouse(wh)
    snap = publishing.publish(wh, pub).path
    stored = _rows(snap, "select customer_id, event_at, event_id from marts.fct_customer_events")
    assert len(stored) == 1210
    assert stored == sorted(stored)
    with duckdb.connect(str(wh), read_only=True) as con:
        want = con.execute("select * from marts.fct_customer_events order by event_id").fetchall()
    assert _rows(snap, "select * from marts.fct_customer_events order by event_id") == want


def test_a_bad_memory_limit_is_named_and_keeps_the_published_snapshot(tmp_path, monkeypatch):
    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 100.0)
    good = publish(wh, pub).path
    monkeypatch.setenv("RETAIN_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="RETAIN_DUCKDB_MEMORY_LIMIT='lots' is not a memory size"):
        publish(wh, pub)
    assert current_snapshot(pub) == good and sorted(pub.glob("*snapshot-*")) == [good]
    monkeypatch.setenv("RETAIN_DUCKDB_MEMORY_LIMIT", "512MB")
    assert publish(wh, pub).mode == "full"


def test_a_publish_that_fails_midway_leaves_no_file_and_keeps_the_snapshot(tmp_path, monkeypatch):
    import pipelines.publish as publishing

    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _timeline_warehouse(wh)
    good = publish(wh, pub).path

    def broken(*args, **kwargs):
        raise duckdb.IOException("disk full")

    monkeypatch.setattr(publishing, "_copy_by_customer_ranges", broken)
    for incremental in (False, True):
        with duckdb.connect(str(wh)) as con:  # something changed, so the incremental path copies
            con.execute("update marts.kpi_monthly set revenue = revenue + 1")
        if incremental:
            monkeypatch.setattr(publishing, "_sync_batches", broken)
        with pytest.raises(duckdb.IOException, match="disk full"):
            publish(wh, pub, incremental=incremental)
        assert current_snapshot(pub) == good
        assert sorted(p.name for p in pub.iterdir()) == sorted([good.name, "CURRENT"])
