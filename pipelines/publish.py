"""Publish read-only snapshots of the warehouse for the dashboard, and record run status.

The dashboard never opens the live warehouse: a run may hold its write lock for minutes.
At the end of each successful run the tables the dashboard needs are copied into a new
DuckDB file `published/snapshot-<utc timestamp>.duckdb`; the file `published/CURRENT` names
the snapshot to read and is switched with an atomic rename, so a reader sees either the old
snapshot or the new one, never half of one. A failed run never gets that far, so the last
good snapshot stays published. The newest few snapshots are kept (a dashboard session that
opened an older one keeps working until it reconnects).

Two ways to build the new file:

- **Full**: every table of `marts`, `ml` and `exports` is copied. The big customer-keyed
  tables (`BY_CUSTOMER`: the Customer 360 timeline and the order fact) are stored in
  customer order, so reading one customer touches one row group, and are copied one
  customer range at a time, so memory stays bounded (a single sort of the 27M-row timeline
  at 1M customers needed 7.7 GB). `retain run` (full_job) always publishes this way.
- **Incremental** (the daily job): the previous snapshot file is copied and only what
  changed is rewritten in the copy. The `BY_CUSTOMER` tables replace just the rows of the
  customers with data built or loaded since the previous snapshot (watermarks on `_built_at`
  and `_load_id`, recorded in the snapshot), append-only history (score batches, outreach
  lists and suppressions per run) gets only its new batches,
  and every other table is copied whole. It falls back to a full publish when the previous
  snapshot has no watermarks, when the warehouse's views or the keyed tables' columns
  changed since (a new version of retain), every `MAX_INCREMENTAL_GENERATIONS`-th time (to
  re-sort and compact), and whenever the row counts of the rewritten tables do not match
  the warehouse afterwards (tables only: counting the timeline view costs seconds, and the
  periodic full publish rebuilds it anyway).

The new file is written as `.snapshot-<utc>-<pid>.duckdb.tmp` and renamed when complete. A
publish killed midway (`kill -9`) leaves it behind; the next publish removes such leftovers
(and their `.wal`) unless their process still runs.

DuckDB's memory for publishing is capped at `RETAIN_DUCKDB_MEMORY_LIMIT` (default 4GB); it
spills to a temporary folder next to the new snapshot beyond that.

`published/status.json` records the last run (success or failure) and the last successful
one; `retain status` and the dashboard's freshness banner read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.core.config import duckdb_memory_limit
from pipelines.core.privacy import make_private, published_select
from pipelines.core.warehouse import connect, open_snapshot
from pipelines.runs import pause_point

log = logging.getLogger(__name__)

#: Schemas copied into each snapshot (all their tables and views, as tables).
PUBLISHED_SCHEMAS = ("marts", "ml", "exports")
#: Objects of those schemas the dashboard never reads, left out of the snapshot:
#: `marts.fct_messages` is one row per message (about 24M at 1M customers), a view the churn
#: features and the outreach rules read in the warehouse; the dashboard reads the message marts
#: built from it (`message_engagement_monthly`, the funnel, the repurchase drivers).
NOT_PUBLISHED = frozenset({("marts", "fct_messages")})
CURRENT_FILE = "CURRENT"
STATUS_FILE = "status.json"
KEEP_SNAPSHOTS = 3
#: Bumped when the snapshot layout changes, so the next publish is a full one.
#: 3: contact data masked (`pipelines.core.privacy.published_select`), `email_sha256` added.
PUBLISH_FORMAT = 3

#: Big customer-keyed tables: stored in customer order (ORDER BY) and refreshed per customer.
BY_CUSTOMER = {
    ("marts", "fct_customer_events"): "customer_id, event_at, event_id",
    ("marts", "fct_orders"): "customer_id, ordered_at, order_id",
}
#: Append-only history, synced per batch (the key columns) by an incremental publish.
#: Value: (the batch key columns, a column that changes when a batch is rewritten).
#: Each of these grows by a batch per run (about 1M score rows and 400k list rows a day at 1M
#: customers), so copying them whole would make every publish slower than the last.
BATCHED = {
    ("ml", "churn_scores_history"): (("as_of_date", "model_version"), "scored_at"),
    ("exports", "outreach_lists"): (("run_id",), "created_at"),
    ("exports", "suppressions"): (("run_id",), "created_at"),
}
#: Rows sorted at once when copying a `BY_CUSTOMER` table (well within the 4 GB cap at 1M customers).
CHUNK_ROWS = 6_000_000
#: Incremental publishes in a row before a full one re-sorts and compacts the snapshot.
MAX_INCREMENTAL_GENERATIONS = 6
#: Where new or rebuilt rows of the `BY_CUSTOMER` tables come from: (table, watermark column).
#: `_built_at` changes whenever dbt rewrites a row of an incremental model (new data, backfill,
#: full refresh); `_load_id` marks the load a staging row came from (a new version of a record
#: comes with a new load).
CHANGE_SOURCES = (
    ("marts.fct_orders", "_built_at"),
    ("staging.stg_messaging__messages", "_built_at"),
    ("staging.stg_messaging__messages", "_load_id"),
    ("staging.stg_shop__returns", "_load_id"),
    ("staging.stg_helpdesk__support_tickets", "_load_id"),
    ("staging.stg_surveys__survey_responses", "_load_id"),
    ("staging.stg_reviews__reviews", "_load_id"),
)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two processes may write at once
    tmp.write_text(text)
    os.replace(tmp, path)


def current_snapshot(published_dir: Path) -> Path | None:
    """The snapshot the dashboard should read, or None if nothing was published yet."""
    pointer = published_dir / CURRENT_FILE
    if not pointer.exists():
        return None
    path = published_dir / pointer.read_text().strip()
    return path if path.exists() else None


@dataclass(frozen=True)
class PublishResult:
    """What `publish` wrote: the new snapshot, how (full or incremental) and why."""

    path: Path
    mode: str  # "full" or "incremental"
    reason: str  # why this mode (e.g. why an incremental publish fell back to a full one)
    changed_customers: int | None = None  # incremental only: customers whose rows were rewritten
    seconds: float = 0.0


class _FallBack(Exception):
    """An incremental publish cannot be trusted: publish in full instead."""


def publish(
    warehouse: Path,
    published_dir: Path,
    schemas: Iterable[str] = PUBLISHED_SCHEMAS,
    keep: int = KEEP_SNAPSHOTS,
    run_info: dict | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    incremental: bool = False,
) -> PublishResult:
    """Write a new snapshot of `schemas` of the warehouse and switch CURRENT to it.

    `con` may be an open connection to the warehouse (the caller's writer connection);
    otherwise the warehouse is opened here (callers hold the DuckDB writer pool, and a
    warehouse that does not exist yet publishes an empty snapshot). `incremental` asks for
    an incremental publish on top of the current snapshot (module docstring); it falls back
    to a full one whenever that would not be exact.
    """
    started = time.perf_counter()
    limit = duckdb_memory_limit()  # a bad RETAIN_DUCKDB_MEMORY_LIMIT fails before anything is written
    schemas = list(schemas)
    published_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = published_dir / f"snapshot-{stamp}.duckdb"
    remove_stale_temporaries(published_dir)
    # the writer's pid in the name: a later publish can tell a live writer's file from a leftover
    tmp = published_dir / f".snapshot-{stamp}-{os.getpid()}.duckdb.tmp"
    own = con is None
    con = con or connect(warehouse)
    old_limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    con.execute(f"set memory_limit = '{limit}'")
    try:
        tables = con.execute(
            """
            select table_schema, table_name from information_schema.tables
            where table_catalog = current_database() and table_schema in (select unnest(?))
            order by 1, 2
            """,
            [schemas],
        ).fetchall()
        tables = [t for t in tables if tuple(t) not in NOT_PUBLISHED]
        state = _warehouse_state(con, tables)
        previous = current_snapshot(published_dir)
        result: PublishResult | None = None
        reason = "full publish asked for" if not incremental else "nothing published yet"
        if incremental and previous is not None:
            try:
                result = _publish_incremental(con, previous, tmp, tables, state, run_info)
            except _FallBack as why:
                reason = f"incremental publish not possible: {why}"
                log.warning("publishing in full: %s", reason)
                _detach_quietly(con)
        if result is None:
            result = _publish_full(con, tmp, tables, state, run_info, reason)
    except BaseException:
        # the half-written file (up to the snapshot's size) must not pile up; CURRENT is untouched
        with contextlib.suppress(duckdb.Error):
            _detach_quietly(con)
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        _detach_quietly(con)
        with contextlib.suppress(duckdb.Error):
            con.execute(f"set memory_limit = '{old_limit}'")
        if own:
            con.close()
    # Owner-only even if the umask was not set (a library caller, or dbt started elsewhere
    # wrote the warehouse): the snapshot, and the warehouse it was read from.
    make_private(tmp, warehouse, Path(f"{warehouse}.wal"))
    os.replace(tmp, final)
    _atomic_write_text(published_dir / CURRENT_FILE, final.name + "\n")
    _prune(published_dir, keep, final)
    return PublishResult(final, result.mode, result.reason, result.changed_customers, time.perf_counter() - started)


def _tmp_writer_alive(path: Path) -> bool:
    """Whether the process that named this temporary snapshot (`.snapshot-<stamp>-<pid>.duckdb.tmp`) runs.

    A name without a pid (written before pids were part of it) counts as alive while any
    process has the file open.
    """
    stem = path.name.removesuffix(".wal").removesuffix(".duckdb.tmp")
    pid = stem.rsplit("-", 1)[-1]
    if pid.isdigit() and len(stem.split("-")) == 3:
        return int(pid) != os.getpid() and Path(f"/proc/{pid}").exists()
    target = str(path.resolve())
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                return True
    return False


def remove_stale_temporaries(published_dir: Path) -> list[Path]:
    """Delete `.snapshot-*.duckdb.tmp` (and `.wal`) files left by a publish that was killed.

    Files that a live process is still writing are kept. Returns what was removed.
    """
    removed = []
    for path in sorted(published_dir.glob(".snapshot-*.duckdb.tmp*")):
        if not path.name.endswith((".duckdb.tmp", ".duckdb.tmp.wal")) or _tmp_writer_alive(path):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
            log.warning("removed %s, left by a publish that did not finish", path.name)
    return removed


def _detach_quietly(con: duckdb.DuckDBPyConnection) -> None:
    attached = {r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()}
    if "snap" in attached:
        con.execute("detach snap")


def _q(schema: str, table: str, catalog: str | None = None) -> str:
    name = f'"{schema}"."{table}"'
    return f"{catalog}.{name}" if catalog else name


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        """
        select column_name, data_type from information_schema.columns
        where table_catalog = current_database() and table_schema = ? and table_name = ?
        order by ordinal_position
        """,
        [schema, table],
    ).fetchall()


def _all_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """`_columns` of every table of the warehouse, by `schema.table`, in one query (one per
    table took about a second of a small shop's publish)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, data_type in con.execute(
        """
        select table_schema, table_name, column_name, data_type from information_schema.columns
        where table_catalog = current_database()
        order by table_schema, table_name, ordinal_position
        """
    ).fetchall():
        out.setdefault(f"{schema}.{table}", []).append((column, data_type))
    return out


def _warehouse_state(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, str]]) -> dict:
    """Fingerprint of what an incremental publish relies on, and the change watermarks now."""
    views = con.execute(
        """
        select coalesce(string_agg(schema_name || '.' || view_name || ':' || sql, '|'
                                   order by schema_name, view_name), '')
        from duckdb_views() where not internal and database_name = current_database()
        """
    ).fetchone()[0]
    keyed = [(s, t) for s, t in tables if (s, t) in BY_CUSTOMER or (s, t) in BATCHED]
    columns = _all_columns(con)
    shape = json.dumps([[s, t, columns.get(f"{s}.{t}", [])] for s, t in keyed])
    fingerprint = hashlib.sha256(f"{PUBLISH_FORMAT}|{views}|{shape}".encode()).hexdigest()
    watermarks = {}
    for source in _change_sources(con):
        value = con.execute(f"select cast(max({source.column}) as varchar) from {source.table}").fetchone()[0]
        watermarks[f"{source.table}.{source.column}"] = value
    return {"fingerprint": fingerprint, "watermarks": watermarks}


