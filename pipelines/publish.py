"""Publish read-only snapshots of the warehouse for the dashboard, and record run status.

The dashboard never opens the live warehouse: a run may hold its write lock for minutes.
At the end of each successful run the tables the dashboard needs are copied into a new
DuckDB file `published/snapshot-<utc timestamp>.duckdb`; the file `published/CURRENT` names
the snapshot to read and is switched with an atomic rename, so a reader sees either the old
snapshot or the new one, never half of one. A failed run never gets that far, so the last
good snapshot stays published. The newest few snapshots are kept (a dashboard session that
opened an older one keeps working until it reconnects).

`published/status.json` records the last run (success or failure) and the last successful
one; `retain status` and the dashboard's freshness banner read it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

#: Schemas copied into each snapshot (all their tables and views, as tables).
PUBLISHED_SCHEMAS = ("marts", "ml", "exports")
CURRENT_FILE = "CURRENT"
STATUS_FILE = "status.json"
KEEP_SNAPSHOTS = 3


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def current_snapshot(published_dir: Path) -> Path | None:
    """The snapshot the dashboard should read, or None if nothing was published yet."""
    pointer = published_dir / CURRENT_FILE
    if not pointer.exists():
        return None
    path = published_dir / pointer.read_text().strip()
    return path if path.exists() else None


#: How every reader opens a snapshot. DuckDB refuses a second connection to the same file with
#: a different configuration in one process, so the dashboard, `retain status` and the tests
#: all use exactly this one.
SNAPSHOT_CONFIG = {"enable_external_access": False}


def open_snapshot(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a published snapshot that cannot reach files or the network."""
    return duckdb.connect(str(path), read_only=True, config=dict(SNAPSHOT_CONFIG))


def publish_snapshot(
    warehouse: Path,
    published_dir: Path,
    schemas: Iterable[str] = PUBLISHED_SCHEMAS,
    keep: int = KEEP_SNAPSHOTS,
    run_info: dict | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Path:
    """Copy `schemas` of the warehouse into a new snapshot file and switch CURRENT to it.

    `con` may be an open connection to the warehouse (the caller's writer connection);
    otherwise the warehouse is opened here (callers hold the DuckDB writer pool, and a
    warehouse that does not exist yet publishes an empty snapshot). Returns the new path.
    """
    published_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = published_dir / f"snapshot-{stamp}.duckdb"
    tmp = published_dir / f".snapshot-{stamp}.duckdb.tmp"
    tmp.unlink(missing_ok=True)
    own = con is None
    con = con or duckdb.connect(str(warehouse))
    try:
        con.execute(f"ATTACH '{tmp}' AS snap")
        tables = con.execute(
            """
            select table_schema, table_name from information_schema.tables
            where table_catalog = current_database() and table_schema in (select unnest(?))
            order by 1, 2
            """,
            [list(schemas)],
        ).fetchall()
        for schema in {s for s, _ in tables}:
            con.execute(f'create schema if not exists snap."{schema}"')
        for schema, table in tables:
            con.execute(f'create table snap."{schema}"."{table}" as select * from "{schema}"."{table}"')
        info = {"published_at": datetime.now(UTC).isoformat(), "tables": len(tables), **(run_info or {})}
        con.execute("create schema if not exists snap.meta")
        con.execute("create table snap.meta.snapshot as select ?::json as info", [json.dumps(info, default=str)])
        con.execute("detach snap")
    finally:
        if own:
            con.close()
    os.replace(tmp, final)
    _atomic_write_text(published_dir / CURRENT_FILE, final.name + "\n")
    _prune(published_dir, keep, final)
    return final


def _prune(published_dir: Path, keep: int, current: Path) -> None:
    snapshots = sorted(published_dir.glob("snapshot-*.duckdb"))
    for old in snapshots[:-keep]:
        if old != current:
            old.unlink(missing_ok=True)
            Path(str(old) + ".wal").unlink(missing_ok=True)


def record_run_status(published_dir: Path, status: dict) -> None:
    """Record a finished run in status.json: always as `last_run`, and as `last_success` if it succeeded."""
    published_dir.mkdir(parents=True, exist_ok=True)
    path = published_dir / STATUS_FILE
    data = read_run_status(published_dir)
    data["last_run"] = status
    if status.get("success"):
        data["last_success"] = status
    _atomic_write_text(path, json.dumps(data, indent=2, default=str))


def read_run_status(published_dir: Path) -> dict:
    """The recorded run status (`last_run`, `last_success`), empty if no run finished yet."""
    path = published_dir / STATUS_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
