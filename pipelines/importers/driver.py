"""Import platform files: detect the kind, read once, and load each target source through the loader.

For every file in `data/landing/<platform>/` (and any landing folder with a `_mapping*.yaml`):

1. Skip it without reading when the ledger already has every target source of its kind(s)
   for this path, size and mtime.
2. Recognise its kind from the CSV header or the JSON records' keys / Airbyte stream names
   (`reader.py`); a file that is no known kind is rejected, naming the columns it lacks.
3. Stage it once (`_pstage.rows`), then compile each target of the mapping into a loader
   `_Plan` (`plan_for`) and call `loader.ingest_file` per target source: the contract's
   validation, quarantine, duplicate check, ledger row and transaction, exactly as for a
   contract file. One file gives one ledger row per target source.
"""

from __future__ import annotations

import os
import re
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from pipelines.core.contract import SOURCE_NAMES, source
from pipelines.importers.mapping import (
    PLATFORMS,
    USER_MAPPING_GLOB,
    ColumnMap,
    Columns,
    Mapping,
    MappingError,
    Target,
    filled,
    mappings_for,
)
from pipelines.importers.reader import (
    ROWS,
    SIDE,
    Staged,
    detect_csv,
    ensure_stage,
    file_kind,
    stage_csv,
    stage_json,
    stage_siblings,
)
from pipelines.ingest.files import FileRejected, FileStat, is_in_flight, sha256_of
from pipelines.ingest.loader import REASON_TYPE, FileResult, _Plan, _record, ingest_file
from pipelines.ingest.rules import lit, q

#: `_extra` key holding the platform's own customer id when the customer key is another one.
PLATFORM_ID = "platform_customer_id"

#: ISO 8601 with a Z, what every converted time becomes (the loader reads it as UTC).
_ISO_Z = "%Y-%m-%dT%H:%M:%S.%fZ"


def shop_timezone() -> str:
    """`RETAIN_SHOP_TIMEZONE` (an IANA name, default UTC): how offset-less shop times are read."""
    tz = os.environ.get("RETAIN_SHOP_TIMEZONE", "UTC").strip() or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MappingError(f"RETAIN_SHOP_TIMEZONE={tz!r} is not an IANA time zone (e.g. Europe/Berlin)") from exc
    return tz


def _zone(name: str | None, mapping: Mapping) -> str:
    name = name or mapping.timezone
    if name.lower() == "shop":
        return shop_timezone()
    if name.lower() == "utc":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MappingError(f"{mapping.path}: timezone {name!r} is not an IANA time zone") from exc
    return name


def time_sql(x: str, fmt: str | None, tz: str, date_only: bool = False) -> str:
    """SQL turning a platform time text into ISO 8601 UTC text (the original text if it does not parse).

    Values with an offset or Z keep it (`2025-05-11 09:55:16 -0400`: the offset may change
    with daylight saving inside one file); values without one are read in `tz`. `fmt`: a
    strptime format, `epoch` (unix seconds) or `epoch_ms`. The loader then validates the
    result like any contract timestamp, so a bad value is quarantined showing what was written.
    """
    if date_only:
        if fmt and fmt not in ("epoch", "epoch_ms"):
            return f"COALESCE(strftime(TRY_STRPTIME({x}, {lit(fmt)}), '%Y-%m-%d'), {x})"
        return x
    utc = "::TIMESTAMP"
    if fmt in ("epoch", "epoch_ms"):
        div = " / 1000" if fmt == "epoch_ms" else ""
        parsed = f"to_timestamp(TRY_CAST({x} AS DOUBLE){div}){utc}"
    elif fmt:
        if "%z" in fmt or "%Z" in fmt:
            parsed = f"TRY_STRPTIME({x}, {lit(fmt)}){utc}"
        else:
            parsed = f"timezone({lit(tz)}, TRY_STRPTIME({x}, {lit(fmt)})){utc}"
    else:
        with_offset = f"TRY_CAST(regexp_replace({x}, '\\s*([+-]\\d\\d):?(\\d\\d)$', '\\1:\\2') AS TIMESTAMPTZ){utc}"
        # Shopify's `2025-05-11 09:55:16 -0400` (and every time written so) parses with one
        # strptime, at half the cost of the regular expression the other forms need
        shop = f"TRY_STRPTIME({x}, '%Y-%m-%d %H:%M:%S %z'){utc}"
        local = with_offset if tz == "UTC" else f"timezone({lit(tz)}, TRY_CAST({x} AS TIMESTAMP)){utc}"
        if tz == "UTC":
            return (f"CASE WHEN {x} LIKE '%Z' THEN {x} ELSE COALESCE(strftime(COALESCE({shop}, {with_offset}), "
                    f"{lit(_ISO_Z)}), {x}) END")
        parsed = (f"COALESCE({shop}, CASE WHEN {x} LIKE '%Z' OR regexp_matches({x}, '[+-]\\d\\d:?\\d\\d$') "
                  f"THEN {with_offset} ELSE {local} END)")
    return f"COALESCE(strftime({parsed}, {lit(_ISO_Z)}), {x})"


