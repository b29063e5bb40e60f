"""Load landing files into `raw.<source>`: one DuckDB transaction per file.

For each file of a source (see `files.landing_files`):

1. Skip it if the ledger already has it: same path, size and mtime (no read at all), or the
   same sha256 under the same path. The same content under another name is recorded once as
   `skipped_duplicate`. `reload=True` loads every file again as a new version. The sha256
   is computed in a thread while the file loads; known content rolls the load back.
2. Plan the read (`files.read_csv_header` names CSV columns; names are matched to the
   contract trimmed and case-insensitively; unknown ones go to `_extra`) and build one
   SELECT that reads the file with DuckDB's native reader, types every column and gives
   each row a `_reason` (`rules.py`; NULL = good).
3. In one transaction: insert every row into `raw.<source>` in a single pass (bad rows
   marked with a negative `_load_id`, reason and raw record in `_extra`), number CSV rows,
   derive a missing optional primary key, turn duplicate keys into bad rows (the first row
   of a key in the file is kept), move bad rows to `raw._quarantine`, null invalid optional
   email/phone/country values (recorded in `raw._warnings`), write the ledger row, commit.

Anything that makes the whole file unusable raises `FileRejected`; the transaction is rolled
back and the rejection recorded in `raw._loads` and `raw._rejected_files` instead. A crash
(or kill) before the commit leaves nothing behind, so the next run loads the file again.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.core.config import settings
from pipelines.core.contract import DATE_TYPES, SOURCE_NAMES, Source, source
from pipelines.core.warehouse import connect as open_warehouse
from pipelines.ingest.files import (
    FileRejected,
    FileStat,
    ends_with_newline,
    file_format,
    is_compressed,
    landing_files,
    read_csv_header,
    sha256_of,
)
from pipelines.ingest.rules import (
    MAX_VALUE_BYTES,
    WHITESPACE,
    column_sql,
    format_warning_sql,
    lit,
    q,
    range_warning_sql,
    row_check_branches,
    too_long_branch,
    typed_sql,
)
from pipelines.ingest.schema import ensure_schema

#: Called with a stage name at points inside a file's transaction (tests use it to simulate
#: a crash between inserts). None in normal operation.
FAULT_HOOK: Callable[[str], None] | None = None

#: Longest JSON line read (DuckDB's default is 2 MB); a line within it that holds a value
#: over rules.MAX_VALUE_BYTES is quarantined as value_too_long. CSV rows over 2 MB are
#: quarantined by the CSV parser itself.
BIG_LINE_LIMIT = 1 << 27

REASON_TYPE = "STRUCT(code VARCHAR, col VARCHAR, msg VARCHAR)"

#: In-memory database attached to every ingestion connection, for the few tables a load
#: needs before its transaction (JSON lines, a CSV file staged as-is).
SCRATCH = "_scratch"


def _fault(stage: str) -> None:
    if FAULT_HOOK is not None:
        FAULT_HOOK(stage)


@dataclass
class FileResult:
    """What happened to one landing file in one run.

    status: `loaded`, `rejected`, `skipped_duplicate` (same content already loaded under
    another name) or `unchanged` (already in the ledger; nothing recorded again).
    """

    source: str
    file: str  # path relative to the landing folder
    status: str
    load_id: int | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    values_nulled: int = 0
    extra_columns: list[str] = field(default_factory=list)
    reason_code: str | None = None
    message: str | None = None
    sha256: str | None = None
    size: int = 0
    seconds: float = 0.0


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """Open the warehouse for writing (`pipelines.core.warehouse.connect`: UTC, memory cap, lock wait)."""
    con = open_warehouse(warehouse)
    # DuckDB turns long IN lists into joins, and joins may reorder rows; CSV row numbers
    # come from row order, so keep IN lists as plain expressions.
    con.execute("SET disabled_optimizers = 'in_clause'")
    con.execute(f"ATTACH ':memory:' AS {SCRATCH}")
    return con


def ingest(
    sources: list[str] | None = None,
    landing: Path | str | None = None,
    warehouse: Path | str | None = None,
    progress: Callable[[FileResult], None] | None = None,
    reload: bool = False,
) -> list[FileResult]:
    """Load every new or changed landing file of `sources` (default: all 8) into the warehouse.

    `landing` and `warehouse` default to `pipelines.core.config.settings()` read now. `progress`
    is called with each file's result as soon as it is done. `reload=True` ignores the ledger
    and loads every file again (a new version of each row; staging keeps the latest).
    Platform folders are imported after the contract folders (one result per file and target
    source; `pipelines.importers`); a full ingest (`sources` None) then recomputes the
    customer identity tables.
    Returns one FileResult per file seen, in load order.
    """
    s = settings()
    landing = Path(landing) if landing is not None else s.landing
    warehouse = Path(warehouse) if warehouse is not None else s.warehouse
    names = list(sources) if sources else list(SOURCE_NAMES)
    contract_sources = [source(n) for n in names]  # KeyError names the unknown source
    results: list[FileResult] = []
    con = connect(warehouse)
    try:
        ensure_schema(con)
        for src in contract_sources:
            for path in landing_files(landing, src.name):
                result = ingest_file(con, src, path, landing, reload=reload)
                results.append(result)
                if progress is not None:
                    progress(result)
        # Platform folders (shopify/, woocommerce/, ...) and folders with a _mapping.yaml:
        # each file mapped onto the contract sources it feeds (pipelines/importers).
        from pipelines.importers import ingest_platforms

        results += ingest_platforms(con, landing, names, reload=reload, progress=progress)
        if sources is None:  # a full ingest: which platform keys are one customer (docs/importing.md)
            from pipelines.importers.identity import resolve

            resolve(con)
        from pipelines.core.spark import is_spark

        if is_spark():  # the Parquet raw layer Spark reads (pipelines/ingest/lake.py)
            from pipelines.ingest import lake

            lake.sync(con, [src.name for src in contract_sources])
    finally:
        con.close()
    return results


def ingest_file(
    con: duckdb.DuckDBPyConnection, src: Source, path: Path, landing: Path, reload: bool = False,
    plan: _Plan | None = None, sha256: Future | None = None,
) -> FileResult:
    """Load one file of `src` in its own transaction and record it in the ledger.

    `plan`: how to read the file's rows for `src`, when that is not the contract's own
    layout (a platform export mapped by `pipelines.importers`); None reads it by format.
    `sha256`: the file's hash already being computed (one file feeding several sources).
    """
    t0 = time.perf_counter()
    rel = path.relative_to(landing).as_posix()
    stat = FileStat.of(path)
    if not reload and con.execute(
        "SELECT 1 FROM raw._loads WHERE source = ? AND file_path = ? AND file_size = ? AND file_mtime = ? LIMIT 1",
        [src.name, rel, stat.size, stat.mtime],
    ).fetchone():
        return FileResult(src.name, rel, "unchanged", size=stat.size)
    fmt = plan.fmt if plan is not None else file_format(path)
    started = _utcnow()
    load_id = con.execute("SELECT nextval('raw._load_id_seq')").fetchone()[0]
    # The sha256 decides whether the content is new, but nearly every file that gets this far
    # is: load it while a thread hashes it (hashlib and DuckDB both release the GIL), and roll
    # the load back in the rare case the content turns out to be known.
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = sha256 if sha256 is not None else pool.submit(sha256_of, path)
        try:
            result = _load(con, src, path, rel, fmt, stat, load_id, started, hashing, reload, plan=plan)
        except BaseException as exc:
            # Whatever failed, the file's transaction is gone before anything else runs on the
            # connection (DuckDB refuses every statement on an aborted transaction).
            _end_transaction(con)
            _drop_scratch(con)
            if is_resource_error(exc):
                raise  # out of memory, disk full, interrupted: fail the run; the next run retries
            rejection = exc if isinstance(exc, FileRejected | _KnownContent) else _unexpected(exc, rel)
        else:
            _drop_scratch(con)
            result.seconds = time.perf_counter() - t0
            return result
        sha = _sha_or_none(hashing)
        known = None if reload or sha is None else _known_content(con, src, rel, stat, sha, fmt)
        if known is not None:
            known.seconds = time.perf_counter() - t0
            return known
        if not isinstance(rejection, FileRejected):  # known content the ledger no longer matches
            raise RuntimeError(f"{rel}: content seemed known but is not") from rejection
    _record(con, src, rel, stat, sha, fmt, "rejected", started, rejection.message, load_id=load_id,
            code=rejection.code)
    return FileResult(
        src.name, rel, "rejected", load_id=load_id, reason_code=rejection.code, message=rejection.message,
        sha256=sha, size=stat.size, seconds=time.perf_counter() - t0,
    )


#: DuckDB errors that say nothing about the file: the run fails and the next run retries it.
#: FatalException and InternalException invalidate the database, so nothing more can be recorded.
_RESOURCE_DUCKDB_ERRORS = (
    duckdb.OutOfMemoryException,
    duckdb.InterruptException,
    duckdb.FatalException,
    duckdb.InternalException,
)
#: OS errors about the machine, not the file.
_RESOURCE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.ENOMEM, errno.EMFILE, errno.ENFILE})
#: Words in a DuckDB I/O error that mean the disk is full, not that a file is unreadable.
_DISK_FULL_WORDS = ("no space left", "disk full", "disk quota", "out of disk", "could not allocate")


def is_resource_error(exc: BaseException) -> bool:
    """True for failures of the machine rather than of the file: out of memory, disk full,
    interrupted (Ctrl+C, a cancelled run). Those fail the run, so the next run retries the
    file; every other error loading a file rejects that file alone."""
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, GeneratorExit
        return True
    if isinstance(exc, (MemoryError, *_RESOURCE_DUCKDB_ERRORS)):
        return True
    if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
        return True
    if isinstance(exc, duckdb.IOException) and any(w in str(exc).lower() for w in _DISK_FULL_WORDS):
        return True
    cause = exc.__cause__
    return cause is not None and cause is not exc and is_resource_error(cause)


def _unexpected(exc: BaseException, rel: str) -> FileRejected:
    """An error no rule foresaw, as the file's rejection (`load_failed`), naming the file."""
    text = str(exc).split("\n\n")[0].strip().replace("\n", " ")
    if len(text) > 300:
        text = text[:300] + "…"
    return FileRejected(
        "load_failed",
        f"{rel}: could not be loaded ({type(exc).__name__}: {text}); nothing of it was loaded. "
        "Fix the file, or report the error if the file looks fine",
    )


