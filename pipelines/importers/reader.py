"""Read a platform file once into a staging table, and recognise which kind of file it is.

The staged table (`_pstage.rows`) has one row per platform record with its 1-based row
number `_row` (CSV: data row, header excluded; JSON Lines: line number; JSON document: the
record's position in its array), `_bad` (why the record could not be parsed, else NULL),
and then either the CSV's columns (as text, `c0`, `c1`, ...) or the JSON record (`_rec`)
with its Airbyte stream name (`_stream`, NULL outside an envelope).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.importers.mapping import Columns, Mapping
from pipelines.ingest.files import FileRejected, is_compressed, read_csv_header
from pipelines.ingest.loader import BIG_LINE_LIMIT, stage_lines  # the longest line read; the line reader
from pipelines.ingest.rules import lit

STAGE = "_pstage"
ROWS = f"{STAGE}.rows"
#: Records other records refer to (lookups): sideloaded page arrays and sibling files' records.
SIDE = f"{STAGE}.side"

#: Extensions a platform folder's data files may have (JSON exports come as .json or .txt too).
CSV_EXTS = (".csv", ".csv.gz")
JSON_EXTS = (".json", ".jsonl", ".ndjson", ".txt", ".json.gz", ".jsonl.gz", ".ndjson.gz")



def file_kind(path: Path) -> str | None:
    """csv, json or None (not a data file) from the name."""
    name = path.name.lower()
    if name.endswith(CSV_EXTS):
        return "csv"
    if name.endswith(JSON_EXTS):
        return "json"
    return None


def ensure_stage(con: duckdb.DuckDBPyConnection) -> None:
    """Attach the in-memory staging database (once per connection) and empty it."""
    if not con.execute("SELECT 1 FROM duckdb_databases() WHERE database_name = ?", [STAGE]).fetchone():
        con.execute(f"ATTACH ':memory:' AS {STAGE}")
    for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [STAGE]).fetchall():
        con.execute(f'DROP TABLE {STAGE}."{name}"')


@dataclass
class Staged:
    """What was read: the kinds found (mapping -> record filter SQL) and how columns resolve."""

    columns: Columns
    kinds: list[tuple[Mapping, str | None]] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)  # Airbyte streams without a mapping: records
    rows: int = 0
    header: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Detection


def _missing_columns(header: list[str], m: Mapping) -> list[str]:
    have = {h.strip().lower() for h in header}
    return [c for c in m.detect_columns if not any(a.strip().lower() in have for a in c.split("|"))]


def detect_csv(path: Path, mappings: list[Mapping], platform: str) -> tuple[Mapping, list[str]]:
    """The mapping whose header columns the CSV has (the most specific one), and the header."""
    header = read_csv_header(path)
    csvs = [m for m in mappings if m.format == "csv"]
    fits = [m for m in csvs if not _missing_columns(header, m)]
    if fits:
        return max(fits, key=lambda m: len(m.detect_columns)), header
    raise FileRejected("not_a_platform_export", _not_recognised(path, header, csvs, platform, "columns"))


def _not_recognised(path: Path, found: list[str], candidates: list[Mapping], platform: str, what: str) -> str:
    shown = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "")
    if not candidates:
        return (f"{path.name}: retain has no importer for {platform} files of this format yet "
                f"(found {what}: {shown or 'none'}); see docs/importing.md")
    lines = []
    for m in candidates:
        if what == "columns":
            missing = _missing_columns(found, m)
        else:
            have = set(found)
            missing = [k for k in m.detect_keys if k not in have]
            if m.detect_streams:
                missing.append("or an Airbyte stream named " + "/".join(m.detect_streams))
        lines.append(f"{m.title} needs {what} {', '.join(missing)}")
    return (f"{path.name} is not a {platform} export retain knows: " + "; ".join(lines)
            + f" (found {what}: {shown or 'none'})")


# --------------------------------------------------------------------------------------
# CSV


def stage_csv(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], mapping: Mapping) -> Staged:
    """Read the CSV (fixed RFC 4180 dialect, every column text) into the staging table."""
    from pipelines.ingest.loader import _csv_rejects

    names = [h.strip() or f"column{i + 1}" for i, h in enumerate(header)]
    lower: dict[str, str] = {}
    for i, n in enumerate(names):
        lower.setdefault(n.lower(), f"c{i}")
    cols = Columns("csv", csv_columns=lower)
    wanted = sorted({lower[a.strip().lower()] for ref in mapping.placeholders() for a in ref.split("|")
                     if a.strip().lower() in lower}, key=lambda c: int(c[1:]))
    spec = ", ".join(f"{lit(f'c{i}')}: 'VARCHAR'" for i in range(len(names)))
    reader = (
        f"read_csv({lit(str(path))}, header = true, auto_detect = false, columns = {{{spec}}}, "
        "delim = ',', quote = '\"', escape = '\"', store_rejects = true, "
        "rejects_table = '_csv_rejects', rejects_scan = '_csv_scans')"
    )
    select = ", ".join(wanted) if wanted else "NULL::VARCHAR AS c0"
    numbered = f"(SELECT {select}, row_number() OVER () AS _row FROM {reader})"
    # One pass: parse and number the rows in file order (a plain scan keeps it, as the
    # loader's CSV numbering relies on too).
    sql = f"SELECT *, NULL::BIGINT AS _first_row, NULL::VARCHAR AS _bad FROM {numbered}"
    if mapping.fill_down:
        # fill_down: order-level columns are on a group's first row only; every row gets the
        # group's value (max: the others are empty) and `_first_row`, the group's first row
        # number (`_row - _first_row + 1` is a row's position in its group). One narrow
        # aggregate per group (key, first row, the filled columns) joined back to the rows:
        # a window partitioned by the group would carry every staged column through its
        # partitions, several times the cost. The staged table's order does not matter:
        # every row carries its number.
        by = cols.ref(mapping.fill_down[0])
        filled = sorted({cols.ref(c) for c in mapping.fill_down[1]} - {"NULL::VARCHAR"}, key=lambda c: int(c[1:]))
        if by != "NULL::VARCHAR":
            aggs = "".join(f", max(NULLIF({c}, '')) AS _f{c}" for c in filled)
            replace = " REPLACE (" + ", ".join(f"g._f{c} AS {c}" for c in filled) + ")" if filled else ""
            sql = (f"WITH r AS MATERIALIZED {numbered}, g AS (SELECT {by} AS _key, min(_row) AS _first_row{aggs} "
                   f"FROM r GROUP BY {by}) "
                   f"SELECT r.*{replace}, g._first_row, NULL::VARCHAR AS _bad "
                   f"FROM r JOIN g ON r.{by} IS NOT DISTINCT FROM g._key")
    try:
        con.execute(f"CREATE TABLE {ROWS} AS {sql}")
    except duckdb.Error as exc:
        from pipelines.ingest.loader import _duck_error

        raise _duck_error(exc, path.name) from exc
    count = con.execute(f"SELECT count(*) FROM {ROWS}").fetchone()[0]
    bad = _csv_rejects(con, path, path.stat().st_size, count)
    con.execute("DROP TABLE IF EXISTS _csv_rejects")
    con.execute("DROP TABLE IF EXISTS _csv_scans")
    if bad:
        # Row numbers: the n-th parsed row takes the n-th data row number no rejected line
        # holds (monotonic, so a group's first row stays its first row).
        con.execute(f"CREATE TABLE {STAGE}._badrows (n BIGINT, msg VARCHAR, line VARCHAR)")
        con.executemany(f"INSERT INTO {STAGE}._badrows VALUES (?, ?, ?)", [(r, m, ln) for r, _c, m, ln in bad])
        con.execute(
            f"CREATE TABLE {STAGE}._numbers AS SELECT row_number() OVER (ORDER BY n) AS pos, n "
            f"FROM range(1, {count + 2 * len(bad) + 1}) t(n) WHERE n NOT IN (SELECT n FROM {STAGE}._badrows)"
        )
        for col in ("_row", "_first_row"):
            con.execute(f"UPDATE {ROWS} SET {col} = m.n FROM {STAGE}._numbers m WHERE {ROWS}.{col} = m.pos")
    if bad:
        con.execute(
            f"INSERT INTO {ROWS} (_row, _bad) SELECT n, 'line ' || (n + 1) || ' ' || "
            f"regexp_replace(msg, '^line [0-9]+ ', '') FROM {STAGE}._badrows"
        )
        con.execute(f"DROP TABLE {STAGE}._badrows")
    total = con.execute(f"SELECT count(*) FROM {ROWS}").fetchone()[0]
    cols_by_name = {names[int(c[1:])]: c for c in wanted}
    staged = Staged(cols, [(mapping, None)], rows=total, header=names)
    staged.columns.csv_columns = {k: v for k, v in lower.items() if v in cols_by_name.values()}
    return staged


# --------------------------------------------------------------------------------------
# JSON


def _read_start(path: Path, limit: int = 1 << 16) -> bytes:
    opener = gzip.open if is_compressed(path) else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(limit)
    except (OSError, EOFError) as exc:
        raise FileRejected("truncated_gzip", f"{path.name}: not a readable gzip file ({exc})") from exc


def _first_line(path: Path) -> tuple[bytes, bytes]:
    """The first line of a file (up to the longest line read) and the start of what follows it."""
    opener = gzip.open if is_compressed(path) else open
    with opener(path, "rb") as fh:
        line = fh.readline(BIG_LINE_LIMIT)
        return line.lstrip(b"\xef\xbb\xbf").strip(), fh.read(1 << 16).strip()


def _is_document(path: Path) -> bool:
    """True if the file is one JSON value (an API page), False for JSON Lines."""
    start = _read_start(path).lstrip(b"\xef\xbb\xbf").lstrip()
    if not start:
        raise FileRejected("empty_file", f"{path.name}: the file is empty")
    if start[:1] == b"[":
        return True
    first = start.split(b"\n", 1)[0]
    rest = start[len(first):].strip()
    if first == start and len(start) >= 1 << 16:  # a first line longer than the start read (a page per line)
        first, rest = _first_line(path)
    try:
        json.loads(first)
    except ValueError:
        return start[:1] == b"{"  # a pretty-printed document spans lines
    if not rest:  # one line holding one object: a document (an API page), unless an Airbyte record
        try:
            obj = json.loads(first)
        except ValueError:
            return True
        airbyte = isinstance(obj, dict) and (
            ("stream" in obj and isinstance(obj.get("data"), dict)) or obj.get("type") == "RECORD")
        return not airbyte
    return False


def stage_json(con: duckdb.DuckDBPyConnection, path: Path, mappings: list[Mapping], platform: str) -> Staged:
    """Read JSON (a document with a record array, or JSON Lines, Airbyte envelopes included)."""
    jsons = [m for m in mappings if m.format == "json"]
    con.execute(f"CREATE TABLE IF NOT EXISTS {SIDE} (_part VARCHAR, _rec JSON)")
    by_records = None
    if _is_document(path):
        by_records = _stage_document(con, path, jsons)
    else:
        _stage_lines(con, path)
        _expand_pages(con, jsons)
    cols = Columns("json")
    total, good = con.execute(f"SELECT count(*), count(*) FILTER (WHERE _bad IS NULL) FROM {ROWS}").fetchone()
    if total == 0 and by_records is not None:  # an empty page ({"orders": []}): nothing new, not an error
        return Staged(cols, [(by_records, None)], rows=0)
    if total == 0:
        raise FileRejected("empty_file", f"{path.name}: the file has no JSON records")
    if good == 0:
        first = con.execute(f"SELECT _bad FROM {ROWS} ORDER BY _row LIMIT 1").fetchone()[0]
        raise FileRejected("unreadable", f"{path.name}: no record is a JSON object ({first})")
    staged = Staged(cols, rows=total)
    streams = con.execute(
        f"SELECT _stream, count(*) FROM {ROWS} WHERE _stream IS NOT NULL GROUP BY 1 ORDER BY min(_row)"
    ).fetchall()
    if streams:
        for stream, n in streams:
            m = next((m for m in jsons if stream.lower() in {s.lower() for s in m.detect_streams}), None)
            if m is None:
                staged.ignored[stream] = n
            else:
                staged.kinds.append((m, f"_stream = {lit(stream)}"))
        if not staged.kinds:
            raise FileRejected(
                "not_a_platform_export",
                f"{path.name}: Airbyte records of streams {', '.join(s for s, _ in streams)}, none of which retain "
                f"imports for {platform}"
                + (f" (it reads {', '.join(s for m in jsons for s in m.detect_streams)})" if jsons else ""),
            )
        return staged
    # the keys of the first 20 records, in the order the file has them (messages name them in
    # that order; DISTINCT in SQL would give any order)
    keys = list(dict.fromkeys(k for (rec_keys,) in con.execute(
        f"SELECT json_keys(_rec) FROM {ROWS} WHERE _bad IS NULL ORDER BY _row LIMIT 20"
    ).fetchall() for k in rec_keys))
    # a dotted key (`relationships.metric`) is a path the first records have
    for m in jsons:
        for k in m.detect_keys:
            if "." in k and k not in keys and con.execute(
                f"SELECT bool_or(json_exists(_rec, {lit('$.' + k)})) FROM (SELECT _rec FROM {ROWS} "
                "WHERE _bad IS NULL ORDER BY _row LIMIT 20)"
            ).fetchone()[0]:
                keys.append(k)
    fits = [m for m in jsons if m.detect_keys and all(k in keys for k in m.detect_keys)]
    if not fits:
        raise FileRejected("not_a_platform_export", _not_recognised(path, keys, jsons, platform, "keys"))
    staged.kinds.append((max(fits, key=lambda m: len(m.detect_keys)), None))
    return staged


def _stage_document(con: duckdb.DuckDBPyConnection, path: Path, jsons: list[Mapping]) -> Mapping | None:
    """Stage a JSON document's records; returns the mapping whose `records` path it has, if any."""
    if is_compressed(path):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            text = fh.read()
        con.execute(f"CREATE TABLE {STAGE}._doc AS SELECT ?::VARCHAR AS content", [text])
    else:
        try:
            con.execute(f"CREATE TABLE {STAGE}._doc AS SELECT content FROM read_text({lit(str(path))})")
        except duckdb.Error as exc:
            raise FileRejected("invalid_encoding", f"{path.name}: cannot be read as UTF-8 text ({exc})") from exc
    valid, kind = con.execute(
        f"SELECT json_valid(content), CASE WHEN json_valid(content) THEN json_type(content) END FROM {STAGE}._doc"
    ).fetchone()
    if not valid:
        raise FileRejected("unreadable", f"{path.name}: not valid JSON (neither one document nor JSON Lines)")
    array = "'$'" if kind == "ARRAY" else None
    by_records = None
    if kind == "OBJECT":
        for name in _side_names(jsons):
            n = lit("$." + name)
            con.execute(f"INSERT INTO {SIDE} SELECT {lit(name)}, unnest(json_extract(content, {n})::JSON[]) "
                        f"FROM {STAGE}._doc WHERE json_type(content, {n}) = 'ARRAY'")
        for m in jsons:
            if m.records and con.execute(
                f"SELECT json_type(content, {lit('$.' + m.records)}) = 'ARRAY' FROM {STAGE}._doc"
            ).fetchone()[0]:
                array, by_records = lit("$." + m.records), m
                break
    if array is None:  # one object: one record
        con.execute(f"CREATE TABLE {ROWS} AS SELECT 1::BIGINT AS _row, content::JSON AS _rec, "
                    f"NULL::VARCHAR AS _stream, NULL::VARCHAR AS _bad FROM {STAGE}._doc")
    else:
        con.execute(
            f"""CREATE TABLE {ROWS} AS
            SELECT _row, _rec, NULL::VARCHAR AS _stream,
                   CASE WHEN json_type(_rec) <> 'OBJECT' THEN 'record ' || _row || ' is not a JSON object' END AS _bad
            FROM (SELECT unnest(a) AS _rec, unnest(range(1, len(a) + 1)) AS _row
                  FROM (SELECT json_extract(content, {array})::JSON[] AS a FROM {STAGE}._doc))"""
        )
    con.execute(f"DROP TABLE {STAGE}._doc")
    return by_records