@dataclass(frozen=True)
class _ChangeSource:
    """A table whose new rows (column above the watermark) mark their customers as changed."""

    table: str
    column: str
    customers: str  # SQL giving the customer_id of the rows `where {column} > ?` ({where})


def _change_sources(con: duckdb.DuckDBPyConnection) -> list[_ChangeSource]:
    """Every source of the `BY_CUSTOMER` tables that exists in this warehouse, with its watermark column."""
    existing = {name: {c for c, _ in cols} for name, cols in _all_columns(con).items()}
    sources = []
    for table, column in CHANGE_SOURCES:
        cols = existing.get(table)
        if cols is None or column not in cols:
            continue
        if "customer_id" in cols:
            sql = f"select customer_id from {table} where {{where}}"
        elif "order_id" in cols and "marts.fct_orders" in existing:
            # returns carry the order, not the customer
            sql = (
                f"select o.customer_id from {table} as r join marts.fct_orders as o on r.order_id = o.order_id "
                f"where {{where}}"
            )
        else:
            continue
        sources.append(_ChangeSource(table, column, sql))
    return sources


def _snapshot_info(state: dict, mode: str, generation: int, run_info: dict | None, n_tables: int, reason: str) -> dict:
    return {
        "published_at": datetime.now(UTC).isoformat(),
        "tables": n_tables,
        "mode": mode,
        "reason": reason,
        "generation": generation,
        "format": PUBLISH_FORMAT,
        "fingerprint": state["fingerprint"],
        "watermarks": state["watermarks"],
        **(run_info or {}),
    }