def _sha_or_none(hashing: Future) -> str | None:
    """The file's sha256, or None if it could not be read (the file vanished mid-load)."""
    try:
        return hashing.result()
    except OSError:
        return None


def _end_transaction(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back whatever transaction is open, in whatever state DuckDB left it (aborted or
    not); nothing happens when none is open."""
    with contextlib.suppress(duckdb.TransactionException):  # no transaction is active
        con.rollback()


class _KnownContent(Exception):
    """Raised inside a load when the file's sha256 turns out to be in the ledger already."""


def _content_known(con: duckdb.DuckDBPyConnection, src: Source, rel: str, sha: str) -> bool:
    """True if the ledger has this content: same path and sha256, or the sha256 loaded."""
    return bool(con.execute(
        "SELECT 1 FROM raw._loads WHERE source = ? AND sha256 = ? AND (file_path = ? OR status = 'loaded') LIMIT 1",
        [src.name, sha, rel],
    ).fetchone())


def _known_content(
    con: duckdb.DuckDBPyConnection, src: Source, rel: str, stat: FileStat, sha: str, fmt: str | None
) -> FileResult | None:
    """The result for content the ledger already has, or None if it is new.

    Same path and sha256 as any earlier file: unchanged (nothing recorded). Same sha256 as a
    file loaded under another path: skipped_duplicate, recorded once.
    """
    if con.execute(
        "SELECT 1 FROM raw._loads WHERE source = ? AND file_path = ? AND sha256 = ? LIMIT 1", [src.name, rel, sha]
    ).fetchone():
        return FileResult(src.name, rel, "unchanged", sha256=sha, size=stat.size)
    first = con.execute(
        "SELECT file_path, load_id FROM raw._loads WHERE source = ? AND sha256 = ? AND status = 'loaded' "
        "ORDER BY load_id LIMIT 1",
        [src.name, sha],
    ).fetchone()
    if first is None:
        return None
    message = f"{rel}: same content (sha256) as {first[0]}, already loaded as load {first[1]}; skipped"
    load_id = _record(con, src, rel, stat, sha, fmt, "skipped_duplicate", _utcnow(), message)
    return FileResult(
        src.name, rel, "skipped_duplicate", load_id=load_id, message=message, sha256=sha, size=stat.size
    )


def _record(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    rel: str,
    stat: FileStat,
    sha: str,
    fmt: str | None,
    status: str,
    started: datetime,
    message: str,
    load_id: int | None = None,
    code: str | None = None,
) -> int:
    """Ledger row (and rejected-file row) for a file that loads no data, in its own transaction."""
    _end_transaction(con)  # a clean transaction, whatever a failed load left behind
    con.begin()
    try:
        if load_id is None:
            load_id = con.execute("SELECT nextval('raw._load_id_seq')").fetchone()[0]
        finished = _utcnow()
        con.execute(
            "INSERT INTO raw._loads (load_id, source, file_path, file_size, file_mtime, sha256, format, status, "
            "started_at, finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [load_id, src.name, rel, stat.size, stat.mtime, sha, fmt, status, started, finished,
             message if status == "rejected" else None],
        )
        if status == "rejected":
            con.execute(
                "INSERT INTO raw._rejected_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                [load_id, src.name, rel, sha, code, message, finished],
            )
        con.commit()
    except BaseException:
        _end_transaction(con)
        raise
    return load_id


