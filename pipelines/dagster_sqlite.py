"""Dagster's SQLite storage without a disk flush per event.

Dagster's SQLite event log opens a new connection for every event it stores, commits it and
closes it. In write-ahead-log mode (which Dagster sets on every file) SQLite's default
`synchronous=FULL` flushes the log to disk at every commit, and closing the last connection
checkpoints with another flush. A run stores about 1,200 events (one per asset, check and
step phase of the full job), so on a disk that takes a few milliseconds per flush those
waits were about a third of a small shop's run: 30 of 88 s at 300 customers, measured
with cProfile (`sqlite3.Connection.commit` and `.close`).

`tune()` sets `PRAGMA synchronous=NORMAL` on every connection this process opens to a
SQLite file under Dagster's storage folder, and keeps one idle connection of its own open to
each such file (the newest `KEEP_OPEN`). Closing the last connection to a database in
write-ahead-log mode checkpoints the log into the database and deletes it; with one left
open, the connection Dagster closes after each event is not the last, and SQLite
checkpoints only every 1,000 pages as usual. That was 1.6 of a small daily run's 41 s
(py-spy, `Pool._close_connection`). The idle connection holds only the shared lock every
reader holds, which never blocks a writer. SQLite's documentation calls NORMAL safe in
write-ahead-log mode: the database stays consistent after a crash or a power cut; a power
cut may lose the last few events; a killed process loses nothing (its writes are already
in the operating system's cache).

Why our own few lines: Dagster has no setting for it, and SQLAlchemy's `connect` event is
the documented way to set per-connection pragmas.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

_ROOTS: list[Path] = []

#: Idle connections kept open, one per database file (see the module docstring).
KEEP_OPEN = 16
_OPEN: OrderedDict[str, sqlite3.Connection] = OrderedDict()
_LOCK = threading.Lock()
#: Whether a database file is under one of `_ROOTS` (resolving a path costs a few system calls).
_UNDER_ROOT: dict[str, bool] = {}


def _on_connect(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    try:
        rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error:
        return
    main = next((row[2] for row in rows if row[1] == "main"), "")
    if not main:
        return
    if main not in _UNDER_ROOT:
        _UNDER_ROOT[main] = any(Path(main).resolve().is_relative_to(root) for root in _ROOTS)
    if not _UNDER_ROOT[main]:
        return
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    _keep_open(main)


def _keep_open(path: str) -> None:
    """Open (or touch) this process's idle connection to `path`.

    A connection counts for SQLite only once it has read the database in write-ahead-log mode
    (it then holds a shared lock until it closes): read the header at every connect, since the
    file may have been switched to that mode after the first one.
    """
    with _LOCK:
        try:
            if path not in _OPEN:
                _OPEN[path] = sqlite3.connect(path, check_same_thread=False)
            _OPEN.move_to_end(path)
            _OPEN[path].execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error:
            return
        while len(_OPEN) > KEEP_OPEN:
            _OPEN.popitem(last=False)[1].close()


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