def column_expr(cm: ColumnMap, ctype: str, cols: Columns, mapping: Mapping) -> str:
    """SQL of one contract column's text for a platform row (NULL when blank)."""
    single = re.fullmatch(r"\{([^{}]+)\}", cm.sql.strip())
    if cols.kind == "csv" and single:
        # a platform column, or the first filled of several: already trimmed text (or NULL)
        x = cols.ref(single.group(1))
        x = filled(x) if x in cols.csv_columns.values() else x
    else:
        x = f"NULLIF(trim(({cols.render(cm.sql)})::VARCHAR), '')"
    if cm.values is not None:
        whens = " ".join(
            f"WHEN {lit(k)} THEN {'NULL::VARCHAR' if v is None else lit(v)}" for k, v in cm.values.items()
        )
        other = x if cm.keep_unmapped else ("NULL::VARCHAR" if cm.default is None else lit(cm.default))
        x = f"CASE lower({x}) {whens} ELSE {other} END"
    if ctype in ("timestamp", "date"):
        x = time_sql(x, cm.format, _zone(cm.timezone, mapping), date_only=ctype == "date")
    return x


def plan_for(
    mapping: Mapping, target: Target, cols: Columns, record_filter: str | None, header: list[str] | None,
    takes_bad_rows: bool = True,
) -> _Plan:
    """Compile one target of a mapping into the loader's `_Plan` over the staged rows.

    names = contract columns, raw = their SQL over the platform row, row_sql = the platform
    row number, record_sql = the platform row as written (for quarantine).
    """
    src = source(target.source)
    names, raw, labels = [], [], {}
    exprs = []
    scope = cols
    base = lookup_rows(mapping)
    if mapping.lookups:
        scope = Columns("json", record=cols.record, aliases={lk.name: q(lk.name) for lk in mapping.lookups})
    if target.explode:
        path, alias = target.explode
        scope = Columns("json", record=cols.record, aliases={**scope.aliases, alias: q(alias)})
        arr = f"json_extract(_rec, {lit('$.' + path)})"
        is_array = f"json_type({arr}) = 'ARRAY'"
        base = (f"(SELECT *, unnest(CASE WHEN {is_array} THEN {arr}::JSON[] ELSE [] END) AS {q(alias)}, "
                f"unnest(CASE WHEN {is_array} THEN range(1, json_array_length({arr})::BIGINT + 1) ELSE [] END) "
                f"AS {q(alias + '_n')} FROM {base} WHERE _bad IS NULL)")
    for i, cm in enumerate(target.columns):
        names.append(cm.name)
        raw.append(f"k{i}")
        labels[cm.name] = cm.label
        exprs.append(f"{column_expr(cm, src.column(cm.name).type, scope, mapping)} AS k{i}")
    for cm in target.columns:
        if cm.platform_id and cm.name == "customer_id":
            # the platform's own customer id, kept in `_extra` (the key may be the email's)
            names.append(PLATFORM_ID)
            raw.append(f"k{len(exprs)}")
            exprs.append(f"NULLIF(trim(({scope.render(cm.platform_id)})::VARCHAR), '') AS k{len(exprs)}")
    wheres = []
    # unparsable rows are quarantined once per file: in the primary target of its first kind
    primary = takes_bad_rows and target is mapping.primary_target and not target.explode
    if record_filter:
        wheres.append(record_filter)
    if target.where:
        wheres.append(f"COALESCE(({scope.render(target.where)}), FALSE)")
    cond = " AND ".join(wheres) if wheres else "TRUE"
    cond = f"(_bad IS NOT NULL OR ({cond}))" if primary else f"_bad IS NULL AND {cond}"
    # the platform row as written, for quarantined rows only: built by the loader after the
    # insert from the staged row of that number (`record_rows`), so the columns it shows are not
    # carried through every good row's validation. An exploded element is no staged row: the
    # columns its record is built from ride along as `_r0`, `_r1` instead.
    carried, record_rows = "", None
    record_sql = "_bad"
    if target.explode:
        carried = f", _rec AS _r0, {q(target.explode[1])} AS _r1"
        record = f"json_object('record', _r0, {lit(target.explode[1])}, _r1)"
        record_sql = f"COALESCE(CASE WHEN _bad IS NULL THEN ({record})::VARCHAR END, _bad)"
    else:
        if mapping.format == "csv":
            shown = [h for h in (header or []) if h.strip().lower() in cols.csv_columns]
            record = "json_object(" + ", ".join(f"{lit(h)}, {cols.ref(h)}" for h in shown) + ")" if shown else "NULL"
        else:
            record = "_rec"
        record_rows = f"SELECT _row, ({record})::VARCHAR AS _record FROM {ROWS} WHERE _bad IS NULL"
    rules = " ".join(
        f"WHEN _bad IS NULL AND COALESCE(({scope.render(r.when)}), FALSE) THEN {{'code': {lit(r.code)}, "
        f"'col': {lit(r.column)}, 'msg': {scope.render_text(r.message)}}}"
        for r in target.quarantine
    )
    rule_sql = f"CASE {rules} END" if rules else "NULL"
    selected = f"{', '.join(exprs)}, ({rule_sql})::{REASON_TYPE} AS _rule"
    keep = ", ".join(f"k{i}" for i in range(len(exprs))) + ", _rule, _row, _bad"
    if not target.one_row_per:
        from_sql = f"(SELECT {selected}, _row, _bad{carried} FROM {base} WHERE {cond})"
    else:
        # a contract column of the target (e.g. customer_id) or an SQL template. Column SQL may
        # aggregate over the group as `_group` (`min(...) OVER (PARTITION BY _group)`) or explode
        # an array: then every row is mapped and ranked; otherwise only the key is computed for
        # every row and the rest for the rows kept
        key = exprs[names.index(target.one_row_per)].rsplit(" AS ", 1)[0] if target.one_row_per in names \
            else scope.render(target.one_row_per)
        grouped = any("_group" in (cm.sql or "") for cm in target.columns)
        prefer = f"COALESCE(({scope.render(target.prefer)}), FALSE)" if target.prefer else "TRUE"
        order = "_prefer DESC, " + ("_row DESC" if target.pick == "last" else "_row")
        keep_first = ("QUALIFY _bad IS NOT NULL OR row_number() OVER (PARTITION BY _bad IS NULL, _key, "
                      f"CASE WHEN _key IS NULL THEN _row END ORDER BY {order}) = 1")
        if not grouped and not target.explode:
            # rank on the key alone (row number, key, preference), then map only the rows kept
            ranked = (f"SELECT _row FROM (SELECT _row, _bad, ({key}) AS _key, {prefer} AS _prefer "
                      f"FROM {base} WHERE {cond}) {keep_first}")
            from_sql = f"(SELECT {selected}, _row, _bad{carried} FROM {base} WHERE {cond} AND _row IN ({ranked}))"
            return _plan(mapping, names, raw, labels, from_sql, record_sql, record_rows)
        if grouped:
            base = f"(SELECT *, {key} AS _group FROM {base})"
            key = "_group"
        elif target.one_row_per in names:
            key = f"k{names.index(target.one_row_per)}"
        # rank the mapped rows (the platform columns stay out of the sort, but for an exploded
        # element's record)
        wide = "b.*" if target.explode else "b._row, b._bad"
        ranked = (f"SELECT * FROM (SELECT {selected}, ({key}) AS _key, {prefer} AS _prefer, {wide} "
                  f"FROM {base} AS b WHERE {cond}) "
                  f"{keep_first}")
        from_sql = f"(SELECT {keep}{carried} FROM ({ranked}))"
    return _plan(mapping, names, raw, labels, from_sql, record_sql, record_rows)