def _side_names(mappings: list[Mapping]) -> list[str]:
    """Names of the arrays / streams the mappings' lookups read."""
    return list(dict.fromkeys(s for m in mappings for lk in m.lookups for s in lk.sources))


def _expand_pages(con: duckdb.DuckDBPyConnection, jsons: list[Mapping]) -> None:
    """JSON Lines holding one API page per line (`{"tickets": [...]}`): one staged row per record.

    Records are numbered through the file; a line that is not JSON stays one row (quarantined).
    Sideloaded arrays of the pages (lookups) go to the side table.
    """
    page = "_bad IS NULL AND _stream IS NULL AND json_type(_rec, {p}) = 'ARRAY'"
    for m in jsons:
        if not m.records:
            continue
        p = lit("$." + m.records)
        if not con.execute(f"SELECT bool_or({page.format(p=p)}) FROM {ROWS}").fetchone()[0]:
            continue
        for name in _side_names(jsons):
            n = lit("$." + name)
            con.execute(f"INSERT INTO {SIDE} SELECT {lit(name)}, unnest(json_extract(_rec, {n})::JSON[]) "
                        f"FROM {ROWS} WHERE {page.format(p=n)}")
        con.execute(f"ALTER TABLE {ROWS} RENAME TO _lines")
        con.execute(
            f"""CREATE TABLE {ROWS} AS
            WITH recs AS (
                SELECT _row AS _line, 1 AS _i, _rec, _stream, _bad FROM {STAGE}._lines
                WHERE NOT coalesce({page.format(p=p)}, FALSE)
                UNION ALL
                SELECT _line, generate_subscripts(a, 1), unnest(a), NULL, NULL
                FROM (SELECT _row AS _line, json_extract(_rec, {p})::JSON[] AS a FROM {STAGE}._lines
                      WHERE {page.format(p=p)})
            )
            SELECT row_number() OVER (ORDER BY _line, _i) AS _row, _rec, _stream,
                   CASE WHEN _bad IS NULL AND json_type(_rec) <> 'OBJECT'
                        THEN 'line ' || _line || ': record ' || _i || ' is not a JSON object' ELSE _bad END AS _bad
            FROM recs"""
        )
        con.execute(f"DROP TABLE {STAGE}._lines")
        return