# --------------------------------------------------------------------------------------
# Reading a file into text columns


@dataclass
class _Plan:
    """How to read one file: its columns as text SQL over a FROM clause."""

    names: list[str]  # the file's column names as written
    raw: list[str]  # SQL (in the FROM's scope) of each column's text, same order as names
    from_sql: str  # FROM clause producing the raw columns
    record_sql: str  # SQL of the row as written, for quarantine
    extra_sql: dict[str, str] = field(default_factory=dict)  # name -> SQL (JSON) for _extra
    row_sql: str | None = None  # SQL of the 1-based row number; None (CSV): numbered after insert
    pre_reason: list[str] = field(default_factory=list)  # WHEN branches checked first
    pre_good: list[str] = field(default_factory=list)  # what a row passing pre_reason satisfies
    duplicate_names_ok: bool = False  # JSON keys may vary in case between lines
    # Platform imports (pipelines/importers): the name each contract column has in the
    # platform's file, shown in quarantine messages and `column_name`; and the format label
    # recorded in the ledger (e.g. `shopify/orders_csv`).
    labels: dict[str, str] = field(default_factory=dict)
    fmt: str | None = None
    # SQL of a table (`_row`, `_record`): the row as written, by row number, for the rows
    # quarantined with no record from `record_sql`. Filled in after the insert, for those rows
    # only: a platform row as written spans every column read, which would otherwise be carried
    # through the validation of every good row.
    record_rows: str | None = None


def _duck_error(exc: duckdb.Error, name: str, path: Path | None = None) -> FileRejected:
    """A DuckDB error reading a file, as a rejection.

    Errors that are not about the file's content (out of memory, interrupted, disk full) are
    raised again instead, so the run fails and the next run retries the file.
    """
    text = str(exc).split("\n\n")[0].strip()
    if is_resource_error(exc):
        raise exc
    if "gzip" in text.lower():
        return FileRejected("truncated_gzip", f"{name}: the gzip stream is truncated or corrupt ({text})")
    if not isinstance(exc, duckdb.InvalidInputException | duckdb.ConversionException):
        raise exc  # not about the content as read: ingest_file rejects the file as load_failed
    if path is not None and _has_double_cr(path):
        text = text.split("\n")[0].rstrip(".") + (
            "; its lines end in CR CR LF (\\r\\r\\n), which no CSV reader accepts: re-export it with "
            "\\n or \\r\\n line ends (or remove the extra \\r)"
        )
    return FileRejected("unreadable", f"{name}: cannot be read: {text}")


def _has_double_cr(path: Path) -> bool:
    """True if the start of a plain text file has a line ending in CR CR LF."""
    if is_compressed(path):
        return False
    try:
        with open(path, "rb") as fh:
            return b"\r\r\n" in fh.read(1 << 16)
    except OSError:
        return False


def _json_object(names: list[str], exprs: list[str]) -> str:
    return "json_object(" + ", ".join(f"{lit(n)}, {e}" for n, e in zip(names, exprs, strict=True)) + ")"


def _csv_plan(path: Path) -> _Plan:
    header = read_csv_header(path)
    names = [h.strip() or f"column{i + 1}" for i, h in enumerate(header)]
    cols = ", ".join(f"{lit(f'r{i}')}: 'VARCHAR'" for i in range(len(names)))
    # The dialect is fixed (RFC 4180), not sniffed: sniffing guesses wrong on exactly the
    # broken files we must report, and a fixed dialect makes "wrong delimiter" detectable.
    # Lines the parser cannot split go to a rejects table and are quarantined one by one.
    reader = (
        f"read_csv({lit(str(path))}, header = true, auto_detect = false, columns = {{{cols}}}, "
        "delim = ',', quote = '\"', escape = '\"', store_rejects = true, "
        "rejects_table = '_csv_rejects', rejects_scan = '_csv_scans')"
    )
    raw = [f"r{i}" for i in range(len(names))]
    return _Plan(names=names, raw=raw, from_sql=reader, record_sql=_json_object(names, raw))


