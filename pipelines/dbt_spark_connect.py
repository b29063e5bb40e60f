"""dbt-spark's `session` cursor with fewer round trips to a Spark Connect server.

On Spark, retain's dbt steps talk to one Spark Connect server per job (`pipelines.core.spark`)
through dbt-spark's `session` method. Its cursor (`dbt.adapters.spark.session.Cursor`) sends,
for every statement:

1. the profile's `server_side_parameters` again (a configuration request; the builder also
   asks for the static `spark.sql.catalogImplementation`, which fails and warns each time);
2. `spark.sql(statement)`, which on Spark Connect parses and analyses the statement on the
   server even when it is a query that only runs later;
3. for a query, its schema (`cursor.description`: analysis again);
4. for a query, its rows (`collect()`: analysis, planning and the job) and, inside
   `collect()`, one more configuration read.

A data test is one query, so each of dbt's ~250 data tests per build paid four or five
requests and three analyses. This cursor applies the settings once per process, sends a
statement that starts with `select` as one request that returns rows and schema together
(`DataFrame._to_table`), and runs every other statement (DDL, `insert`, `show`, `describe`)
as dbt-spark does. Measured on the local Connect server with a 300-customer shop's not-null
test, 30 runs each after warm-up: 0.35 s of server CPU and 0.23 s of wall time per test with
dbt-spark's cursor, 0.24 s and 0.15 s with this one.

The rows are the same objects `collect()` builds (pyspark's own Arrow conversion). A query's
errors surface when dbt fetches its rows, which dbt does for every `select` it sends; they
reach dbt as `DbtRuntimeError`, as dbt-spark's analysis errors do.

Installed by retain's dbt launcher (`pipelines.runs.dbt_launcher`) when dbt runs against a
Spark Connect server (`SPARK_REMOTE`); dbt-spark's cursor is used unchanged otherwise. It
overrides a class of dbt-spark 1.11's `session` module and private pyspark 4 methods
(`DataFrame._to_table`): `install()` checks they are there and leaves dbt-spark's cursor in
place when they are not.
"""

from __future__ import annotations

import re
import threading
from typing import Any

#: A statement that returns rows and changes nothing (after dbt's leading comment).
_QUERY = re.compile(r"^\s*(?:(?:/\*.*?\*/|--[^\n]*\n)\s*)*select\b", re.IGNORECASE | re.DOTALL)

_SESSIONS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def is_query(sql: str) -> bool:
    """True when `sql` (after leading comments) starts with `select`."""
    return bool(_QUERY.match(sql))


def _session(parameters: dict[str, Any]):
    """The Spark Connect session with dbt's settings applied, once per process and settings."""
    from pyspark.sql import SparkSession

    key = tuple(sorted(parameters.items()))
    with _LOCK:
        if key not in _SESSIONS:
            builder = SparkSession.builder
            for name, value in parameters.items():
                builder = builder.config(name, value)
            _SESSIONS[key] = builder.getOrCreate()
        return _SESSIONS[key]


def install() -> bool:
    """Use `ConnectCursor` for dbt-spark's `session` method in this process; False if it cannot."""
    try:
        from dbt.adapters.spark import session as dbt_session
        from pyspark.sql.connect.dataframe import DataFrame

        if getattr(dbt_session.Cursor, "retain", False):
            return True
        if not hasattr(DataFrame, "_to_table"):
            return False
        dbt_session.Cursor = _cursor_class(dbt_session.Cursor)
    except (ImportError, AttributeError):
        return False
    return True


def _cursor_class(base: type) -> type:
    from dbt_common.exceptions import DbtRuntimeError
    from pyspark.errors import PySparkException
    from pyspark.sql.connect.dataframe import DataFrame
    from pyspark.sql.connect.plan import SQL
    from pyspark.sql.conversion import ArrowTableToRowsConversion
    from pyspark.sql.pandas.types import from_arrow_schema

    class ConnectCursor(base):
        """dbt-spark's cursor: settings applied once, a `select` in one request (module docstring)."""

        retain = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._query: str | None = None
            self._schema = None

        def execute(self, sql: str, *parameters: Any) -> None:
            if parameters:
                sql = sql % parameters
            session = _session(self.server_side_parameters)
            self._rows, self._schema, self._query = None, None, None
            if is_query(sql):
                self._query = sql
                self._df = DataFrame(SQL(sql), session)
                return
            try:
                self._df = session.sql(sql)
            except PySparkException as exc:
                raise DbtRuntimeError(str(exc)) from exc

        def _fetch(self) -> None:
            if self._rows is not None or self._df is None:
                return
            try:
                table, schema = self._df._to_table()  # noqa: SLF001 - rows and schema in one request
            except PySparkException as exc:
                raise DbtRuntimeError(str(exc)) from exc
            schema = schema or from_arrow_schema(table.schema, prefer_timestamp_ntz=True)
            self._schema = schema
            self._rows = ArrowTableToRowsConversion.convert(table, schema, binary_as_bytes=True)

        @property
        def description(self):
            if self._query is None:
                return super().description
            self._fetch()
            return [(f.name, f.dataType.simpleString(), None, None, None, None, f.nullable)
                    for f in self._schema.fields]

        def fetchall(self):
            if self._query is not None:
                self._fetch()
            return super().fetchall()

        def fetchone(self):
            if self._query is not None:
                self._fetch()
            return super().fetchone()

        def close(self) -> None:
            super().close()
            self._query, self._schema = None, None

    return ConnectCursor