def stage_siblings(con: duckdb.DuckDBPyConnection, files: list[Path], names: list[str]) -> dict[str, list[str]]:
    """Stage the records of streams / page arrays `names` found in other files of the folder.

    For lookups a file cannot satisfy itself (Zendesk tickets pages in one file, their ticket
    metrics in another). A file is read when its start mentions one of the names, or when it
    is named after one (`people.json`); its records of that name (Airbyte envelopes of that
    stream, pages' arrays of that key, or, in a file named after it, its plain records) go
    to the side table. Returns name -> the files that gave records.
    """
    con.execute(f"CREATE TABLE IF NOT EXISTS {SIDE} (_part VARCHAR, _rec JSON)")
    used: dict[str, list[str]] = {}
    for f in files:
        if file_kind(f) != "json":
            continue
        try:
            start = _read_start(f)
            # a file named after the records (`people.json`: a bare list of people) is read whole
            named = [n for n in names if f.name.split(".")[0] == n]
            wanted = [n for n in names if f'"{n}"'.encode() in start or n in named]
            if not wanted:
                continue
            if _is_document(f):
                reader = f"SELECT content AS line FROM read_text({lit(str(f))})"
            else:  # JSON Lines, read by DuckDB (gzip included) without holding the file in Python
                reader = (f"SELECT line FROM read_csv({lit(str(f))}, columns = {{'line': 'VARCHAR'}}, header = false, "
                          f"auto_detect = false, delim = '\x01', quote = '', escape = '', "
                          f"max_line_size = {BIG_LINE_LIMIT})")
            con.execute(f"CREATE OR REPLACE TABLE {STAGE}._sib AS {reader}")
        except (OSError, EOFError, FileRejected, duckdb.Error):
            continue
        for n in wanted:
            before = con.execute(f"SELECT count(*) FROM {SIDE}").fetchone()[0]
            k = lit("$." + n)
            con.execute(
                f"""INSERT INTO {SIDE}
                SELECT {lit(n)}, unnest(json_extract(j, {k})::JSON[]) FROM
                    (SELECT line::JSON AS j FROM {STAGE}._sib WHERE json_valid(line)) WHERE json_type(j, {k}) = 'ARRAY'
                UNION ALL
                SELECT {lit(n)}, json_extract(j, '$.data') FROM
                    (SELECT line::JSON AS j FROM {STAGE}._sib WHERE json_valid(line))
                WHERE j->>'$.stream' = {lit(n)} AND json_type(j, '$.data') = 'OBJECT'"""
                + ("" if n not in named else f"""
                UNION ALL
                SELECT {lit(n)}, r FROM (SELECT unnest(CASE WHEN json_type(j) = 'ARRAY' THEN j::JSON[]
                                                       ELSE [j] END) AS r
                                      FROM (SELECT line::JSON AS j FROM {STAGE}._sib WHERE json_valid(line)))
                WHERE json_type(r) = 'OBJECT' AND r->>'$.stream' IS NULL AND json_type(r, {k}) IS NULL""")
            )
            if con.execute(f"SELECT count(*) FROM {SIDE}").fetchone()[0] > before:
                used.setdefault(n, []).append(f.name)
        con.execute(f"DROP TABLE {STAGE}._sib")
    return used


