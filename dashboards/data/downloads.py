"""CRM downloads through the same code as `retain export`, rendered from the warehouse when clicked.

The file is `retain export`'s for the run the snapshot shows (same code, same bytes), with the
warehouse's unmasked contacts, for the marketer role only; `audited_export` writes each
download to the audit log before the bytes are handed over.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import streamlit as st

from dashboards.data.connection import TTL_SECONDS, WarehouseUnavailable, warehouse_connection


def export_support(con: duckdb.DuckDBPyConnection) -> dict:
    """Which CRM formats the outreach export code offers, and whether it can run on `con`.

    Returns `formats` ({name: (title, channels, max rows per file)}) and `problem`: None when
    the export's source query binds against the database (checked by running it with no rows),
    else the first line of the error (e.g. a table or column it does not have).
    `formats` is empty when the export code is not installed.
    """
    support = export_support_formats()
    if not support["formats"]:
        return support
    from pipelines.outreach import formats
    from pipelines.outreach.normalize import install_macros

    with con.cursor() as cur:
        try:
            install_macros(cur)
            cur.execute(f"select * from ({formats.EXPORT_SOURCE_SQL}) limit 0", {"run_id": "", "play": None})
        except duckdb.Error as exc:
            support["problem"] = str(exc).strip().splitlines()[0]
    return support


def render_download(con: duckdb.DuckDBPyConnection, play: str, fmt: str, run_id: str | None = None) -> bytes:
    """One play's export in one CRM format, as `retain export` writes it: CSV bytes, or a ZIP of the parts.

    Calls `pipelines.outreach.exporter.render_export` on a cursor of the read-only snapshot
    (it only needs temporary tables and macros, which a read-only connection allows).
    """
    import io
    import zipfile

    from pipelines.outreach.exporter import render_export

    with con.cursor() as cur:
        files = render_export(cur, play, fmt, run_id=run_id)
    if len(files) == 1:
        return next(iter(files.values()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def download_file_name(play: str, fmt: str, rows: int, max_rows_per_file: int | None) -> str:
    """The download's file name: `<play>-<format>.csv`, or `.zip` when the format splits it into parts."""
    split = bool(max_rows_per_file) and rows > max_rows_per_file
    return f"{play}-{fmt}.{'zip' if split else 'csv'}"


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _warehouse_export_support(snapshot: str) -> dict:
    # Per snapshot: the warehouse's tables change only in a run, which publishes a new one. A
    # busy or missing warehouse raises, and an exception is not cached: the next load asks again.
    with warehouse_connection() as con:
        return export_support(con)


def warehouse_export_support(snapshot: str | Path | None = None) -> dict:
    """`export_support` on the warehouse, where the CRM files are rendered from (problem: why not now).

    With `snapshot` (the page's) a successful check is cached for it, so the Outreach page does
    not open the warehouse on every rerun; without it the warehouse is asked now.
    """
    try:
        if snapshot is not None:
            return _warehouse_export_support(str(snapshot))
        with warehouse_connection() as con:
            return export_support(con)
    except WarehouseUnavailable as exc:
        support = export_support_formats()
        return {**support, "problem": str(exc)}


def export_support_formats() -> dict:
    """The CRM formats the export code offers, without checking a connection."""
    try:
        from pipelines.outreach import formats
        from pipelines.outreach.normalize import install_macros  # noqa: F401 - export_support needs it
    except ImportError:
        return {"formats": {}, "problem": None}
    return {
        "formats": {
            name: (f.title, tuple(f.channels), f.max_rows_per_file) for name, f in formats.EXPORT_FORMATS.items()
        },
        "problem": None,
    }


def count_rows(content: bytes, file_name: str) -> int:
    """Customers in a rendered download: data rows of the CSV, or of every CSV inside the ZIP."""
    import csv
    import io
    import zipfile

    def rows(csv_bytes: bytes) -> int:
        return max(sum(1 for _ in csv.reader(io.StringIO(csv_bytes.decode("utf-8-sig"), newline=""))) - 1, 0)

    if file_name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            return sum(rows(z.read(name)) for name in z.namelist() if name.endswith(".csv"))
    return rows(content)


def audited_export(play: str, fmt: str, run_id: str | None, file_name: str,
                   audit: Callable[[dict], None]) -> Callable[[], bytes]:
    """A zero-argument function for `st.download_button`: renders the CRM file from the warehouse when clicked.

    The file is `retain export`'s for the run the snapshot shows (same code, same bytes), with
    the warehouse's unmasked contacts; `audit` receives {play, format, run_id, file_name, rows}
    before the bytes are handed over (if it raises, nothing is downloaded).
    """

    def render() -> bytes:
        with warehouse_connection() as con:
            content = render_download(con, play, fmt, run_id)
        audit({"play": play, "format": fmt, "run_id": run_id, "file_name": file_name,
               "rows": count_rows(content, file_name)})
        return content

    return render
