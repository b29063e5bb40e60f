"""Dagster's SQLite files are written without a disk flush per event (pipelines.dagster_sqlite)."""

from __future__ import annotations

import sqlite3

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
