"""Dagster's SQLite storage without a disk flush per event.

Dagster's SQLite event log opens a new connection for every event it stores, commits it and
closes it. In write-ahead-log mode (which Dagster sets on every file) SQLite's default
`synchronous=FULL` flushes the log to disk at every commit, and closing the last connection
checkpoints with another flush. A run stores about 1,200 events (one per asset, check and
step phase of the full job), so on a disk that takes a few milliseconds per flush those
waits were about a third of a small shop's run: 30 of 88 s at 300 customers, measured
with cProfile (`sqlite3.Connection.commit` and `.close`).

`tune()` sets `PRAGMA synchronous=NORMAL` on every connection this process opens to a
SQLite file under Dagster's storage folder. SQLite's documentation calls NORMAL safe in
write-ahead-log mode: the database stays consistent after a crash or a power cut; a power
cut may lose the last few events; a killed process loses nothing (its writes are already
in the operating system's cache).

Why our own few lines: Dagster has no setting for it, and SQLAlchemy's `connect` event is
the documented way to set per-connection pragmas.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

_ROOTS: list[Path] = []


def _on_connect(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    try:
        rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error:
        return
    main = next((row[2] for row in rows if row[1] == "main"), "")
    if main and any(Path(main).resolve().is_relative_to(root) for root in _ROOTS):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def tune(storage: str | os.PathLike | None = None) -> None:
    """Apply `synchronous=NORMAL` to connections to SQLite files under `storage` (default:
    $RETAIN_DAGSTER_STORAGE), in this process. Safe to call more than once."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    folder = storage or os.environ.get("RETAIN_DAGSTER_STORAGE")
    if not folder:
        return
    root = Path(folder).resolve()
    if root not in _ROOTS:
        _ROOTS.append(root)
    if not event.contains(Engine, "connect", _on_connect):
        event.listen(Engine, "connect", _on_connect)
