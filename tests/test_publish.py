"""Publishing: snapshots switch atomically, old ones are pruned, a failed run keeps the last good one."""

from __future__ import annotations

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from pipelines.defs.ops import make_publish_asset
from pipelines.publish import (
    current_snapshot,
    publish_snapshot,
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
    first = publish_snapshot(wh, pub, run_info={"run_id": "r1"})
    assert current_snapshot(pub) == first
    assert _published_revenue(pub) == 100.0
    with duckdb.connect(str(first), read_only=True) as con:
        schemas = {r[0] for r in con.execute("select distinct table_schema from information_schema.tables").fetchall()}
        info = con.execute("select info->>'run_id' from meta.snapshot").fetchone()[0]
    assert "staging" not in schemas, "only marts/ml/exports are published: staging holds raw personal data"
    assert info == "r1"

    _warehouse(wh, 250.0)
    second = publish_snapshot(wh, pub)
    assert second != first and current_snapshot(pub) == second
    assert _published_revenue(pub) == 250.0
    assert not list(pub.glob(".*.tmp")), "no temporary files are left behind"


def test_only_the_newest_snapshots_are_kept(tmp_path):
    wh, pub = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 1.0)
    made = [publish_snapshot(wh, pub, keep=2) for _ in range(4)]
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
        ok = materialize([kpis, publish], instance=instance)
        assert ok.success
        good = current_snapshot(pub)
        assert _published_revenue(pub) == 100.0

        state.update(fail=True, second=True)
        failed = materialize([kpis, publish], instance=instance, raise_on_error=False)
        assert not failed.success
        assert current_snapshot(pub) == good
        assert _published_revenue(pub) == 100.0

        state.update(fail=False)
        assert materialize([kpis, publish], instance=instance).success
        assert current_snapshot(pub) != good
        assert _published_revenue(pub) == pytest.approx(999.0)