#: Parquet types (prefixes) that can hold each contract type; VARCHAR is validated per row.
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
_COMPATIBLE = {
    "integer": ("VARCHAR", *_NUMERIC),
    "decimal": ("VARCHAR", *_NUMERIC),
    "boolean": ("VARCHAR", "BOOLEAN", *_NUMERIC[:10]),
    "timestamp": ("VARCHAR", "TIMESTAMP", "DATE"),
    "date": ("VARCHAR", "DATE", "TIMESTAMP"),
    "varchar": ("VARCHAR", "UUID", "DATE", "TIMESTAMP", "TIME", "BOOLEAN", *_NUMERIC),
}
_NESTED = ("[]", "STRUCT", "MAP", "UNION")


def _parquet_plan(con: duckdb.DuckDBPyConnection, path: Path, src: Source) -> _Plan:
    try:
        schema = con.execute(f"DESCRIBE SELECT * FROM read_parquet({lit(str(path))})").fetchall()
    except duckdb.Error as exc:
        raise _duck_error(exc, path.name) from exc
    contract = {c.name: c for c in src.columns}
    names, raw, cols, extras = [], [], [], {}
    for i, (name, dtype, *_) in enumerate(schema):
        col = contract.get(name.strip().lower())
        nested = any(n in dtype for n in _NESTED)
        if col is not None and (nested or not dtype.startswith(_COMPATIBLE[col.type])):
            raise FileRejected(
                "wrong_column_type",
                f"{path.name}: column {name!r} is {dtype} in the Parquet file, which cannot hold the contract's "
                f"{col.type} (accepted: {', '.join(sorted(set(_COMPATIBLE[col.type])))})",
            )
        names.append(name)
        raw.append(f"r{i}")
        text = f"to_json({q(name)})::VARCHAR" if nested or dtype == "BLOB" else f"CAST({q(name)} AS VARCHAR)"
        cols.append(f"{text} AS r{i}")
        if col is None:  # unknown column: keep its JSON type (numbers stay numbers) in _extra
            cols.append(f"to_json({q(name)}) AS j{i}")
            extras[name] = f"j{i}"
    from_sql = (
        f"(SELECT {', '.join(cols)}, file_row_number + 1 AS _file_row "
        f"FROM read_parquet({lit(str(path))}, file_row_number = true))"
    )
    return _Plan(
        names=names, raw=raw, from_sql=from_sql, record_sql=_json_object(names, raw), extra_sql=extras,
        row_sql="_file_row",
    )


