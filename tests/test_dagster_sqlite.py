"""Dagster's SQLite files are written without a disk flush per event (pipelines.dagster_sqlite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
from sqlalchemy import create_engine, text

from pipelines import dagster_sqlite

NORMAL, FULL = 1, 2


def _synchronous(path) -> int:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("PRAGMA synchronous")).scalar()
    finally:
        engine.dispose()


def test_files_under_dagster_storage_are_synchronous_normal_and_others_untouched(tmp_path):
    storage, elsewhere = tmp_path / "dagster", tmp_path / "other"
    storage.mkdir()
    elsewhere.mkdir()
    dagster_sqlite.tune(storage)
    dagster_sqlite.tune(storage)  # twice: still one listener
    assert _synchronous(storage / "runs.db") == NORMAL
    assert _synchronous(elsewhere / "app.db") == FULL


def test_a_dagster_instance_stores_runs_and_events_under_the_setting(tmp_path):
    storage = tmp_path / "dagster"
    storage.mkdir()
    dagster_sqlite.tune(storage)

    @dg.op
    def hello():
        return 1

    @dg.job
    def one():
        hello()

    with dg.instance_for_test(temp_dir=str(storage)) as instance:
        result = one.execute_in_process(instance=instance)
        assert result.success
        assert instance.all_logs(result.run_id)  # events were stored and read back
    files = list(storage.rglob("*.db"))
    assert files, "Dagster wrote no SQLite file"
    for f in files:  # still write-ahead-log files after a run: NORMAL is safe only in that mode
        with sqlite3.connect(f) as con:
            assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal", f


def test_closing_a_connection_under_storage_does_not_checkpoint_the_log(tmp_path):
    """Dagster opens and closes a connection per event (NullPool). Closing the last connection
    to a write-ahead-log database checkpoints it and deletes the log; under Dagster's storage
    one idle connection stays open, so a close is never the last and the log stays."""
    from sqlalchemy.pool import NullPool

    storage, elsewhere = tmp_path / "dagster", tmp_path / "other"
    storage.mkdir()
    elsewhere.mkdir()
    dagster_sqlite.tune(storage)
    for folder in (storage, elsewhere):
        engine = create_engine(f"sqlite:///{folder / 'events.db'}", poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text("PRAGMA journal_mode=WAL"))
            conn.execute(text("CREATE TABLE IF NOT EXISTS e (x INTEGER)"))
            conn.commit()
        for i in range(3):  # one connection per event, as Dagster stores them
            with engine.connect() as conn:
                conn.execute(text("INSERT INTO e VALUES (:x)"), {"x": i})
                conn.commit()
        engine.dispose()
    assert (storage / "events.db-wal").exists()
    assert not (elsewhere / "events.db-wal").exists()
    with sqlite3.connect(storage / "events.db") as con:
        assert con.execute("SELECT count(*) FROM e").fetchone()[0] == 3


def test_the_event_log_keeps_its_engines_instead_of_one_per_event(tmp_path):
    """Dagster's SQLite event log built an engine and a connection for every event it stored;
    after `tune()` each file's engine and connection are kept, so a run of ten asset checks
    opens a handful of connections, not one or two per event. A wipe forgets them and the
    storage still works."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    storage = tmp_path / "dagster"
    storage.mkdir()
    dagster_sqlite.tune(storage)
    opened: list[str] = []

    def count(dbapi_connection, _record):  # connections to the event log's files
        main = next(row[2] for row in dbapi_connection.execute("PRAGMA database_list") if row[1] == "main")
        if "runs" in Path(main).parts:
            opened.append(main)

    @dg.asset(check_specs=[dg.AssetCheckSpec(f"check_{i}", asset="numbers") for i in range(10)])
    def numbers():
        yield dg.Output(1)
        for i in range(10):
            yield dg.AssetCheckResult(check_name=f"check_{i}", passed=True)

    event.listen(Engine, "connect", count)
    try:
        with dg.instance_for_test(temp_dir=str(storage)) as instance:
            result = dg.materialize([numbers], instance=instance)
            assert result.success
            events = instance.all_logs(result.run_id)
            assert len(events) > 25
            assert len(opened) < 10, f"{len(opened)} connections for {len(events)} events"
            instance.wipe()
            again = dg.materialize([numbers], instance=instance)
            assert again.success and instance.all_logs(again.run_id)
            checks = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(dg.AssetKey("numbers"), "check_3"), limit=5)
            assert [c.run_id for c in checks] == [again.run_id]
    finally:
        event.remove(Engine, "connect", count)