def _plan(
    mapping: Mapping, names: list[str], raw: list[str], labels: dict[str, str], from_sql: str, record_sql: str,
    record_rows: str | None,
) -> _Plan:
    code = "malformed_row" if mapping.format == "csv" else "malformed_json"
    malformed = "WHEN _bad IS NOT NULL THEN {'code': " + lit(code) + ", 'col': NULL::VARCHAR, 'msg': _bad}"
    return _Plan(
        names=names, raw=raw, from_sql=from_sql, record_sql=record_sql, row_sql="_row",
        pre_reason=[malformed, "WHEN _rule IS NOT NULL THEN _rule"], pre_good=["_bad IS NULL", "_rule IS NULL"],
        labels=labels, fmt=mapping.name, record_rows=record_rows,
    )


def _key_sql(x: str) -> str:
    """SQL: a lookup key as text, `7253394974479.0` (an id written as a float) as `7253394974479`."""
    return f"regexp_replace(trim(({x})::VARCHAR), '\\.0$', '')"


def lookup_rows(mapping: Mapping) -> str:
    """The staged rows, each with a column per lookup holding the record it refers to (or NULL)."""
    if not mapping.lookups:
        return ROWS
    others = (f"(SELECT _stream AS _part, _rec FROM {ROWS} WHERE _stream IS NOT NULL AND _bad IS NULL "
              f"UNION ALL SELECT _part, _rec FROM {SIDE})")
    row_scope = Columns("json", record="r._rec")
    joins, picks = [], []
    for i, lk in enumerate(mapping.lookups):
        if lk.table:  # the latest version already loaded, as JSON
            found = (f"SELECT {q(lk.key)} AS _k, arg_max(to_json(t), t._load_id) AS _v FROM raw.{q(lk.table)} t "
                     "GROUP BY 1")
            joins.append(f"LEFT JOIN ({found}) l{i} ON l{i}._k = ({row_scope.render(lk.on)})")
            picks.append(f"l{i}._v AS {q(lk.name)}")
            continue
        key = _key_sql(Columns("json", record="_rec").render(lk.key))
        parts = ", ".join(lit(s) for s in lk.sources)
        joins.append(
            f"LEFT JOIN (SELECT {key} AS _k, any_value(_rec) AS _v FROM {others} WHERE _part IN ({parts}) "
            f"GROUP BY 1) l{i} ON l{i}._k = {_key_sql(row_scope.render(lk.on))}"
        )
        picks.append(f"l{i}._v AS {q(lk.name)}")
    return f"(SELECT r.*, {', '.join(picks)} FROM {ROWS} r {' '.join(joins)})"