def _write_info(con: duckdb.DuckDBPyConnection, info: dict) -> None:
    con.execute("create schema if not exists snap.meta")
    con.execute("create or replace table snap.meta.snapshot as select ?::json as info", [json.dumps(info, default=str)])


def _publish_full(
    con: duckdb.DuckDBPyConnection,
    tmp: Path,
    tables: list[tuple[str, str]],
    state: dict,
    run_info: dict | None,
    reason: str,
) -> PublishResult:
    tmp.unlink(missing_ok=True)
    con.execute(f"ATTACH '{tmp}' AS snap")
    for schema in sorted({s for s, _ in tables}):
        con.execute(f'create schema if not exists snap."{schema}"')
    for schema, table in tables:
        if (schema, table) in BY_CUSTOMER:
            _copy_by_customer_ranges(con, schema, table, BY_CUSTOMER[(schema, table)])
        else:
            con.execute(f"create table {_q(schema, table, 'snap')} as select {_select(con, schema, table)} "
                        f"from {_q(schema, table)}")
        pause_point("publish")  # test hook: a run killed while writing the snapshot
    _write_info(con, _snapshot_info(state, "full", 0, run_info, len(tables), reason))
    con.execute("detach snap")
    return PublishResult(tmp, "full", reason)


def _copy_by_customer_ranges(con: duckdb.DuckDBPyConnection, schema: str, table: str, order_by: str) -> None:
    """Copy a customer-keyed table sorted by `order_by`, one customer range at a time.

    Each range is sorted on its own and appended in range order, so the whole table ends up
    in customer order while a sort never holds more than about CHUNK_ROWS rows.
    """
    source, target = _q(schema, table), _q(schema, table, "snap")
    rows = con.execute(f"select count(*) from {source}").fetchone()[0]
    chunks = max(1, math.ceil(rows / CHUNK_ROWS))
    bounds: list[str] = []
    if chunks > 1:
        quantiles = ", ".join(str(i / chunks) for i in range(1, chunks))
        bounds = con.execute(
            f"""
            select list_distinct(quantile_disc(customer_id, [{quantiles}]))
            from (select customer_id from {source} using sample reservoir(100000 rows) repeatable (7))
            """
        ).fetchone()[0] or []
        bounds = sorted(b for b in bounds if b is not None)
    columns = _select(con, schema, table)
    con.execute(f"create table {target} as select {columns} from {source} limit 0")
    edges: list[str | None] = [None, *bounds, None]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        conditions, params = [], []
        if lo is None and hi is None:
            conditions.append("true")
        if lo is not None:
            conditions.append("customer_id >= ?")
            params.append(lo)
        if hi is not None:
            conditions.append("customer_id < ?")
            params.append(hi)
        if lo is None:
            conditions = [f"({' and '.join(conditions)} or customer_id is null)"]
        con.execute(
            f"insert into {target} select {columns} from {source} where {' and '.join(conditions)} "
            f"order by {order_by}",
            params,
        )


