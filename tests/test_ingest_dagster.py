"""Ingestion through Dagster: the assets and blocking checks in one real run, and the sensor."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.core.contract import SOURCE_NAMES
from pipelines.defs import ingest as ingest_defs
from pipelines.defs.ingest.sensor import SETTLE_ENV
from pipelines.defs.resources import RESOURCES


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """RETAIN_DATA_DIR pointing at an empty temporary folder."""
    for var in list(os.environ):
        if var.startswith("RETAIN_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    (tmp_path / "landing").mkdir()
    return tmp_path


def write(path: Path, text: str, age_seconds: float = 60) -> Path:
    """Write a landing file whose mtime lies `age_seconds` in the past."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def test_definitions_shape():
    assert ingest_defs.jobs == [ingest_defs.ingest_job]
    assert [s.name for s in ingest_defs.sensors] == ["landing_sensor"]
    *sources, identity = ingest_defs.assets
    keys = [a.key for a in sources]
    assert keys == [dg.AssetKey(["raw", name]) for name in SOURCE_NAMES]
    # the customer identity table and its match rates, after every source (docs/importing.md)
    assert set(identity.keys) == {dg.AssetKey(["raw", "_customer_identity"]), dg.AssetKey(["raw", "_identity_match"])}
    for a in ingest_defs.assets:
        assert set(a.group_names_by_key.values()) == {"ingest"}
        assert a.op.pool == "duckdb_writer"
    checks = [next(iter(c.check_keys)) for c in ingest_defs.asset_checks]
    assert [(k.asset_key, k.name) for k in checks] == [(key, "ledger_balanced") for key in keys]
    for c in ingest_defs.asset_checks:
        assert c.node_def.pool == "duckdb_writer"
        assert all(spec.blocking for spec in c.check_specs)
    defs = dg.Definitions(assets=ingest_defs.assets, asset_checks=ingest_defs.asset_checks,
                          jobs=ingest_defs.jobs, sensors=ingest_defs.sensors, resources=RESOURCES)
    job = defs.resolve_job_def("ingest_job")
    # one per source, and the customer identity table with its match rates
    assert len(job.asset_layer.executable_asset_keys) == 8 + 2


def test_materialize_all_sources_with_checks(data_dir):
    """One real in-process run of the 8 assets and their blocking checks."""
    landing = data_dir / "landing"
    write(landing / "orders" / "o.csv", "order_id,customer_id,ordered_at,total,coupon\n"
                                        "O1,C1,2024-01-01T10:00:00+01:00,10.00,WELCOME\n"
                                        "O2,C2,2024-01-02,-1,\n")
    write(landing / "customers" / "c.jsonl", '{"customer_id": "C1", "email": "a@example.com"}\n'
                                             '{"customer_id": "C2", "email": "b@example.com"}\n')
    write(landing / "reviews" / "r.csv", "review_id;customer_id\nR1;C1\n")  # rejected: wrong delimiter
    result = dg.materialize(
        [*ingest_defs.assets, *ingest_defs.asset_checks], instance=dg.DagsterInstance.ephemeral(), resources=RESOURCES
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 8 and all(e.passed for e in evaluations)
    mats = {m.asset_key.path[-1]: m.metadata for m in result.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]}
    assert set(mats) == set(SOURCE_NAMES) | {"_customer_identity", "_identity_match"}
    orders = mats["orders"]
    assert orders["files"].value == 1 and orders["rows_read"].value == 2
    assert orders["rows_loaded"].value == 1 and orders["rows_quarantined"].value == 1
    assert orders["extra_columns"].value == ["coupon"]
    assert orders["dagster/row_count"].value == 1
    assert mats["customers"]["rows_loaded"].value == 2
    reviews = mats["reviews"]
    assert reviews["files_rejected"].value == 1
    assert reviews["rejected_files"].value[0]["reason"] == "wrong_delimiter"
    assert mats["returns"]["files"].value == 0
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT ordered_at::VARCHAR FROM raw.orders").fetchall() == [("2024-01-01 09:00:00",)]
        assert con.execute("SELECT count(*) FROM raw._loads").fetchone()[0] == 3


def _tick(cursor: str | None = None):
    context = dg.build_sensor_context(cursor=cursor, instance=dg.DagsterInstance.ephemeral())
    return ingest_defs.landing_sensor.evaluate_tick(context)


def test_sensor_runs_once_per_change_and_waits_for_files_being_written(data_dir, monkeypatch):
    monkeypatch.setenv(SETTLE_ENV, "5")
    landing = data_dir / "landing"
    empty = _tick()
    assert not empty.run_requests and empty.skip_message

    write(landing / "orders" / "a.csv", "order_id,customer_id,ordered_at,total\n")
    write(landing / "customers" / "c.csv", "customer_id\nC1\n")
    write(landing / "orders" / "b.csv.part", "partial upload")
    write(landing / "orders" / ".c.csv.swp", "editor swap file")
    write(landing / "orders" / "d.tmp", "temp")
    write(landing / "orders" / "fresh.csv", "order_id,customer_id,ordered_at,total\n", age_seconds=0)
    first = _tick()
    [run] = first.run_requests
    seen = json.loads(first.cursor)
    assert sorted(seen) == ["customers/c.csv", "orders/a.csv"]  # fresh.csv is still settling
    # The same tick again (e.g. after a daemon restart without the new cursor): same run_key,
    # which Dagster deduplicates.
    assert _tick().run_requests[0].run_key == run.run_key

    # Nothing new: no run, cursor unchanged.
    again = _tick(first.cursor)
    assert not again.run_requests and "still being written" in again.skip_message
    assert json.loads(again.cursor) == seen

    # The fresh file settles: one run, for it alone (a new run_key).
    then = time.time() - 30
    os.utime(landing / "orders" / "fresh.csv", (then, then))
    settled = _tick(again.cursor)
    [run2] = settled.run_requests
    assert run2.run_key != run.run_key
    assert sorted(json.loads(settled.cursor)) == ["customers/c.csv", "orders/a.csv", "orders/fresh.csv"]

    # A changed file (new size) is picked up; a deleted file drops out of the cursor.
    write(landing / "orders" / "a.csv", "order_id,customer_id,ordered_at,total\nO1,C1,2024-01-01,1\n")
    (landing / "customers" / "c.csv").unlink()
    changed = _tick(settled.cursor)
    assert len(changed.run_requests) == 1
    assert sorted(json.loads(changed.cursor)) == ["orders/a.csv", "orders/fresh.csv"]
    assert not _tick(changed.cursor).run_requests

    # The .part upload completes under its final name: picked up.
    (landing / "orders" / "b.csv.part").rename(landing / "orders" / "b.csv")
    assert len(_tick(changed.cursor).run_requests) == 1


def test_sensor_settle_time_is_configurable(data_dir, monkeypatch):
    landing = data_dir / "landing"
    write(landing / "orders" / "a.csv", "order_id,customer_id,ordered_at,total\n", age_seconds=20)
    monkeypatch.setenv(SETTLE_ENV, "60")
    assert not _tick().run_requests
    monkeypatch.setenv(SETTLE_ENV, "10")
    assert len(_tick().run_requests) == 1