def _stage_lines(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    base = stage_lines(con, path, f"{STAGE}._text")
    obj = "(json_valid(line) AND json_type(line) = 'OBJECT')"
    # Airbyte's local JSON output: {"stream", "data", "emitted_at"}; its protocol messages:
    # {"type": "RECORD", "record": {"stream", "data", ...}} (other message types are skipped).
    con.execute(
        f"""CREATE TABLE {ROWS} AS
        WITH l AS (
            SELECT rowid - {base} + 1 AS _row, line, CASE WHEN json_valid(line) THEN {obj} ELSE FALSE END AS ok
            FROM {STAGE}._text
        ),
        j AS (
            -- json functions only ever see valid JSON (NULL otherwise): AND does not short-circuit
            SELECT *, CASE WHEN ok THEN line END::JSON AS j
            FROM l WHERE line IS NOT NULL AND trim(line, ' \t\r') <> ''
        ),
        e AS (
            SELECT *,
                CASE WHEN json_exists(j, '$.record.stream') AND json_exists(j, '$.record.data') THEN 'protocol'
                     WHEN json_exists(j, '$.stream') AND json_type(j, '$.data') = 'OBJECT' THEN 'envelope' END
                    AS env
            FROM j
        )
        SELECT _row,
               CASE env WHEN 'protocol' THEN json_extract(j, '$.record.data')
                        WHEN 'envelope' THEN json_extract(j, '$.data') ELSE j END AS _rec,
               CASE env WHEN 'protocol' THEN j->>'$.record.stream' WHEN 'envelope' THEN j->>'$.stream' END
                   AS _stream,
               CASE WHEN NOT ok THEN 'line ' || _row || ' is not a JSON object: ''' || left(line, 60) ||
                    CASE WHEN length(line) > 60 THEN '…' ELSE '' END || '''' END AS _bad
        FROM e
        WHERE NOT (ok AND env IS NULL AND coalesce(j->>'$.type', '') IN
                   ('STATE', 'LOG', 'TRACE', 'SPEC', 'CATALOG', 'CONNECTION_STATUS', 'CONTROL'))"""
    )
    con.execute(f"DROP TABLE {STAGE}._text")
