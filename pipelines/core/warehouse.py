"""The one way retain opens DuckDB: the warehouse, a published snapshot, or a scratch database.

Every connection in retain (ingestion, the ML steps, outreach, publishing, the CLI, the
dashboard, the benchmarks) comes from `connect` (or `open_snapshot` / `scratch`, which call
it), so every one is set up the same way:

* **UTC**: timestamps without an offset are UTC everywhere (`SET TimeZone = 'UTC'`);
* **memory cap** on file databases: `RETAIN_DUCKDB_MEMORY_LIMIT` (default 4GB); beyond it
  DuckDB spills to disk instead of taking the machine;
* **read-only where reading**: readers pass `read_only=True`, so several of them can read a
  file while no writer holds it;
* **lock wait**: DuckDB lets one process write a file or several read it, not both. A lost
  race for the file lock (the dashboard reading for a moment, `retain export` reading after a
  run) is retried for up to `lock_wait` seconds (default `RETAIN_LOCK_WAIT_SECONDS`, 30),
  then `WarehouseBusy` says who holds it. Interactive readers pass `lock_wait=0`;
* **no external access** where asked (`external_access=False`): the dashboard's
  connections cannot read files or reach the network whatever a query says.

DuckDB keeps one database instance per file and process and refuses a second connection
with a different configuration, so the only configuration passed at open time is
`enable_external_access`, and snapshots are always opened with `SNAPSHOT_CONFIG`. Everything
else is a `SET` on the connection.

Scratch databases (`scratch()`, in memory) hold one file's worth of work (the generator,
normalising an export file, validating a playbook): they get UTC and no memory cap, since
capping them would only make a spill where there is room.

This module imports nothing from Dagster: `ml/`, the CLI and the dashboard use it directly;
the Dagster assets get it through `pipelines.defs.resources.WarehouseResource`.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import duckdb

from pipelines.core.config import duckdb_memory_limit, settings

#: How every reader opens a published snapshot (see the module docstring).
SNAPSHOT_CONFIG = {"enable_external_access": False}

DEFAULT_LOCK_WAIT_SECONDS = 30.0
_POLL_SECONDS = 0.5
_HOLDER = re.compile(r"\(PID (\d+)\)")


class WarehouseBusy(RuntimeError):
    """Another process holds the DuckDB file's lock for longer than the caller waits."""

    def __init__(self, path: Path, waited: float, detail: str):
        holder = _HOLDER.search(detail)
        who = f"process {holder.group(1)}" if holder else "another process"
        super().__init__(
            f"{path} is busy: {who} holds its lock (waited {waited:.0f} s). "
            "A run is probably writing to it; try again when it has finished "
            "(`retain status` shows what is running)."
        )
        self.path = path
        self.holder_pid = int(holder.group(1)) if holder else None


def lock_wait_seconds() -> float:
    """RETAIN_LOCK_WAIT_SECONDS (default 30): how long a connection waits for a held file lock."""
    value = os.environ.get("RETAIN_LOCK_WAIT_SECONDS", "").strip()
    if not value:
        return DEFAULT_LOCK_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"RETAIN_LOCK_WAIT_SECONDS={value!r} is not a number of seconds") from None
    if seconds < 0:
        raise ValueError(f"RETAIN_LOCK_WAIT_SECONDS={value!r} must be 0 or more")
    return seconds


def _is_lock_error(exc: duckdb.Error) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def connect(
    path: str | Path | None = None,
    *,
    read_only: bool = False,
    external_access: bool = True,
    memory_limit: str | None = None,
    lock_wait: float | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file (default: the warehouse, `RETAIN_WAREHOUSE`) the retain way.

    `memory_limit` overrides `RETAIN_DUCKDB_MEMORY_LIMIT`; `lock_wait` overrides
    `RETAIN_LOCK_WAIT_SECONDS`. A writer connection to a new file creates it owner-only (it
    holds personal data). Raises `WarehouseBusy` when the lock stays held.
    """
    from pipelines.core.privacy import make_private

    target = Path(path) if path is not None else settings().warehouse
    limit = memory_limit or duckdb_memory_limit()  # a bad setting fails before anything opens
    wait = lock_wait_seconds() if lock_wait is None else lock_wait
    config = {} if external_access else dict(SNAPSHOT_CONFIG)
    if not read_only:
        target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    while True:
        try:
            con = duckdb.connect(str(target), read_only=read_only, config=config)
            break
        except duckdb.Error as exc:
            waited = time.monotonic() - started
            if not _is_lock_error(exc):
                raise
            if waited >= wait:
                raise WarehouseBusy(target, waited, str(exc)) from exc
            time.sleep(min(_POLL_SECONDS, max(wait - waited, 0.01)))
    if not read_only:
        make_private(target)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{limit}'")
    return con


def open_snapshot(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a published snapshot that cannot reach files or the network."""
    return connect(path, read_only=True, external_access=False, lock_wait=0)


def scratch() -> duckdb.DuckDBPyConnection:
    """An in-memory database for one piece of work, in UTC, without the file memory cap."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con
