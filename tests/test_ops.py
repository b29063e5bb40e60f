"""Operational behaviour: lock conflicts retry, other failures report their real cause."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest

from pipelines.defs.resources import WarehouseResource
from pipelines.runner import _root_message


def _connect(read_only: bool = False):
    from pipelines.defs.resources import WarehouseResource

    return WarehouseResource().connect(read_only=read_only)


def test_a_locked_warehouse_asks_dagster_for_a_retry(tmp_path, monkeypatch):
    monkeypatch.setenv("RETAIN_LOCK_WAIT_SECONDS", "1")

    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RETAIN_WAREHOUSE", raising=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}); print('ok', flush=True); "
         "time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(dg.RetryRequested):
            _connect()
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)
    with _connect() as con:  # lock released: connects normally
        assert con.execute("select 1").fetchall() == [(1,)]


def test_a_missing_warehouse_is_not_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("RETAIN_WAREHOUSE", str(tmp_path / "missing" / "warehouse.duckdb"))
    with pytest.raises(duckdb.IOException):
        _connect(read_only=True)


def test_the_run_summary_names_the_innermost_cause():
    inner = SimpleNamespace(message="LookupError: marts.fct_orders has no valid orders\n", cause=None)
    outer = SimpleNamespace(message="Error occurred while executing op ml__churn_model", cause=inner)
    assert _root_message(outer) == "LookupError: marts.fct_orders has no valid orders"
    assert _root_message(None) == ""


# The dashboard reads the warehouse on short read-only connections (contact details, the
# search by the beginning of an email, CRM downloads). DuckDB lets one process write a file
# or several read it, so a pipeline writer that opens the warehouse at that moment loses the
# race for its lock: each writer must retry, not fail the run.

@pytest.fixture
def read_by_the_dashboard(tmp_path, monkeypatch):
    """A warehouse that another process (standing in for the dashboard) holds open read-only."""
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RETAIN_WAREHOUSE", raising=False)
    monkeypatch.setenv("RETAIN_LOCK_WAIT_SECONDS", "1")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}, read_only=True); "
         "print('ok', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        yield {"warehouse": warehouse, "holder": holder}
    finally:
        holder.kill()
        holder.wait()


def _ingest_step():
    from pipelines.defs.ingest.assets import ingest_assets

    ingest_assets[0](dg.build_asset_context(), warehouse=WarehouseResource())


def _outreach_step():
    from pipelines.defs.outreach.assets import outreach_lists

    outreach_lists(dg.build_asset_context(), warehouse=WarehouseResource())


def _publish_step():
    from pipelines.defs.ops import make_publish_asset

    make_publish_asset([])(dg.build_asset_context(), warehouse=WarehouseResource())


@pytest.mark.parametrize("step", [_ingest_step, _outreach_step, _publish_step], ids=["ingest", "outreach", "publish"])
def test_a_writer_step_retries_while_the_dashboard_reads(step, read_by_the_dashboard):
    with pytest.raises(dg.RetryRequested):
        step()


def test_dbt_waits_for_a_lock_held_for_a_moment(read_by_the_dashboard, monkeypatch, tmp_path):
    from pipelines.core.config import PROJECT_ROOT
    from pipelines.defs.dbt.project import dbt_executable

    holder = read_by_the_dashboard["holder"]
    monkeypatch.setenv("RETAIN_WAREHOUSE", str(read_by_the_dashboard["warehouse"]))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "dbt-logs"))
    # The reader lets go after 2 s; dbt's first try to open the warehouse falls inside that.
    release = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(2); os.kill({holder.pid}, 9)"])
    started = time.monotonic()
    out = subprocess.run([str(dbt_executable()), "debug", "--profiles-dir", str(PROJECT_ROOT)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    release.wait()
    assert "Connection test: [OK connection ok]" in out.stdout, out.stdout[-2000:]
    assert time.monotonic() - started >= 2


def test_retain_ingest_by_hand_says_the_warehouse_is_busy(read_by_the_dashboard):
    from typer.testing import CliRunner

    from pipelines.cli import app

    out = CliRunner().invoke(app, ["ingest"])
    assert out.exit_code == 1 and "is busy" in out.output, out.output