def _publish_incremental(
    con: duckdb.DuckDBPyConnection,
    previous: Path,
    tmp: Path,
    tables: list[tuple[str, str]],
    state: dict,
    run_info: dict | None,
) -> PublishResult:
    tmp.unlink(missing_ok=True)
    shutil.copyfile(previous, tmp)
    con.execute(f"ATTACH '{tmp}' AS snap")
    try:
        info = json.loads(con.execute("select info from snap.meta.snapshot").fetchone()[0])
    except duckdb.Error as exc:
        raise _FallBack(f"the current snapshot has no readable metadata ({exc})") from exc
    if info.get("fingerprint") != state["fingerprint"]:
        raise _FallBack("the warehouse's views or the keyed tables' columns changed since the last snapshot")
    generation = int(info.get("generation") or 0) + 1
    if generation > MAX_INCREMENTAL_GENERATIONS:
        raise _FallBack(f"{MAX_INCREMENTAL_GENERATIONS} incremental publishes in a row: re-sorting in full")
    old_marks = info.get("watermarks") or {}
    sources = _change_sources(con)
    if {f"{s.table}.{s.column}" for s in sources} != set(old_marks):
        # a source that appeared or went away (a renamed model) would hide its changes
        raise _FallBack("the change sources differ from the current snapshot's watermarks")

    # customers with anything built or loaded since the previous snapshot
    con.execute("create or replace temp table _retain_changed (customer_id varchar)")
    for source in sources:
        mark = old_marks[f"{source.table}.{source.column}"]
        if mark is None:
            where, params = "true", []
        else:
            where, params = f"{source.column} > cast(? as {_column_type(con, source)})", [mark]
        con.execute(f"insert into _retain_changed {source.customers.format(where=where)}", params)
    changed = con.execute(
        "create or replace temp table _retain_changed as select distinct customer_id from _retain_changed; "
        "select count(*) from _retain_changed"
    ).fetchone()[0]

    snap_tables = set(
        con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = 'snap' "
            "and table_schema <> 'meta'"
        ).fetchall()
    )
    for schema in sorted({s for s, _ in tables}):
        con.execute(f'create schema if not exists snap."{schema}"')
    for schema, table in tables:
        source, target = _q(schema, table), _q(schema, table, "snap")
        if (schema, table) in BY_CUSTOMER and (schema, table) in snap_tables:
            con.execute(f"delete from {target} where customer_id in (select customer_id from _retain_changed)")
            # a semi join, not `in (select ...)`: twice as fast over the 27M-row timeline view
            con.execute(
                f"insert into {target} select {_select(con, schema, table, 't')} from {source} as t "
                f"semi join _retain_changed using (customer_id) order by {BY_CUSTOMER[(schema, table)]}"
            )
        elif (schema, table) in BATCHED and (schema, table) in snap_tables:
            _sync_batches(con, schema, table, BATCHED[(schema, table)])
        else:
            con.execute(f"create or replace table {target} as select {_select(con, schema, table)} from {source}")
    for schema, table in snap_tables - set(tables):
        con.execute(f"drop table if exists {_q(schema, table, 'snap')}")
    # Row counts of the rewritten tables must agree (a row deleted without any watermark moving
    # would not be caught otherwise). Views are left out: counting the 27M-row timeline view
    # costs 3 s at 1M customers, and the full publish every MAX_INCREMENTAL_GENERATIONS-th
    # time rebuilds it from scratch anyway.
    base_tables = set(
        con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database() and table_type = 'BASE TABLE'"
        ).fetchall()
    )
    for schema, table in tables:
        if ((schema, table) in BY_CUSTOMER or (schema, table) in BATCHED) and (schema, table) in base_tables:
            want = con.execute(f"select count(*) from {_q(schema, table)}").fetchone()[0]
            got = con.execute(f"select count(*) from {_q(schema, table, 'snap')}").fetchone()[0]
            if want != got:
                raise _FallBack(f"{schema}.{table} has {got:,} rows after the incremental publish, {want:,} expected")
    reason = f"{changed:,} changed customers since the previous snapshot"
    _write_info(con, _snapshot_info(state, "incremental", generation, run_info, len(tables), reason))
    con.execute("detach snap")
    return PublishResult(tmp, "incremental", reason, changed)


