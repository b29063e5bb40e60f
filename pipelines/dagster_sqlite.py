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

`tune()` also makes Dagster's SQLite event log keep one SQLAlchemy engine per database file
(`_connect` below; `has_table` likewise). Dagster's `SqliteEventLogStorage._connect` builds
a new engine for every event it stores and disposes of it after the one statement, so every
event paid for a new engine, a new connection and compiling its statement again (each engine
has its own compiled statement cache). py-spy on a 300-customer shop's full run: 9.1 of the
run process's 39 CPU seconds were `store_event`, 4.6 of them `_connect`, 2.9 compiling. The
replacement is the same method with the engine kept (the newest `KEEP_OPEN` files, each with
one pooled connection, used under Dagster's own lock); a wipe or upgrade of the storage,
which deletes or migrates files, drops them. Only processes that call `tune()` (every
process that loads retain's definitions) use it; any other reads and writes the same files
as before.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
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
    _reuse_event_log_engines()


def _kept_engines(storage) -> OrderedDict:
    """The engines `_connect` keeps for this event log storage, by shard (newest last)."""
    engines = storage.__dict__.get("_retain_engines")
    if engines is None:
        engines = storage.__dict__["_retain_engines"] = OrderedDict()
    return engines


def _drop_engines(storage) -> None:
    engines = storage.__dict__.get("_retain_engines")
    while engines:
        engines.popitem(last=False)[1].dispose()
    storage.__dict__.pop("_retain_tables", None)
    if (index := storage.__dict__.pop("_retain_index_engine", None)) is not None:
        index.dispose()


def _has_table(self, table_name: str) -> bool:
    """`SqliteEventLogStorage.has_table` with its engine kept and a yes remembered.

    Dagster asks it at every asset check event (`supports_asset_checks`), each time with a new
    engine. A table, once there, stays until a wipe or upgrade (which forget it). Its own
    engine, not `_connect`'s: a caller may ask while holding Dagster's lock.
    """
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME

    tables = self.__dict__.setdefault("_retain_tables", set())
    if table_name in tables:
        return True
    engine = self.__dict__.get("_retain_index_engine")
    if engine is None:
        engine = self.__dict__["_retain_index_engine"] = _engine(self, INDEX_SHARD_NAME)
    with engine.connect() as conn:
        found = bool(engine.dialect.has_table(conn, table_name))
    if found:
        tables.add(table_name)
    return found


def _engine(storage, shard: str):
    """An engine to one of the storage's files, with one pooled connection (more if nested)."""
    from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
    from sqlalchemy import create_engine
    from sqlalchemy.pool import QueuePool

    return create_engine(
        storage.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1, max_overflow=4,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )


@contextmanager
def _connect(self, shard: str) -> Iterator:
    """`SqliteEventLogStorage._connect` with one engine per shard kept (module docstring)."""
    with self._db_lock:  # Dagster's: one thread at a time uses the storage's connections
        engines = _kept_engines(self)
        engine = engines.get(shard)
        if engine is None:
            engine = engines[shard] = _engine(self, shard)
            while len(engines) > KEEP_OPEN:
                engines.popitem(last=False)[1].dispose()
        engines.move_to_end(shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        with engine.connect() as conn, conn.begin():
            yield conn


def _reuse_event_log_engines() -> None:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    if getattr(SqliteEventLogStorage._connect, "__retain__", False):  # noqa: SLF001
        return
    original = {name: getattr(SqliteEventLogStorage, name) for name in ("wipe", "upgrade", "dispose")}

    def dropping(name):
        def method(self, *args, **kwargs):
            with self._db_lock:  # noqa: SLF001
                _drop_engines(self)
            return original[name](self, *args, **kwargs)

        method.__name__ = name
        return method

    _connect.__retain__ = True
    SqliteEventLogStorage._connect = _connect  # noqa: SLF001
    SqliteEventLogStorage.has_table = _has_table
    for name in original:
        setattr(SqliteEventLogStorage, name, dropping(name))
