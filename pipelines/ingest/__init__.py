"""Ingestion: landing files → `raw.<source>` in DuckDB, validated against the data contract.

Plain Python (no Dagster): `retain ingest` calls `ingest()` directly and the Dagster assets
in `pipelines/defs/ingest/` call the same function. See docs/ingestion.md.
"""

from pipelines.ingest.files import FILE_REASON_CODES, FileRejected, landing_files
from pipelines.ingest.loader import FileResult, connect, ingest, ingest_file
from pipelines.ingest.report import QuarantineReport, QuarantineRow, format_summary, quarantine_report
from pipelines.ingest.rules import REASON_CODES, WARNING_CODES
from pipelines.ingest.schema import ensure_schema

__all__ = [
    "FILE_REASON_CODES",
    "REASON_CODES",
    "WARNING_CODES",
    "FileRejected",
    "FileResult",
    "QuarantineReport",
    "QuarantineRow",
    "connect",
    "ensure_schema",
    "format_summary",
    "ingest",
    "ingest_file",
    "landing_files",
    "quarantine_report",
]