def _select(con: duckdb.DuckDBPyConnection, schema: str, table: str, alias: str | None = None) -> str:
    """SELECT list copying a warehouse table into the snapshot: contact data masked, names cut
    to an initial, postal codes to the region, `email_sha256` added (`pipelines.core.privacy`)."""
    return published_select(_columns(con, schema, table), alias)


def _column_type(con: duckdb.DuckDBPyConnection, source: _ChangeSource) -> str:
    schema, table = source.table.split(".", 1)
    return dict(_columns(con, schema, table))[source.column]


def _sync_batches(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, batch: tuple[tuple[str, ...], str]
) -> None:
    """Make the snapshot's append-only history equal the warehouse's, rewriting only batches that differ."""
    source, target = _q(schema, table), _q(schema, table, "snap")
    keys, stamp = batch
    key_list = ", ".join(keys)
    summary = f"select {key_list}, count(*) as n, cast(max({stamp}) as varchar) as last from {{}} group by all"
    con.execute(
        f"""
        create or replace temp table _retain_batches as
        with want as ({summary.format(source)}),
             have as ({summary.format(target)})
        select {key_list} from want full join have using ({key_list})
        where want.n is distinct from have.n or want.last is distinct from have.last
        """
    )
    match = " and ".join(f"t.{k} is not distinct from b.{k}" for k in keys)
    con.execute(f"delete from {target} as t where exists (select 1 from _retain_batches as b where {match})")
    con.execute(
        f"insert into {target} select {_select(con, schema, table, 't')} from {source} as t "
        f"where exists (select 1 from _retain_batches as b where {match})"
    )


