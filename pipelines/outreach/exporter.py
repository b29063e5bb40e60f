"""Write a play's list in a tool's format: files, manifest, diffs, atomically.

Layout, per play and format, under the output folder (default `RETAIN_EXPORTS`)::

    <out>/<play>/<format>/
        LATEST                      run id of the newest complete export (a text file)
        <run_id>/
            <play>-<format>.csv     the rows (or -part001.csv, -part002.csv … when split)
            diff/added.csv          customers new since the previous export
            diff/changed.csv        customers whose row changed (new values)
            diff/removed.csv        customers no longer in the list (their previous row)
            manifest.json           run, play, format, row counts, sha256 per file, columns,
                                    generated_at, source freshness, diff counts
            .snapshot.arrow         rows keyed by customer_id, for the next diff (internal:
                                    not for upload)

An export is written into a hidden temporary folder next to its final place and renamed when
complete, then `LATEST` is replaced (write + rename). A failure midway removes the temporary
folder: the previous export and `LATEST` stay as they were.

"Previous export" is the one `LATEST` points at; re-exporting the same run replaces its folder
and diffs against the export before it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

from pipelines.core.warehouse import scratch
from pipelines.outreach.formats import (
    EXPORT_SOURCE_SQL,
    FORMATS,
    STILL_CONTACTABLE_SQL,
    ExportFormat,
    get_format,
    prepared_columns_sql,
    rows_sql,
)
from pipelines.outreach.lists import latest_run_id
from pipelines.outreach.normalize import install_macros

log = logging.getLogger("retain.outreach")

MANIFEST = "manifest.json"
#: The rows of an export for the next diff: Arrow IPC (LZ4), read in milliseconds. Exports
#: written before it existed have `.snapshot.parquet`, still read.
SNAPSHOT = ".snapshot.arrow"
LEGACY_SNAPSHOT = ".snapshot.parquet"
LATEST = "LATEST"
DIFF_DIR = "diff"
DIFF_KINDS = ("added", "changed", "removed")
#: Export folders kept per play and format: a week of daily runs (they hold personal data).
DEFAULT_KEEP = 7
_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_INTERNAL = ("__key", "__rank", "__row")


class ExportError(ValueError):
    """An export cannot be made as asked (unknown run or play, format not for this channel)."""


@dataclass
class ExportResult:
    """One play × format export: where it went and what changed since the previous one."""

    play: str
    format: str
    run_id: str
    path: Path | None = None
    files: tuple[str, ...] = ()
    rows: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    dropped: int = 0
    previous_run_id: str | None = None
    skipped: str | None = None

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        d = dict(self.__dict__)
        d["path"] = str(self.path) if self.path else None
        d["files"] = list(self.files)
        return d


# --------------------------------------------------------------------------- runs and plays


def run_info(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> dict:
    """The `exports.runs` row of `run_id` (default: the latest run) as a dict."""
    run_id = run_id or latest_run_id(con)
    if run_id is None:
        raise ExportError("there are no outreach lists yet: build them first (retain run)")
    try:
        rel = con.sql("SELECT * FROM exports.runs WHERE run_id = $r", params={"r": run_id})
        cols, rows = rel.columns, rel.fetchall()
    except duckdb.CatalogException as exc:
        raise ExportError("there are no outreach lists yet: build them first (retain run)") from exc
    if not rows:
        raise ExportError(f"no outreach run {run_id!r} in exports.runs")
    info = dict(zip(cols, rows[0], strict=True))
    info["plays"] = json.loads(info.get("plays_json") or "[]")
    return info


def plays_for_run(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> list[dict]:
    """The plays of a run (as the playbook defined them then), in priority order."""
    return run_info(con, run_id)["plays"]


def supports(fmt: str | ExportFormat, channel: str) -> bool:
    """Whether a format may carry a play of `channel` (support_queue plays go to csv only)."""
    f = get_format(fmt) if isinstance(fmt, str) else fmt
    return channel in f.channels


def _play_meta(run: dict, play: str) -> dict:
    for p in run["plays"]:
        if p["name"] == play:
            return p
    names = ", ".join(p["name"] for p in run["plays"])
    raise ExportError(f"run {run['run_id']} has no play {play!r}; plays: {names}")


def _check_supported(fmt: ExportFormat, meta: dict) -> None:
    if not supports(fmt, meta["channel"]):
        why = (
            "it is a service contact for the support queue, never sent to marketing tools"
            if meta["channel"] == "support_queue" else f"{fmt.name} does not carry {meta['channel']} contacts"
        )
        raise ExportError(
            f"play {meta['name']!r} cannot be exported as {fmt.name}: {why}; "
            f"formats for it: {', '.join(f for f in FORMATS if supports(f, meta['channel']))}"
        )


# --------------------------------------------------------------------------- rendering


SOURCE_TABLE = "_retain_export_source"


def prepare_source(
    con: duckdb.DuckDBPyConnection, run_id: str, play: str | None = None, formats: Iterable[str] = FORMATS
) -> None:
    """Temp table `_retain_export_source`: a run's list (one play, or all) with normalised contacts.

    Computed once per `export()` call and shared by every format: each address is validated
    and normalised once, and every distinct column value of `formats` (hashes, CSV-safe
    names, …) is computed once, in one parallel pass (see `prepared_columns_sql`). Rows of
    customers who can no longer be contacted are left out here (see `STILL_CONTACTABLE_SQL`).
    """
    install_macros(con)
    values = prepared_columns_sql(get_format(f) for f in formats)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SOURCE_TABLE} AS "
        f"SELECT *{', ' + values if values else ''} FROM ({EXPORT_SOURCE_SQL}) WHERE {STILL_CONTACTABLE_SQL} "
        "ORDER BY play, rank, customer_id",
        {"run_id": run_id, "play": play},
    )


def _listed_counts(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    rows = con.execute(
        "SELECT play, count(*) FROM exports.outreach_lists WHERE run_id = ? GROUP BY play", [run_id]
    ).fetchall()
    return {p: int(n) for p, n in rows}


def export_table(
    con: duckdb.DuckDBPyConnection,
    play: str,
    fmt: str,
    run_id: str | None = None,
    prepared: bool = False,
    run: dict | None = None,
    listed: dict[str, int] | None = None,
) -> tuple[pa.Table, dict]:
    """The rows of one play in one format as an Arrow table (with internal `__key`, `__rank`).

    Returns the table and a dict with the run, play, format and the number of list rows left
    out because the customer can no longer be contacted. `prepared=True` reuses the source
    table `prepare_source` made for this run (with this format's values); `run` and `listed`
    (list rows per play) save a query each when many formats are exported.
    """
    f = get_format(fmt)
    run = run if run is not None else run_info(con, run_id)
    meta = _play_meta(run, play)
    _check_supported(f, meta)
    if not prepared:
        prepare_source(con, run["run_id"], play, [f.name])
    sql = f"WITH export_source AS (SELECT * FROM {SOURCE_TABLE} WHERE play = $play)" + rows_sql(f, prepared=True)
    table = con.sql(sql, params={"play": play}).to_arrow_table()
    listed = listed if listed is not None else _listed_counts(con, run["run_id"])
    dropped = int(listed.get(play, 0)) - table.num_rows
    if dropped:
        log.warning(
            "%s/%s run %s: %d listed customer(s) left out of the file: consent, address or erasure "
            "changed since the list was built", play, fmt, run["run_id"], dropped,
        )
    return table, {"run": run, "play": meta, "dropped": dropped, "format": f}


def _public(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in _INTERNAL if c in table.column_names])


def _csv_bytes(table: pa.Table, bom: bool = False) -> bytes:
    buf = io.BytesIO()
    if bom:
        # The UTF-8 byte order mark makes Excel read accented names correctly.
        buf.write(b"\xef\xbb\xbf")
    # Strings are always quoted ("needed" quotes every string in Arrow), numbers are not.
    pacsv.write_csv(_public(table), buf, pacsv.WriteOptions(quoting_style="needed"))
    return buf.getvalue()


def _chunks(table: pa.Table, max_rows: int | None) -> list[pa.Table]:
    if not max_rows or table.num_rows <= max_rows:
        return [table]
    return [table.slice(i, max_rows) for i in range(0, table.num_rows, max_rows)]


def _names(stem: str, n: int) -> list[str]:
    return [f"{stem}.csv"] if n == 1 else [f"{stem}-part{i:03d}.csv" for i in range(1, n + 1)]


def _render(table: pa.Table, stem: str, max_rows: int | None, bom: bool = False) -> dict[str, tuple[bytes, int]]:
    parts = _chunks(table, max_rows)
    return {
        name: (_csv_bytes(part, bom), part.num_rows)
        for name, part in zip(_names(stem, len(parts)), parts, strict=True)
    }


def render_export(
    con: duckdb.DuckDBPyConnection,
    play: str,
    fmt: str,
    run_id: str | None = None,
    max_rows: int | None = None,
) -> dict[str, bytes]:
    """The export files of one play in one format, in memory: `{file name: CSV bytes}`.

    What the dashboard's download buttons serve; `export()` writes the same bytes to disk.
    `max_rows` overrides the format's rows-per-file limit (files are split above it).
    """
    table, ctx = export_table(con, play, fmt, run_id)
    limit = max_rows or ctx["format"].max_rows_per_file
    rendered = _render(table, f"{play}-{fmt}", limit, ctx["format"].bom)
    return {name: data for name, (data, _) in rendered.items()}


# --------------------------------------------------------------------------- diffs


def diff_tables(previous: pa.Table | None, current: pa.Table) -> dict[str, pa.Table]:
    """`added`, `changed`, `removed` rows by `__key` between two exports of the same play and format.

    `changed` holds the new rows; `removed` the previous ones (so a tool can delete them by
    their identifiers). If the columns differ (the format changed), every kept key is `changed`.
    Rows from `export_table` carry `__row`, the MD5 of the values that count (the format's
    `diff_ignores` do not), and are compared by it; other tables are compared value by value.
    """
    empty = current.slice(0, 0)
    if previous is None:
        return {"added": current, "changed": empty, "removed": empty}
    if "__row" in current.column_names and previous.schema.equals(current.schema):
        # Same columns, and each row carries the MD5 of its values: three hash-set lookups.
        prev_keys, cur_keys = previous["__key"], current["__key"]
        added = pc.invert(pc.is_in(cur_keys, value_set=prev_keys))
        new_or_changed = pc.invert(pc.is_in(
            pc.binary_join_element_wise(cur_keys, current["__row"], "\x1f"),
            value_set=pc.binary_join_element_wise(prev_keys, previous["__row"], "\x1f"),
        ))
        return {
            "added": current.filter(added),
            "changed": current.filter(pc.and_(new_or_changed, pc.invert(added))),
            "removed": previous.filter(pc.invert(pc.is_in(prev_keys, value_set=cur_keys))),
        }
    db = scratch()
    try:
        db.register("cur", current)
        db.register("prev", previous)
        same = previous.column_names == current.column_names and previous.schema.equals(current.schema)
        cols = [c for c in current.column_names if c not in _INTERNAL]
        differs = " OR ".join(f'c."{c}" IS DISTINCT FROM p."{c}"' for c in cols) if same else "true"
        added = db.sql("SELECT * FROM cur c ANTI JOIN prev p USING (__key) ORDER BY c.__rank, c.__key")
        changed = db.sql(
            f"SELECT c.* FROM cur c JOIN prev p USING (__key) WHERE {differs or 'false'} ORDER BY c.__rank, c.__key"
        )
        removed = db.sql("SELECT * FROM prev p ANTI JOIN cur c USING (__key) ORDER BY p.__rank, p.__key")
        out = {
            "added": added.to_arrow_table(),
            "changed": changed.to_arrow_table(),
            "removed": removed.to_arrow_table(),
        }
    finally:
        db.close()
    if not same:
        out["removed"] = out["removed"].select(previous.column_names)
    return out


# --------------------------------------------------------------------------- writing


def _durable() -> bool:
    # fsync makes a renamed export survive a power cut; RETAIN_EXPORT_FSYNC=0 skips it where
    # that does not matter (throwaway test folders on a slow overlay filesystem).
    return os.environ.get("RETAIN_EXPORT_FSYNC", "1") != "0"


def _write_file(path: Path, data: bytes) -> str:
    """Write bytes durably and return their sha256 (the one place export bytes hit the disk)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        if _durable():
            os.fsync(fh.fileno())
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    if not _durable():
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_latest(base: Path) -> str | None:
    """The run id in `<base>/LATEST`, or None."""
    try:
        value = (base / LATEST).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return value if _RUN_ID_RE.fullmatch(value) else None


def _write_latest(base: Path, run_id: str) -> None:
    tmp = base / f".{LATEST}.{secrets.token_hex(4)}"
    _write_file(tmp, (run_id + "\n").encode())
    os.replace(tmp, base / LATEST)
    _fsync_dir(base)


def _clean_stale(base: Path, older_than_s: float = 3600) -> None:
    """Remove temporary folders left by a crashed export (an hour old: not a running one)."""
    now = time.time()
    for p in base.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p, ignore_errors=True)


