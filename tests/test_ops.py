"""Operational behaviour: lock conflicts retry, other failures report their real cause."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest

from pipelines.runner import _root_message


def test_a_locked_warehouse_asks_dagster_for_a_retry(tmp_path, monkeypatch):
    from pipelines.defs.ml.assets import _connect

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
    from pipelines.defs.ml.assets import _connect

    monkeypatch.setenv("RETAIN_WAREHOUSE", str(tmp_path / "missing" / "warehouse.duckdb"))
    with pytest.raises(duckdb.IOException):
        _connect(read_only=True)


def test_the_run_summary_names_the_innermost_cause():
    inner = SimpleNamespace(message="LookupError: marts.fct_orders has no valid orders\n", cause=None)
    outer = SimpleNamespace(message="Error occurred while executing op ml__churn_model", cause=inner)
    assert _root_message(outer) == "LookupError: marts.fct_orders has no valid orders"
    assert _root_message(None) == ""