def _prune(published_dir: Path, keep: int, current: Path) -> None:
    """Keep the `keep` newest snapshots; also delete every older one written before contact
    data was masked (format < 3), so no unmasked copy outlives the upgrade."""
    snapshots = sorted(published_dir.glob("snapshot-*.duckdb"))
    kept = snapshots[-keep:]
    for old in snapshots:
        if old != current and (old not in kept or not _masked(old)):
            old.unlink(missing_ok=True)
            Path(str(old) + ".wal").unlink(missing_ok=True)


def _masked(snapshot: Path) -> bool:
    """True if the snapshot was written with contact data masked (its meta says format >= 3)."""
    try:
        with open_snapshot(snapshot) as con:
            info = json.loads(con.execute("select info from meta.snapshot").fetchone()[0])
    except (duckdb.Error, TypeError, ValueError):
        return False
    return int(info.get("format") or 0) >= 3


def record_run_status(published_dir: Path, status: dict) -> None:
    """Record a finished run in status.json: always as `last_run`, and as `last_success` if it succeeded."""
    published_dir.mkdir(parents=True, exist_ok=True)
    path = published_dir / STATUS_FILE
    data = read_run_status(published_dir)
    data["last_run"] = status
    if status.get("success"):
        data["last_success"] = status
    _atomic_write_text(path, json.dumps(data, indent=2, default=str))


def update_run_status(published_dir: Path, **entries) -> None:
    """Set top-level entries of status.json (e.g. `recovered`), keeping the rest."""
    published_dir.mkdir(parents=True, exist_ok=True)
    data = read_run_status(published_dir)
    data.update(entries)
    _atomic_write_text(published_dir / STATUS_FILE, json.dumps(data, indent=2, default=str))


def read_run_status(published_dir: Path) -> dict:
    """The recorded run status (`last_run`, `last_success`), empty if no run finished yet."""
    path = published_dir / STATUS_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
