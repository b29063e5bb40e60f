"""Landing files: which ones count, what format they are, their fingerprint and CSV header.

Landing layout: `<landing>/<source>/**/<file>`, any depth of sub-folders. Files still being
written are left alone: names ending in `.tmp` or `.part`, and dotfiles (and anything inside
a dot-folder), e.g. the `.file.csv.XXXX` temporaries rsync and many uploaders write.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

#: Extension (lower-case) → format name.
FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
}

#: Name endings of files that are still being written.
IN_FLIGHT_SUFFIXES = (".tmp", ".part")

#: How much of a CSV file is read to find its header line.
HEADER_LIMIT = 1 << 20

HASH_CHUNK = 1 << 20


class FileRejected(Exception):
    """A whole file cannot be loaded; `code` is a file reason code, the message says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


#: File-level reason codes (raw._rejected_files) and what they mean.
FILE_REASON_CODES = {
    "unsupported_format": "the extension is not .csv, .csv.gz, .parquet, .jsonl or .ndjson (optionally .gz)",
    "empty_file": "0 bytes, or no header line",
    "invalid_encoding": "bytes that are not UTF-8 (re-export as UTF-8)",
    "truncated_gzip": "the gzip stream ends early or is corrupt",
    "truncated_file": "the file ends in the middle of a row",
    "unterminated_quote": "a quote opens and never closes, swallowing the rest of the file",
    "unreadable": "the file cannot be parsed at all (corrupt Parquet, broken CSV, ...)",
    "wrong_delimiter": "the header is a single column holding ; | or tab: not comma-separated",
    "duplicate_column": "two header columns with the same name (case-insensitive, trimmed)",
    "no_known_columns": "none of the file's columns is in the contract for the source",
    "missing_required_column": "a column the contract requires is not in the file",
    "wrong_column_type": "a Parquet column's type cannot hold the contract type",
    "no_valid_rows": "not a single row could be parsed (every line malformed)",
    "load_failed": "an error no other rule foresaw while loading the file; the message names it",
}


def file_format(path: Path) -> str | None:
    """The format of a landing file from its name, or None if unsupported."""
    name = path.name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return FORMATS[ext]
    return None


def is_compressed(path: Path) -> bool:
    """True for gzip-compressed text files (`.gz`)."""
    return path.name.lower().endswith(".gz")


def is_in_flight(path: Path, root: Path) -> bool:
    """True for files to leave alone for now: temporaries, partial uploads, dotfiles, and Python's
    bytecode cache (`__pycache__`, left next to a mapping's hook by a user who ran it)."""
    rel = path.relative_to(root)
    if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
        return True
    return path.name.lower().endswith(IN_FLIGHT_SUFFIXES)


def landing_files(landing: Path, source: str) -> list[Path]:
    """Every candidate file of a source, sorted by path (so load order is reproducible)."""
    folder = landing / source
    if not folder.is_dir():
        return []
    files = [p for p in folder.rglob("*") if p.is_file() and not is_in_flight(p, folder)]
    return sorted(files)


@dataclass(frozen=True)
class FileStat:
    """Size and modification time of a file, as seen once."""

    size: int
    mtime: datetime  # naive UTC, microseconds

    @classmethod
    def of(cls, path: Path) -> FileStat:
        """Stat `path`."""
        st = path.stat()
        mtime = datetime.fromtimestamp(st.st_mtime_ns // 1000 / 1e6, tz=UTC).replace(tzinfo=None)
        return cls(size=st.st_size, mtime=mtime)


def sha256_of(path: Path) -> str:
    """Hex sha256 of the file's bytes (read in 1 MB chunks: constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text_start(path: Path) -> bytes:
    """The first HEADER_LIMIT bytes of the (decompressed) file."""
    if is_compressed(path):
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read(HEADER_LIMIT)
        except (EOFError, OSError, zlib.error) as exc:
            raise FileRejected(
                "truncated_gzip", f"{path.name}: not a readable gzip file ({exc}); re-send the complete file"
            ) from exc
    with open(path, "rb") as fh:
        return fh.read(HEADER_LIMIT)


def read_csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's header line (RFC 4180: comma, double quotes).

    Raises FileRejected for an empty file, a header that is not UTF-8, or a header that is
    one column holding another delimiter (the file is not comma-separated).
    """
    start = _open_text_start(path)
    if start.startswith(b"\xef\xbb\xbf"):
        start = start[3:]  # UTF-8 byte order mark: Excel writes it; harmless
    if not start.strip():
        raise FileRejected("empty_file", f"{path.name}: the file is empty (no header line)")
    # The header ends at the first newline outside quotes; grow line by line until it parses.
    end = 0
    while True:
        nl = start.find(b"\n", end)
        end = len(start) if nl < 0 else nl + 1
        chunk = start[:end]
        if chunk.count(b'"') % 2 == 0 or nl < 0:
            break
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(
            "invalid_encoding",
            f"{path.name}: the header (line 1) is not UTF-8 at byte {exc.start}; re-export the file as UTF-8",
        ) from exc
    if len(start) == HEADER_LIMIT and end == len(start):
        raise FileRejected("unreadable", f"{path.name}: no end of the header line in the first {HEADER_LIMIT:,} bytes")
    rows = list(csv.reader(io.StringIO(text), delimiter=",", quotechar='"', strict=False))
    if not rows or not any(h.strip() for h in rows[0]):
        raise FileRejected("empty_file", f"{path.name}: the first line is empty; expected a header line")
    header = rows[0]
    if len(header) == 1:
        for delim, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if delim in header[0]:
                shown = header[0] if len(header[0]) <= 60 else header[0][:60] + "…"
                raise FileRejected(
                    "wrong_delimiter",
                    f"{path.name}: the header is a single column {shown!r}; the file looks "
                    f"{label}-separated but retain reads comma-separated CSV (RFC 4180). "
                    "Re-export with commas.",
                )
    return header


def ends_with_newline(path: Path) -> bool:
    """True if a plain (uncompressed) file's last byte is a newline."""
    size = os.path.getsize(path)
    if size == 0:
        return False
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) in (b"\n", b"\r")