def union_plans(plans: list[_Plan]) -> _Plan:
    """One plan reading the rows of several (same target source, several kinds of one file)."""
    if len(plans) == 1:
        return plans[0]
    allnames = list(dict.fromkeys(n for p in plans for n in p.names))
    parts = []
    for p in plans:
        exprs = [f"{p.raw[p.names.index(n)]} AS u{i}" if n in p.names else f"NULL::VARCHAR AS u{i}"
                 for i, n in enumerate(allnames)]
        parts.append(f"SELECT {', '.join(exprs)}, _row, _bad, ({p.record_sql}) AS _record, _rule FROM {p.from_sql}")
    labels = {}
    for p in plans:
        labels.update(p.labels)
    return _Plan(
        names=allnames, raw=[f"u{i}" for i in range(len(allnames))], from_sql="(" + " UNION ALL ".join(parts) + ")",
        record_sql="_record", row_sql="_row", pre_reason=plans[0].pre_reason, pre_good=plans[0].pre_good,
        labels=labels, fmt="+".join(dict.fromkeys(p.fmt for p in plans)),
        # the kinds of one file stage the same rows: any kind's record of a row is the row
        record_rows=next((p.record_rows for p in plans if p.record_rows), None),
    )


# --------------------------------------------------------------------------------------
# Files and folders