def stage_lines(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> int:
    """Read a text file's lines, as written, into `table` (one VARCHAR column `line`).

    Returns the first rowid, so `rowid - base + 1` is the line number. \x01 never appears
    unescaped in valid JSON, so no line is split. Raises FileRejected if the file cannot be read.
    """
    try:
        con.execute(
            f"""CREATE TABLE {table} AS
            SELECT line FROM read_csv({lit(str(path))}, columns = {{'line': 'VARCHAR'}}, header = false,
                 auto_detect = false, delim = '\x01', quote = '', escape = '', max_line_size = {BIG_LINE_LIMIT})"""
        )
    except duckdb.Error as exc:
        raise _duck_error(exc, path.name) from exc
    return _rowid_base(con, table)


def _jsonl_plan(con: duckdb.DuckDBPyConnection, path: Path) -> _Plan:
    # Read lines as text (one column; \x01 never appears unescaped in valid JSON) so a broken
    # line is one quarantined row with its line number instead of a failed file.
    base = stage_lines(con, path, f"{SCRATCH}._text")
    # Blank lines are dropped but still counted, so n is the line number in the file.
    con.execute(
        f"""CREATE TABLE {SCRATCH}._lines AS
        SELECT rowid - {base} + 1 AS n, line,
               json_valid(line) AND CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' END AS ok
        FROM {SCRATCH}._text WHERE line IS NOT NULL AND trim(line, ' \t\r') <> ''"""
    )
    con.execute(f"DROP TABLE {SCRATCH}._text")
    keys = [k for (k,) in con.execute(
        f"SELECT k FROM (SELECT unnest(json_keys(line)) AS k, n FROM {SCRATCH}._lines WHERE ok) "
        "GROUP BY k ORDER BY min(n), k"
    ).fetchall()]
    total, good = con.execute(f"SELECT count(*), count(*) FILTER (WHERE ok) FROM {SCRATCH}._lines").fetchone()
    if total == 0:
        raise FileRejected("empty_file", f"{path.name}: the file has no JSON lines")
    if good == 0:
        first = con.execute(f"SELECT n, left(line, 60) FROM {SCRATCH}._lines ORDER BY n LIMIT 1").fetchone()
        raise FileRejected(
            "unreadable",
            f"{path.name}: no line is a JSON object (line {first[0]}: {first[1]!r}); expected JSON Lines",
        )
    paths = "[" + ", ".join(lit('$."' + k.replace("\\", "\\\\").replace('"', '\\"') + '"') for k in keys) + "]"
    from_sql = (
        f"(SELECT n, line, ok, CASE WHEN ok THEN json_extract_string(line, {paths}) END AS _vals, "
        f"CASE WHEN ok THEN json_extract(line, {paths}) END AS _jvals FROM {SCRATCH}._lines)"
    )
    malformed = (
        "WHEN NOT ok THEN {'code': 'malformed_json', 'col': NULL::VARCHAR, "
        "'msg': 'line ' || n || ' is not a JSON object: ' || '''' || left(line, 60) || "
        "CASE WHEN length(line) > 60 THEN '…' ELSE '' END || ''''}"
    )
    return _Plan(
        names=keys, raw=[f"_vals[{i + 1}]" for i in range(len(keys))], from_sql=from_sql, record_sql="line",
        extra_sql={k: f"_jvals[{i + 1}]" for i, k in enumerate(keys)}, row_sql="n", pre_reason=[malformed],
        pre_good=["ok"],
        duplicate_names_ok=True,
    )


def _rowid_base(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """The first rowid of a freshly created table, checking rowids are consecutive.

    Rowids count up from 0 in insertion order (inside a transaction they would start at a
    large base); only the offset is used, and consecutiveness is checked, not assumed.
    """
    count, lo, hi = con.execute(f"SELECT count(*), min(rowid), max(rowid) FROM {table}").fetchone()
    if count and hi - lo + 1 != count:
        raise RuntimeError(f"rowids of {table} are not consecutive ({lo}..{hi} for {count} rows)")
    return lo or 0


# --------------------------------------------------------------------------------------
# Validation


def _map_columns(plan: _Plan, src: Source, name: str) -> tuple[dict[str, list[int]], list[int]]:
    """Contract column -> indexes of the file's columns holding it, and the unknown columns."""
    contract = set(src.column_names)
    known: dict[str, list[int]] = {}
    extras: list[int] = []
    for i, col in enumerate(plan.names):
        norm = col.strip().lower()
        if norm in contract:
            known.setdefault(norm, []).append(i)
        else:
            extras.append(i)
    if not plan.duplicate_names_ok:
        for col, idx in known.items():
            if len(idx) > 1:
                spelled = ", ".join(repr(plan.names[i]) for i in idx)
                raise FileRejected(
                    "duplicate_column",
                    f"{name}: columns {spelled} are all {col!r} (names are matched case-insensitively)",
                )
    if not known:
        found = ", ".join(repr(plan.names[i]) for i in extras[:10]) or "none"
        raise FileRejected(
            "no_known_columns",
            f"{name}: none of the file's columns ({found}) is in the contract for {src.name}; "
            f"expected {', '.join(src.column_names)}",
        )
    missing = [c for c in src.required_columns if c not in known]
    if missing:
        raise FileRejected(
            "missing_required_column",
            f"{name}: required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"missing from the header (found: {', '.join(plan.names)})",
        )
    return known, extras


def _trimmed(x: str) -> str:
    """SQL of text `x` without surrounding whitespace, NULL if nothing is left.

    trim() allocates a new string for every value and costs several times the CSV parse
    of a column; the prefix/suffix tests that guard it are nearly free, and almost no value
    needs trimming. The guard looks for spaces (the whitespace real exports carry); a value
    that starts or ends with a space loses tabs and line breaks around it too.
    """
    return (
        f"CASE WHEN {x} LIKE ' %' OR {x} LIKE '% ' OR {x} = '' "
        f"THEN NULLIF(trim({x}, {WHITESPACE}), '') ELSE {x} END"
    )


def _validation_sql(
    plan: _Plan, src: Source, known: dict[str, list[int]], extras: list[int], now: datetime
) -> str:
    """The SELECT that types every column and gives each row its `_reason` (NULL: good).

    Only projections: no join, aggregate or sort, so DuckDB keeps the file's row order (CSV
    row numbers rely on it; `_load` checks the plan). Columns: the contract's, typed, then
    `_source_row` (NULL for CSV: numbered after the insert), `_reason`, `_record`, `_extra`.
    """
    values, typed, branches, final = [], [], list(plan.pre_reason), []
    goods = list(plan.pre_good)
    for i, raw in enumerate(plan.raw):
        branches.append(too_long_branch(raw, plan.names[i]))
    if plan.raw:
        goods.append(f"greatest({', '.join(f'coalesce(strlen({r}), 0)' for r in plan.raw)}) <= {MAX_VALUE_BYTES}")
    for col in src.columns:
        v = q("v:" + col.name)
        idx = known.get(col.name, [])
        text = "NULL::VARCHAR"
        if idx:
            text = plan.raw[idx[0]] if len(idx) == 1 else "COALESCE(" + ", ".join(plan.raw[i] for i in idx) + ")"
            if col.type == "varchar":  # stored as text: trim; other types are cast (see rules.blank_sql)
                text = _trimmed(text)
        values.append(f"{text} AS {v}")
        typed.append(f"{typed_sql(col, v)} AS {q(col.name)}")
        label = plan.labels.get(col.name)
        cs = column_sql(col if label is None else replace(col, name=label), v, q(col.name), now)
        branches += cs.checks
        if cs.good:
            goods.append(cs.good)
        final.append(f"{cs.typed} AS {q(col.name)}")
    branches += row_check_branches(src)
    goods += [f"COALESCE(({chk.condition}), TRUE)" for chk in src.checks]
    # Most rows are fine: one cheap conjunction clears them, and only the rest run the CASE
    # of every rule (a dozen tests per row instead of forty).
    reason = f"NULL::{REASON_TYPE}"
    if branches:
        reason = "CASE " + " ".join(branches) + " END"
        if goods:
            reason = f"CASE WHEN {' AND '.join(goods)} THEN NULL::{REASON_TYPE} ELSE {reason} END"
    if extras:
        exprs = [plan.extra_sql.get(plan.names[i], plan.raw[i]) for i in extras]
        # NULL when the row has no value in any unknown column, else a JSON object of them all.
        extra = (
            f"CASE WHEN COALESCE({', '.join(f'{e}::VARCHAR' for e in exprs)}) IS NULL THEN NULL::JSON "
            f"ELSE {_json_object([plan.names[i] for i in extras], exprs)} END"
        )
    else:
        extra = "NULL::JSON"
    row = plan.row_sql or "NULL::BIGINT"
    return f"""
        SELECT {", ".join(final)}, {row} AS _source_row, _reason,
               CASE WHEN _reason IS NOT NULL THEN ({plan.record_sql})::VARCHAR END AS _record,
               {extra} AS _extra
        FROM (SELECT *, {reason} AS _reason
              FROM (SELECT *, {", ".join(typed)}
                    FROM (SELECT *, {", ".join(values)} FROM {plan.from_sql})))"""


def _order_safe(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """True if DuckDB plans `sql` without joins (which may reorder rows)."""
    plan = "\n".join(str(r[-1]) for r in con.execute(f"EXPLAIN {sql}").fetchall())
    return "join" not in plan.lower()


_CSV_PROBLEMS = {
    "TOO MANY COLUMNS": "has more fields than the header (a stray comma or an unquoted value?)",
    "MISSING COLUMNS": "has fewer fields than the header",
    "UNQUOTED VALUE": "has a quote that is not closed, or text after a closing quote",
    "LINE SIZE OVER MAXIMUM": "is longer than the 2 MB a row may have",
}


def _csv_rejects(con: duckdb.DuckDBPyConnection, path: Path, size: int, good: int) -> list[tuple]:
    """The lines DuckDB's CSV parser rejected, as quarantine rows (row, code, message, line).

    Undecodable bytes, a quote that swallows the rest of the file, a cut-off last row, or no
    parsable row at all reject the file (FileRejected).
    """
    errors = con.execute(
        "SELECT line, min(line_byte_position), min(byte_position), list(DISTINCT error_type ORDER BY error_type), "
        "any_value(csv_line), first(error_message ORDER BY byte_position) "
        "FROM _csv_rejects GROUP BY line ORDER BY line"
    ).fetchall()
    if not errors:
        return []
    name = path.name
    for line, _line_pos, byte_pos, types, _csv_line, _msg in errors:
        if "INVALID ENCODING" in types:
            raise FileRejected(
                "invalid_encoding",
                f"{name}: not UTF-8 at line {line} (byte {byte_pos}); re-export the file as UTF-8 "
                "(it looks like Latin-1 / Windows-1252)",
            )
    line, line_pos, byte_pos, types, csv_line, _msg = errors[-1]
    reaches_end = line_pos is not None and csv_line is not None and line_pos + len(csv_line.encode()) >= size - 2
    if reaches_end and "UNQUOTED VALUE" in types and "\n" in csv_line.rstrip("\r\n"):
        raise FileRejected(
            "unterminated_quote",
            f"{name}: the quote at line {line} (byte {byte_pos}) never closes, so the rest of the file would be "
            "one value; fix the quoting (a \" inside a value is written \"\")",
        )
    if reaches_end and not is_compressed(path) and not ends_with_newline(path) and "MISSING COLUMNS" in types:
        raise FileRejected(
            "truncated_file",
            f"{name}: the file ends in the middle of a row (line {line}, byte {line_pos}); "
            "it looks cut off, re-send the complete file",
        )
    if good == 0:
        first = errors[0]
        raise FileRejected(
            "no_valid_rows",
            f"{name}: no row could be parsed; line {first[0]} {_CSV_PROBLEMS.get(first[3][0], first[5])}",
        )
    rows = []
    for line, _lp, _bp, types, csv_line, msg in errors:
        code = "value_too_long" if "LINE SIZE OVER MAXIMUM" in types else "malformed_row"
        problem = "; ".join(_CSV_PROBLEMS.get(t, t.lower()) for t in types)
        detail = msg.split("\n")[0] if msg else ""
        # The header is line 1, so data row = line - 1 (exact unless quoted values span lines).
        rows.append((line - 1, code, f"line {line} {problem} ({detail})", csv_line))
    return rows


def _prepare(
    con: duckdb.DuckDBPyConnection, src: Source, path: Path, fmt: str | None, stat: FileStat, now: datetime,
    plan: _Plan | None = None,
):
    """Before the transaction: the plan and its validation SELECT. Raises FileRejected.

    Returns (plan, extra column names, SELECT, numbering): numbering is how CSV rows get their
    `_source_row` after the insert: "rowid" (from the insertion order), "position" (already
    the row's position, from a staged copy), or None (Parquet and JSON rows carry theirs).
    """
    name = path.name
    if plan is not None:  # a platform file already read and mapped: its rows carry their numbers
        known, extras = _map_columns(plan, src, name)
        return plan, [plan.names[i] for i in extras], _validation_sql(plan, src, known, extras, now), None
    if fmt is None:
        raise FileRejected(
            "unsupported_format",
            f"{name}: unsupported file type; use .csv, .csv.gz, .parquet, .jsonl or .ndjson (optionally .gz)",
        )
    if stat.size == 0:
        raise FileRejected("empty_file", f"{name}: the file is empty (0 bytes)")
    if fmt == "csv":
        plan = _csv_plan(path)
    elif fmt == "parquet":
        plan = _parquet_plan(con, path, src)
    else:
        plan = _jsonl_plan(con, path)  # stages the lines in the scratch database
    known, extras = _map_columns(plan, src, name)
    sql = _validation_sql(plan, src, known, extras, now)
    numbering = None
    if plan.row_sql is None:
        try:
            safe = _order_safe(con, sql)
        except duckdb.Error as exc:
            raise _duck_error(exc, name) from exc
        if safe:
            numbering = "rowid"
        else:
            # DuckDB plans a join (an IN list in a contract check, say), which may reorder
            # rows: read the file as-is first and carry each row's position.
            try:
                con.execute(f"CREATE TABLE {SCRATCH}._in AS SELECT * FROM {plan.from_sql}")
            except duckdb.Error as exc:
                raise _duck_error(exc, name) from exc
            base = _rowid_base(con, f"{SCRATCH}._in")
            plan = _Plan(**{**plan.__dict__, "from_sql": f"(SELECT *, rowid - {base} AS _pos FROM {SCRATCH}._in)",
                            "row_sql": "_pos + 1"})
            sql = _validation_sql(plan, src, known, extras, now)
            numbering = "position"
    return plan, [plan.names[i] for i in extras], sql, numbering


def _load(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    path: Path,
    rel: str,
    fmt: str | None,
    stat: FileStat,
    load_id: int,
    started: datetime,
    hashing: Future,
    reload: bool,
    plan: _Plan | None = None,
) -> FileResult:
    """Load one file in one transaction. Raises FileRejected or _KnownContent (rolled back).

    Every row the reader yields is inserted into `raw.<source>` in one pass: good rows with
    `_load_id = load_id`, bad rows with `-load_id` and their reason and raw record in `_extra`.
    Bad rows (and later duplicates) then move to `raw._quarantine` (rare, so cheap), and the
    ledger row is written; all of it commits together. Staging the rows elsewhere first would
    cost a full extra copy of every file.
    """
    # Date bounds relative to now (`now+1d`) are resolved once per file, at its load time.
    plan, extra_names, sql, numbering = _prepare(con, src, path, fmt, stat, started, plan)
    table = f"raw.{q(src.name)}"
    cols = ", ".join(q(c) for c in src.column_names)
    this_load = f"(_load_id = {load_id} OR _load_id = {-load_id})"
    # CSV rows are numbered by their order of insertion, which DuckDB keeps only when asked
    # to; other formats carry their numbers and may be written in any order. Set (and reset)
    # outside the transaction: a statement on a transaction aborted by a failed insert raises.
    con.execute(f"SET preserve_insertion_order = {'true' if numbering == 'rowid' else 'false'}")
    con.begin()
    try:
        try:
            rows = con.execute(
                f"""INSERT INTO {table} ({cols}, _load_id, _source_file, _source_row, _loaded_at, _extra)
                    SELECT {cols},
                           CASE WHEN _reason IS NULL THEN {load_id} ELSE {-load_id} END, ?,
                           coalesce(_source_row, 0), ?,
                           CASE WHEN _reason IS NULL THEN _extra
                                ELSE json_object('reason', to_json(_reason), 'record', _record) END
                    FROM ({sql})""",
                [rel, started],
            ).fetchone()[0]
        except duckdb.Error as exc:
            raise _duck_error(exc, path.name, path) from exc
        con.execute("RESET preserve_insertion_order")
        _fault("after_data_insert")
        bad_lines: list[tuple] = []
        if fmt == "csv":
            bad_lines = _csv_rejects(con, path, stat.size, rows)
            con.execute("DROP TABLE IF EXISTS _csv_rejects")
            con.execute("DROP TABLE IF EXISTS _csv_scans")
        if numbering:
            _number_rows(con, table, this_load, bad_lines, by_rowid=numbering == "rowid")
        _derive_missing_key(con, src, table, load_id)
        _mark_duplicates(con, src, table, load_id)
        quarantined = 0
        if con.execute(f"SELECT 1 FROM {table} WHERE _load_id = {-load_id} LIMIT 1").fetchone():
            if plan.record_rows:
                no_record = f"t._load_id = {-load_id} AND t._extra->>'$.record' IS NULL"
                wanted = f"SELECT t._source_row FROM {table} AS t WHERE {no_record}"
                con.execute(
                    f"""UPDATE {table} AS t
                        SET _extra = json_object('reason', t._extra->'$.reason', 'record', r._record)
                        FROM (SELECT * FROM ({plan.record_rows}) WHERE _row IN ({wanted})) AS r
                        WHERE {no_record} AND t._source_row = r._row"""
                )
            quarantined = con.execute(
                f"""INSERT INTO raw._quarantine
                    SELECT ?, ?, ?, _source_row, _extra->>'$.reason.col', _extra->>'$.reason.code',
                           _extra->>'$.reason.msg', _extra->>'$.record', ?
                    FROM {table} WHERE _load_id = {-load_id}""",
                [load_id, src.name, rel, started],
            ).fetchone()[0]
            con.execute(f"DELETE FROM {table} WHERE _load_id = {-load_id}")
        if bad_lines:
            con.executemany(
                "INSERT INTO raw._quarantine VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                [(load_id, src.name, rel, row, code, msg, line, started) for row, code, msg, line in bad_lines],
            )
            quarantined += len(bad_lines)
        _fault("after_quarantine_insert")
        nulled = _null_invalid_optional_values(con, src, table, load_id, rel, started)
        loaded = rows - (quarantined - len(bad_lines))
        sha = hashing.result()
        if not reload and _content_known(con, src, rel, sha):
            raise _KnownContent()
        rows_read = rows + len(bad_lines)
        con.execute(
            """INSERT INTO raw._loads VALUES (?, ?, ?, ?, ?, ?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?, NULL)""",
            [load_id, src.name, rel, stat.size, stat.mtime, sha, fmt, rows_read, loaded, quarantined, nulled,
             extra_names, started, _utcnow()],
        )
        _fault("before_commit")
        con.commit()
    except BaseException:
        _end_transaction(con)  # before anything else runs on the connection
        with contextlib.suppress(duckdb.Error):  # never hide the error that got us here
            con.execute("RESET preserve_insertion_order")
        raise
    return FileResult(
        src.name, rel, "loaded", load_id=load_id, rows_read=rows_read, rows_loaded=loaded,
        rows_quarantined=quarantined, values_nulled=nulled, extra_columns=extra_names, sha256=sha, size=stat.size,
    )


def _number_rows(
    con: duckdb.DuckDBPyConnection, table: str, this_load: str, bad_lines: list[tuple], by_rowid: bool
) -> None:
    """Set `_source_row` of a CSV load from the rows' positions among the parsed rows.

    by_rowid: the insert kept the file's order and the new rows' rowids are consecutive from
    a base, so position = rowid - base. Otherwise `_source_row` already holds position + 1.
    Lines the parser rejected hold row numbers too (line - 1): the parsed rows take the
    numbers those don't, in order.
    """
    count, lo, hi = con.execute(f"SELECT count(*), min(rowid), max(rowid) FROM {table} WHERE {this_load}").fetchone()
    if not count:
        return
    if by_rowid and hi - lo + 1 != count:
        raise RuntimeError(f"rowids of the new rows are not consecutive ({lo}..{hi} for {count} rows)")
    position = f"{table}.rowid - {lo}" if by_rowid else f"{table}._source_row - 1"
    if not bad_lines:
        if by_rowid:
            con.execute(f"UPDATE {table} SET _source_row = rowid - {lo} + 1 WHERE {this_load}")
        return
    con.execute("CREATE TEMP TABLE _bad_rows (n BIGINT)")
    con.executemany("INSERT INTO _bad_rows VALUES (?)", [(row,) for row, *_ in bad_lines])
    con.execute(
        f"""UPDATE {table} SET _source_row = m.n FROM (
              SELECT row_number() OVER (ORDER BY n) - 1 AS pos, n
              FROM range(1, {count + 2 * len(bad_lines) + 1}) t(n)
              WHERE n NOT IN (SELECT n FROM _bad_rows)) m
            WHERE {position} = m.pos AND {this_load}"""
    )
    con.execute("DROP TABLE _bad_rows")


def _drop_scratch(con: duckdb.DuckDBPyConnection) -> None:
    """Empty the scratch database and the CSV reader's rejects tables."""
    for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [SCRATCH]
    ).fetchall():
        con.execute(f"DROP TABLE {SCRATCH}.{q(name)}")
    for name in ("_csv_rejects", "_csv_scans", "_bad_rows"):
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _derive_missing_key(con: duckdb.DuckDBPyConnection, src: Source, table: str, load_id: int) -> None:
    """Fill an optional single-column primary key from the required columns.

    `orders.order_id` may be missing when a shop only has a transaction log (customer, date,
    amount): the id becomes md5 of the required columns' values plus the occurrence number of
    that combination within the file, so the same log re-exported (even re-ordered) gives the
    same ids and two identical purchases on one day still get two ids.
    """
    if len(src.primary_key) != 1 or src.column(src.primary_key[0]).required:
        return
    key = q(src.primary_key[0])
    if not con.execute(f"SELECT 1 FROM {table} WHERE _load_id = {load_id} AND {key} IS NULL LIMIT 1").fetchone():
        return
    parts = [q(c) for c in src.required_columns]
    cast_parts = ", ".join(f"{p}::VARCHAR" for p in parts)
    con.execute(
        f"""UPDATE {table} SET {key} = md5(concat_ws('|', {cast_parts}, d._occ::VARCHAR))
            FROM (SELECT rowid AS _rid,
                         row_number() OVER (PARTITION BY {", ".join(parts)} ORDER BY _source_row) AS _occ
                  FROM {table} WHERE _load_id = {load_id} AND {key} IS NULL) d
            WHERE {table}.rowid = d._rid"""
    )


def _mark_duplicates(con: duckdb.DuckDBPyConnection, src: Source, table: str, load_id: int) -> None:
    """Turn every good row whose primary key appeared on an earlier good row into a bad row."""
    keys = [q(c) for c in src.primary_key]
    key = keys[0] if len(keys) == 1 else "(" + ", ".join(keys) + ")"
    # Counting distinct keys is much cheaper than grouping with min(row); most files pass here.
    total, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT {key}) FROM {table} WHERE _load_id = {load_id}"
    ).fetchone()
    if total == distinct:
        return
    shown = " || ', ' || ".join(f"{lit(c + '=')} || '''' || t.{q(c)}::VARCHAR || ''''" for c in src.primary_key)
    msg = f"'duplicate primary key ' || {shown} || ' in this file; row ' || d._first || ' has it too and was kept'"
    record = "to_json({" + ", ".join(f"{lit(c)}: t.{q(c)}" for c in src.column_names) + "})::VARCHAR"
    reason = f"json_object('code', 'duplicate_key', 'col', {lit(', '.join(src.primary_key))}, 'msg', {msg})"
    match = " AND ".join(f"t.{k} = d.{k}" for k in keys)
    con.execute(
        f"""UPDATE {table} AS t SET _load_id = {-load_id},
                                   _extra = json_object('reason', {reason}, 'record', {record})
            FROM (SELECT {", ".join(keys)}, min(_source_row) AS _first FROM {table}
                  WHERE _load_id = {load_id} GROUP BY ALL HAVING count(*) > 1) d
            WHERE {match} AND t._load_id = {load_id} AND t._source_row > d._first"""
    )


