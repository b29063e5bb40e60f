"""Connections: the published snapshot (shared, read-only, cached per path), short read-only
connections to the live warehouse, the query helper and the snapshot's catalogue.

Every page reads the snapshot that the last successful pipeline run published
(`pipelines.publish`), read-only and with DuckDB's external access disabled, so SQL can reach
nothing but the snapshot's own tables. A new snapshot has a new path, which is the cache key
of both the connection and every query result (`dashboards.data.loaders`), so a published run
shows up on the next page load without a restart.

The live warehouse is opened (read-only, for the duration of one read, never cached) only for
what the snapshot must not hold: a customer's unmasked contact details and the CRM files, for
the roles allowed to see them (`warehouse_connection`, used by `customer_360` and `downloads`).

Safety: filter values reach SQL only as bound parameters (`$name`, see `query`); the only
identifiers in SQL are the data modules' constants and values picked from allow-lists. The
snapshot's contact data is masked when it is published (`pipelines.core.privacy`) and masked
again by the queries that show it (a no-op), also inside free-text comments.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

#: How long a query result stays cached; a new snapshot gets new cache keys at once anyway.
TTL_SECONDS = 600

#: What a page says when the snapshot has no orders mart (a run that failed before dbt).
NO_ORDERS_NOTE = "The published snapshot has no orders mart yet (marts.fct_orders). Run `retain run`."


def snapshot_path() -> Path | None:
    """The published snapshot to read now, or None if no run has published one yet."""
    from pipelines.core.config import settings
    from pipelines.publish import current_snapshot

    return current_snapshot(settings().published)


def run_status() -> dict:
    """The recorded run status (`last_run`, `last_success`) for the freshness banner."""
    from pipelines.core.config import settings
    from pipelines.publish import read_run_status

    return read_run_status(settings().published)


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open a snapshot read-only with external access (files, network, extensions) disabled."""
    from pipelines.core.warehouse import open_snapshot

    return open_snapshot(path)


@st.cache_resource(max_entries=4, show_spinner=False)
def _shared_connection(path: str) -> duckdb.DuckDBPyConnection:
    # One connection per snapshot path; queries run on cursors of it (one per query, since
    # Streamlit serves sessions from several threads and a DuckDB connection is not shared).
    return connect(path)


_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def query(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame:
    """Run `sql` with named `$parameters` bound from `params` and return a DataFrame.

    Only the parameters the statement uses are passed (DuckDB rejects extra ones), so page
    functions can keep one dict of filter values for all their queries. `con` is used by one
    thread at a time: the cached loaders below give every call its own cursor.
    """
    used = set(_PARAM.findall(sql))
    bound = {k: v for k, v in (params or {}).items() if k in used}
    return con.execute(sql, bound).df()


#: Per connection: {"schema.table": frozenset of its columns}. A snapshot never changes, so
#: its catalogue is read once per connection instead of before every query.
_CATALOGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def catalog(con: duckdb.DuckDBPyConnection) -> dict[str, frozenset[str]]:
    """{"schema.table": frozenset of its columns} of the database behind `con`, read once per connection."""
    held = _CATALOGS.get(con)
    if held is None:
        rows = query(
            con,
            "select table_schema || '.' || table_name as name, list(column_name) as columns "
            "from information_schema.columns group by 1",
        )
        held = {name: frozenset(cols) for name, cols in zip(rows["name"], rows["columns"], strict=True)}
        _CATALOGS[con] = held
    return held


def tables(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """`schema.table` names present in the snapshot (a run before a stage existed lacks some)."""
    return frozenset(catalog(con))


def has(con: duckdb.DuckDBPyConnection, *names: str) -> bool:
    """Whether every `schema.table` in `names` is in the database."""
    present = catalog(con)
    return all(n in present for n in names)


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> frozenset[str]:
    """Columns of `schema.table` (empty when the table is missing)."""
    return catalog(con).get(table, frozenset())


def mask_email_value(email: str) -> str:
    """The Python twin of `mask_email`, for values already in memory."""
    return re.sub(r"^(.)[^@]*@", "\\1•••@", email)

@contextlib.contextmanager
def snapshot_cursor(snapshot: str):
    """A cursor of the shared connection to `snapshot`: Streamlit runs sessions in threads, so each
    call gets its own cursor (and its own temp tables)."""
    with _shared_connection(snapshot).cursor() as cur:
        yield cur

# --------------------------------------------------------------------------------------
# Contact details and CRM files: read from the warehouse at the moment they are shown
#
# The snapshot is for everyone who may open the dashboard, so contact data in it is masked
# (or will be). Unmasked values are read from the live warehouse, read-only, only when a
# user whose role allows it asks for them, and never cached: each call opens a connection,
# reads, and closes it again, so a pipeline run is not kept from writing for longer than
# the read takes.

class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be read now (missing, or a pipeline run holds its write lock)."""


@contextlib.contextmanager
def warehouse_connection():
    """A short-lived read-only connection to RETAIN_WAREHOUSE, external access disabled."""
    from pipelines.core.config import settings

    path = settings().warehouse
    if not path.exists():
        raise WarehouseUnavailable(f"there is no warehouse at {path}: run `retain run` first")
    from pipelines.core.warehouse import WarehouseBusy
    from pipelines.core.warehouse import connect as open_warehouse

    try:
        con = open_warehouse(path, read_only=True, external_access=False, lock_wait=0)
    except (duckdb.Error, WarehouseBusy) as exc:
        raise WarehouseUnavailable(
            "the warehouse is busy (a pipeline run is writing to it); try again when the run has finished"
        ) from exc
    try:
        yield con
    finally:
        con.close()