def _prune(base: Path, keep: int, protect: set[str]) -> None:
    """Keep the newest `keep` export folders of a play and format (personal data should not pile up)."""
    folders = []
    for p in base.iterdir():
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists():
            folders.append((p.stat().st_mtime, p))
    folders.sort(reverse=True)
    for _, p in folders[keep:]:
        if p.name not in protect:
            shutil.rmtree(p, ignore_errors=True)


def _previous(base: Path, run_id: str) -> tuple[str | None, pa.Table | None]:
    prev_id = read_latest(base)
    if prev_id == run_id:
        # Re-exporting the same run: diff against the export it was diffed against.
        try:
            prev_id = json.loads((base / run_id / MANIFEST).read_text())["diff"]["previous_run_id"]
        except (OSError, KeyError, ValueError, TypeError):
            prev_id = None
    if not prev_id:
        return None, None
    snap = base / prev_id / SNAPSHOT
    if not snap.exists() and (base / prev_id / LEGACY_SNAPSHOT).exists():
        return prev_id, pq.read_table(base / prev_id / LEGACY_SNAPSHOT)
    if not snap.exists():
        log.warning("previous export %s has no snapshot: every row counts as added", base / prev_id)
        return prev_id, None
    return prev_id, feather.read_table(snap)


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def export_one(
    con: duckdb.DuckDBPyConnection,
    play: str,
    fmt: str,
    out_dir: Path | str,
    run_id: str | None = None,
    max_rows: int | None = None,
    keep: int | None = DEFAULT_KEEP,
    prepared: bool = False,
) -> ExportResult:
    """Export one play in one format to `<out_dir>/<play>/<fmt>/<run_id>/` (see the module doc)."""
    table, ctx = export_table(con, play, fmt, run_id, prepared=prepared)
    return _write_export(table, ctx, out_dir, max_rows, keep)