def _null_invalid_optional_values(
    con: duckdb.DuckDBPyConnection, src: Source, table: str, load_id: int, rel: str, now: datetime
) -> int:
    """Null the load's invalid values of optional columns; record each in raw._warnings.

    Invalid means an email / phone / country that is not valid (`invalid_format`), or a date /
    timestamp outside the contract's min / max (`out_of_range`). The row itself loads.
    """
    nulled = 0
    checks = []
    for col in src.columns:
        if col.required:
            continue
        if col.format:
            checks.append((col, "invalid_format", *format_warning_sql(col, q(col.name))))
        elif col.type in DATE_TYPES and (col.min is not None or col.max is not None):
            checks.append((col, "out_of_range", *range_warning_sql(col, q(col.name), now)))
    dated = [bad for _, code, bad, _ in checks if code == "out_of_range"]
    if dated and not con.execute(
        f"SELECT 1 FROM {table} WHERE _load_id = {load_id} AND ({' OR '.join(dated)}) LIMIT 1"
    ).fetchone():  # one pass over the load for every date column: out-of-range dates are rare
        checks = [c for c in checks if c[1] != "out_of_range"]
    for col, code, bad, msg in checks:
        where = f"_load_id = {load_id} AND {bad}"
        n = con.execute(
            f"""INSERT INTO raw._warnings
                SELECT ?, ?, ?, _source_row, ?, ?, {msg} FROM {table} WHERE {where}""",
            [load_id, src.name, rel, col.name, code],
        ).fetchone()[0]
        if n:
            con.execute(f"UPDATE {table} SET {q(col.name)} = NULL WHERE {where}")
        nulled += n
    return nulled
