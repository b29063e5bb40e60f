"""What `retain ingest` and `retain quarantine` print."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import duckdb
from rich.table import Table

from pipelines.ingest.loader import FileResult


def format_summary(results: Iterable[FileResult]) -> Table:
    """One line per source: files loaded / skipped / rejected and rows loaded / quarantined."""
    per: dict[str, dict[str, int]] = {}
    for r in results:
        s = per.setdefault(
            r.source,
            {"files": 0, "loaded": 0, "skipped": 0, "rejected": 0, "read": 0, "rows": 0, "quarantined": 0,
             "nulled": 0},
        )
        s["files"] += 1
        s["loaded"] += r.status == "loaded"
        s["skipped"] += r.status in ("unchanged", "skipped_duplicate")
        s["rejected"] += r.status == "rejected"
        s["read"] += r.rows_read
        s["rows"] += r.rows_loaded
        s["quarantined"] += r.rows_quarantined
        s["nulled"] += r.values_nulled
    table = Table(title="Ingestion")
    for col in ("source", "files", "loaded", "skipped", "rejected", "rows read", "rows loaded", "quarantined",
                "nulled"):
        table.add_column(col, justify="left" if col == "source" else "right", no_wrap=True)
    table.caption = (
        "files: seen; loaded: new files loaded; skipped: already loaded; rejected: unreadable files; "
        "quarantined: rows; nulled: invalid optional emails/phones/countries, out-of-range optional dates"
    )
    total = dict.fromkeys(("files", "loaded", "skipped", "rejected", "read", "rows", "quarantined", "nulled"), 0)
    for name, s in per.items():
        for k in total:
            total[k] += s[k]
        table.add_row(
            name, *(f"{s[k]:,}" for k in ("files", "loaded", "skipped")),
            f"[red]{s['rejected']:,}[/]" if s["rejected"] else "0",
            *(f"{s[k]:,}" for k in ("read", "rows")),
            f"[yellow]{s['quarantined']:,}[/]" if s["quarantined"] else "0",
            f"{s['nulled']:,}",
        )
    if not per:
        table.caption = "No landing files found."
    else:
        table.add_section()
        table.add_row("total", *(f"{total[k]:,}" for k in total))
        if total["rejected"] or total["quarantined"]:
            table.caption += ". See why with `retain quarantine`."
    return table


class QuarantineRow(NamedTuple):
    """One quarantined row (row set) or one rejected file (row None)."""

    source: str
    file: str
    row: int | None
    column: str | None
    reason_code: str
    message: str


class QuarantineReport(list):
    """A list of QuarantineRow, newest load first, that prints as a table with rich."""

    def __init__(self, rows: Iterable[QuarantineRow], total: int):
        super().__init__(rows)
        self.total = total

    def __rich__(self) -> Table:
        """Render for `rich.print` / `Console.print`."""
        table = Table(title=f"Quarantined rows and rejected files ({len(self):,} of {self.total:,} shown)")
        for col in QuarantineRow._fields:
            table.add_column(
                col.replace("_", " "), justify="right" if col == "row" else "left", overflow="fold",
                ratio=4 if col == "message" else None, no_wrap=col in ("row", "reason_code"),
            )
        for r in self:
            table.add_row(r.source, r.file, "whole file" if r.row is None else str(r.row), r.column or "",
                          r.reason_code, r.message)
        if not self:
            table.caption = "Nothing quarantined."
        return table


def quarantine_report(
    con: duckdb.DuckDBPyConnection, source: str | None = None, limit: int = 50
) -> QuarantineReport:
    """Rejected files and quarantined rows (source, file, row, column, reason code, message).

    Newest load first; rejected files (row None) before the rows of the same load. Empty if
    nothing was ever ingested into this warehouse.
    """
    have = {
        t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw' "
            "AND table_name IN ('_quarantine', '_rejected_files')"
        ).fetchall()
    }
    if len(have) < 2:
        return QuarantineReport([], 0)
    union = """
        SELECT load_id, 0 AS k, source, file_path AS file, NULL::BIGINT AS row, NULL::VARCHAR AS col,
               reason_code, message FROM raw._rejected_files
        UNION ALL
        SELECT load_id, 1, source, source_file, source_row, column_name, reason_code, message FROM raw._quarantine"""
    where = "WHERE source = $source" if source else ""
    params = {"source": source} if source else {}
    total = con.execute(f"SELECT count(*) FROM ({union}) {where}", params).fetchone()[0]
    rows = con.execute(
        f"SELECT source, file, row, col, reason_code, message FROM ({union}) {where} "
        f"ORDER BY load_id DESC, k, row LIMIT {int(limit)}",
        params,
    ).fetchall()
    return QuarantineReport((QuarantineRow(*r) for r in rows), total)