def _write_export(
    table: pa.Table, ctx: dict, out_dir: Path | str, max_rows: int | None, keep: int | None
) -> ExportResult:
    """Write one play × format export (files, diffs, snapshot, manifest, LATEST) from its rows.

    Touches only `<out_dir>/<play>/<format>/` and no DuckDB connection of the caller, so
    `export()` runs several in threads.
    """
    run, f = ctx["run"], ctx["format"]
    play, fmt = ctx["play"]["name"], f.name
    rid = run["run_id"]
    if not _RUN_ID_RE.fullmatch(rid):
        raise ExportError(f"run id {rid!r} cannot name a folder")
    limit = max_rows or f.max_rows_per_file
    stem = f"{play}-{fmt}"
    base = Path(out_dir) / play / fmt
    base.mkdir(parents=True, exist_ok=True)
    _clean_stale(base)
    prev_id, prev_table = _previous(base, rid)
    diffs = diff_tables(prev_table, table)

    tmp = base / f".tmp-{rid}-{secrets.token_hex(4)}"
    final = base / rid
    old: Path | None = None
    tmp.mkdir()
    try:
        files = []
        for name, (data, n) in _render(table, stem, limit, f.bom).items():
            files.append({"name": name, "rows": n, "bytes": len(data), "sha256": _write_file(tmp / name, data)})
        (tmp / DIFF_DIR).mkdir()
        diff_files = []
        for kind in DIFF_KINDS:
            for name, (data, n) in _render(diffs[kind], kind, limit, f.bom).items():
                diff_files.append({
                    "name": f"{DIFF_DIR}/{name}", "kind": kind, "rows": n, "bytes": len(data),
                    "sha256": _write_file(tmp / DIFF_DIR / name, data),
                })
        feather.write_feather(table, tmp / SNAPSHOT, compression="lz4")
        manifest = {
            "retain_export": 1,
            "run_id": rid,
            "play": play,
            "format": fmt,
            "format_title": f.title,
            "channel": ctx["play"]["channel"],
            "action": ctx["play"]["action"],
            "template": ctx["play"]["template"],
            "priority": ctx["play"]["priority"],
            # share of the play's list held out to measure its lift: those customers are not in this file
            "holdout_share": ctx["play"].get("holdout", 0.0),
            "generated_at": _iso(datetime.now(UTC).replace(tzinfo=None)),
            "rows": table.num_rows,
            "dropped_at_export": ctx["dropped"],
            "columns": f.headers,
            "hashed": f.hashed,
            "max_rows_per_file": limit,
            "files": files,
            "diff": {
                "previous_run_id": prev_id,
                "key": "customer_id",
                **{kind: diffs[kind].num_rows for kind in DIFF_KINDS},
                "files": diff_files,
            },
            "source": {
                "as_of_date": _iso(run.get("as_of_date")),
                "lists_created_at": _iso(run.get("created_at")),
                "scores_scored_at": _iso(run.get("scores_scored_at")),
                "model_version": run.get("model_version"),
                "latest_order_at": _iso(run.get("latest_order_at")),
                "latest_message_at": _iso(run.get("latest_message_at")),
                "latest_ticket_at": _iso(run.get("latest_ticket_at")),
                "playbook_sha256": run.get("playbook_sha256"),
            },
        }
        _write_file(tmp / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        _fsync_dir(tmp)
        if final.exists():
            old = base / f".old-{rid}-{secrets.token_hex(4)}"
            final.rename(old)
        tmp.rename(final)
        _fsync_dir(base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not final.exists():
            old.rename(final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _write_latest(base, rid)
    if keep:
        _prune(base, keep, protect={rid} | ({prev_id} if prev_id else set()))
    result = ExportResult(
        play=play, format=fmt, run_id=rid, path=final, files=tuple(x["name"] for x in files),
        rows=table.num_rows, added=diffs["added"].num_rows, changed=diffs["changed"].num_rows,
        removed=diffs["removed"].num_rows, dropped=ctx["dropped"], previous_run_id=prev_id,
    )
    log.info(
        "exported %s/%s run %s: %d rows in %d file(s), +%d ~%d -%d since %s",
        play, fmt, rid, result.rows, len(files), result.added, result.changed, result.removed, prev_id or "nothing",
    )
    return result


def _workers() -> int:
    # Writing is CSV rendering, SHA-256, Parquet and fsync: C code that releases the GIL.
    return max(2, min(4, os.cpu_count() or 2))


def export(
    con: duckdb.DuckDBPyConnection,
    play: str,
    fmt: str,
    out_dir: Path | str,
    run_id: str | None = None,
    max_rows: int | None = None,
    keep: int | None = DEFAULT_KEEP,
) -> list[ExportResult]:
    """Export `play` (a name or `all`) in `fmt` (a format name or `all`) for a run (default: latest).

    With `all`, combinations a format cannot carry (support_queue plays in marketing formats,
    SMS plays in Mailchimp) come back as results with `skipped` set; asked for by name they
    raise `ExportError`.

    Every value of every format is computed in one DuckDB pass over the run's list
    (`prepare_source`); each file is then a projection of it. The files of a play are written
    in threads while the next play's rows are read.
    """
    run = run_info(con, run_id)
    rid = run["run_id"]
    metas = run["plays"] if play == "all" else [_play_meta(run, play)]
    fmts = list(FORMATS) if fmt == "all" else [get_format(fmt).name]
    results: list[ExportResult | None] = []
    jobs: list[tuple[int, dict, str]] = []
    for meta in metas:
        for name in fmts:
            if not supports(name, meta["channel"]):
                if play != "all" and fmt != "all":
                    _check_supported(get_format(name), meta)
                results.append(ExportResult(
                    play=meta["name"], format=name, run_id=rid,
                    skipped=f"{name} does not carry {meta['channel']} plays",
                ))
            else:
                jobs.append((len(results), meta, name))
                results.append(None)
    prepare_source(con, rid, None if play == "all" else play, sorted({name for _, _, name in jobs}))
    listed = _listed_counts(con, rid)
    try:
        with ThreadPoolExecutor(_workers(), thread_name_prefix="retain-export") as pool:
            pending: list[tuple[int, Future]] = []
            for meta in metas:
                mine = []
                for i, m, name in jobs:
                    if m is meta:
                        table, ctx = export_table(con, m["name"], name, rid, prepared=True, run=run, listed=listed)
                        mine.append((i, pool.submit(_write_export, table, ctx, out_dir, max_rows, keep)))
                # At most two plays' rows in memory: wait for the previous play's files.
                for i, fut in pending:
                    results[i] = fut.result()
                pending = mine
            for i, fut in pending:
                results[i] = fut.result()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {SOURCE_TABLE}")
    return [r for r in results if r is not None]