def import_folders(landing: Path) -> list[Path]:
    """Landing folders read through mappings: the platform folders and any with a `_mapping*.yaml`."""
    if not landing.is_dir():
        return []
    out = []
    for d in sorted(p for p in landing.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name in PLATFORMS or (d.name not in SOURCE_NAMES and any(d.glob(USER_MAPPING_GLOB))):
            out.append(d)
    return out


def platform_files(folder: Path) -> list[Path]:
    """Data files of a platform folder, by path (mapping files, dotfiles and partial uploads left out)."""
    files = []
    for p in folder.rglob("*"):
        if not p.is_file() or is_in_flight(p, folder) or p.name.startswith("_"):
            continue
        if p.suffix.lower() in (".yaml", ".yml", ".md", ".py"):  # mappings, notes and hooks
            continue
        files.append(p)
    return sorted(files)


def read_file(con: duckdb.DuckDBPyConnection, path: Path, mappings: list[Mapping], platform: str) -> Staged:
    """Recognise and stage one platform file. Raises FileRejected."""
    ensure_stage(con)
    kind = file_kind(path)
    if kind is None:
        raise FileRejected(
            "unsupported_format",
            f"{path.name}: unsupported file type in {platform}/; use .csv, .csv.gz, .json, .jsonl, .ndjson or .txt",
        )
    if path.stat().st_size == 0:
        raise FileRejected("empty_file", f"{path.name}: the file is empty (0 bytes)")
    if kind == "csv":
        mapping, header = detect_csv(path, mappings, platform)
        staged = stage_csv(con, path, header, mapping)
    else:
        staged = stage_json(con, path, mappings, platform)
    for mapping, _ in staged.kinds:
        if mapping.hook is not None:
            columns = {h: staged.columns.csv_columns[h.strip().lower()] for h in staged.header
                       if h.strip().lower() in staged.columns.csv_columns}
            run_hook(con, mapping, path, columns)
    return staged


def run_hook(con: duckdb.DuckDBPyConnection, mapping: Mapping, path: Path, columns: dict[str, str]) -> None:
    """Call a mapping's Python hook, `prepare(con, table, path, columns)`, on the staged rows.

    `table` is the staged table (one row per platform record: `_row`, `_bad`, and the CSV's
    columns, named in `columns` (platform column -> table column; the ones the mapping reads),
    or the JSON record `_rec`); the hook may add columns or rows.
    What a plain column expression cannot do (reshape a JSON:API document, parse a format
    DuckDB has no function for) goes there; the mapping then reads the added columns by name
    in its SQL. A hook that fails rejects the file, naming the hook and the error.
    """
    module = types.ModuleType(f"retain_hook_{mapping.platform}_{mapping.kind}")
    module.__file__ = str(mapping.hook)
    try:
        # compiled here rather than imported: an import would write `__pycache__` into the landing folder
        source = Path(mapping.hook).read_bytes()
        exec(compile(source, str(mapping.hook), "exec"), module.__dict__)  # noqa: S102 - the user's own hook
        module.prepare(con, ROWS, path, columns)
    except FileRejected:
        raise
    except Exception as exc:  # a hook is user code: whatever it raises rejects the file, with what it said
        raise FileRejected(
            "hook_failed",
            f"{path.name}: the {mapping.name} hook {mapping.hook.name} failed: {type(exc).__name__}: {exc}",
        ) from exc


def target_plans(staged: Staged) -> dict[str, _Plan]:
    """Contract source -> plan, over every kind the file holds."""
    by_source: dict[str, list[_Plan]] = {}
    # unreadable lines are quarantined once: in the first kind (of several Airbyte streams) with a target
    first = next((m for m, _ in staged.kinds if m.targets), None)
    for mapping, record_filter in staged.kinds:
        for t in mapping.targets:
            plan = plan_for(mapping, t, staged.columns, record_filter, staged.header,
                            takes_bad_rows=mapping is first)
            by_source.setdefault(t.source, []).append(plan)
    return {s: union_plans(ps) for s, ps in by_source.items()}


def _ledger_sources(con: duckdb.DuckDBPyConnection, rel: str, stat: FileStat) -> dict[str, str | None]:
    return dict(con.execute(
        "SELECT source, any_value(format) FROM raw._loads WHERE file_path = ? AND file_size = ? AND file_mtime = ? "
        "GROUP BY source",
        [rel, stat.size, stat.mtime],
    ).fetchall())


def ingest_platform_file(
    con: duckdb.DuckDBPyConnection, folder: Path, path: Path, landing: Path, sources: list[str],
    reload: bool = False, mappings: list[Mapping] | None = None,
) -> list[FileResult]:
    """Load one platform file into every requested contract source its kind feeds."""
    t0 = time.perf_counter()
    platform = folder.name
    rel = path.relative_to(landing).as_posix()
    stat = FileStat.of(path)
    mappings = mappings if mappings is not None else mappings_for(folder)
    if not reload:
        seen = _ledger_sources(con, rel, stat)
        if platform in seen:  # rejected as a whole before, unchanged since
            return [FileResult(platform, rel, "unchanged", size=stat.size)]
        kinds = {k for fmt in seen.values() if fmt for k in fmt.split("+")}
        expected = {t.source for m in mappings if m.name in kinds for t in m.targets} & set(sources)
        if kinds and expected and expected <= set(seen):
            return [FileResult(s, rel, "unchanged", size=stat.size) for s in sorted(expected)]
    started = datetime.now(UTC).replace(tzinfo=None)
    # hashed once, in a thread while the file is read, for every target's ledger row
    pool = ThreadPoolExecutor(max_workers=1)
    hashing = pool.submit(sha256_of, path)
    try:
        staged = read_file(con, path, mappings, platform)
    except FileRejected as exc:
        sha = hashing.result()
        pool.shutdown()
        if not reload and con.execute(
            "SELECT 1 FROM raw._loads WHERE source = ? AND file_path = ? AND sha256 = ? LIMIT 1", [platform, rel, sha]
        ).fetchone():
            return [FileResult(platform, rel, "unchanged", sha256=sha, size=stat.size)]
        load_id = _record(con, SimpleNamespace(name=platform), rel, stat, sha, file_kind(path), "rejected", started,
                          exc.message, code=exc.code)
        return [FileResult(platform, rel, "rejected", load_id=load_id, reason_code=exc.code, message=exc.message,
                           sha256=sha, size=stat.size, seconds=time.perf_counter() - t0)]
    results = []
    try:
        siblings = _stage_lookup_siblings(con, folder, path, staged)
        plans = target_plans(staged)
        if not plans:  # read only through other kinds' lookups
            users = sorted({m.title for m in mappings for lk in m.lookups for s in lk.sources
                            if s in staged.kinds[0][0].detect_streams})
            message = (f"{staged.rows} records, read with {', '.join(users) or 'other files'} of the same folder "
                       "(not a contract source of their own)")
            sha = hashing.result()
            load_id = _record(con, SimpleNamespace(name=platform), rel, stat, sha, staged.kinds[0][0].name, "loaded",
                              started, message)
            return [FileResult(platform, rel, "loaded", load_id=load_id, rows_read=staged.rows, message=message,
                               sha256=sha, size=stat.size, seconds=time.perf_counter() - t0)]
        for name in [s for s in SOURCE_NAMES if s in plans and s in sources]:
            result = ingest_file(con, source(name), path, landing, reload=reload, plan=plans[name], sha256=hashing)
            if staged.ignored and result.status == "loaded":
                result.message = "ignored Airbyte streams without an importer: " + ", ".join(
                    f"{s} ({n} records)" for s, n in staged.ignored.items())
            if siblings and result.status == "loaded":
                used = "; ".join(f"{n} from {', '.join(fs)}" for n, fs in siblings.items())
                result.message = "; ".join(filter(None, [result.message, "looked up " + used]))
            results.append(result)
    finally:
        ensure_stage(con)
        pool.shutdown()
    return results


def _stage_lookup_siblings(
    con: duckdb.DuckDBPyConnection, folder: Path, path: Path, staged: Staged
) -> dict[str, list[str]]:
    """Stage the lookup records the file does not hold itself from the folder's other files."""
    wanted = list(dict.fromkeys(s for m, _ in staged.kinds for lk in m.lookups for s in lk.sources))
    if not wanted:
        return {}
    have = {n for (n,) in con.execute(
        f"SELECT DISTINCT _stream FROM {ROWS} WHERE _stream IS NOT NULL UNION SELECT DISTINCT _part FROM {SIDE}"
    ).fetchall()}
    missing = [n for n in wanted if n not in have]
    if not missing:
        return {}
    return stage_siblings(con, [p for p in platform_files(folder) if p != path], missing)


def _reject_all(
    con: duckdb.DuckDBPyConnection, folder: Path, path: Path, landing: Path, exc: MappingError
) -> FileResult:
    """A file whose folder's mapping file is invalid: rejected (once per content), naming the mapping error."""
    rel = path.relative_to(landing).as_posix()
    stat = FileStat.of(path)
    sha = sha256_of(path)
    if con.execute(
        "SELECT 1 FROM raw._loads WHERE source = ? AND file_path = ? AND sha256 = ? AND error = ? LIMIT 1",
        [folder.name, rel, sha, str(exc)],
    ).fetchone():
        return FileResult(folder.name, rel, "unchanged", sha256=sha, size=stat.size)
    started = datetime.now(UTC).replace(tzinfo=None)
    load_id = _record(con, SimpleNamespace(name=folder.name), rel, stat, sha, file_kind(path), "rejected", started,
                      str(exc), code="invalid_mapping")
    return FileResult(folder.name, rel, "rejected", load_id=load_id, reason_code="invalid_mapping", message=str(exc),
                      sha256=sha, size=stat.size)


def ingest_platforms(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    sources: list[str],
    reload: bool = False,
    progress: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Import every platform folder's files (see the module docstring) into `sources`."""
    results: list[FileResult] = []
    for folder in import_folders(landing):
        try:
            mappings = mappings_for(folder)
        except MappingError as exc:  # a broken _mapping.yaml: the folder's files wait for the fix
            for path in platform_files(folder):
                results.append(_reject_all(con, folder, path, landing, exc))
                if progress is not None:
                    progress(results[-1])
            continue
        for path in platform_files(folder):
            for result in ingest_platform_file(con, folder, path, landing, sources, reload=reload, mappings=mappings):
                results.append(result)
                if progress is not None:
                    progress(result)
    return results
