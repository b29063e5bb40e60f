"""Write generated tables as landing files that follow the data contract, via DuckDB `COPY`.

A builder hands over a pyarrow table of raw columns (integer ids, int64 cents, timestamps,
dictionary-encoded text) plus SQL expressions for the columns that need formatting. The
writer selects every contract column in contract order (absent optional columns become
NULL), casts to the contract type, and copies the result to one file. Rows keep the order of
the arrow table, so the same table always gives the same bytes.

Formats: csv and jsonl write timestamps as ISO 8601 UTC with `Z` and dates as YYYY-MM-DD;
decimals always have 2 places; parquet keeps native types (TIMESTAMP as naive UTC, DATE,
DECIMAL(18, 2), BIGINT, BOOLEAN). csv.gz is the csv file compressed with gzip (no file name
and mtime 0 in the header, so it is byte-stable too).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from pipelines.core.contract import Source

FORMATS = ("csv", "csv.gz", "parquet", "jsonl")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_FORMAT = "%Y-%m-%d"
GZIP_LEVEL = 1  # gzip -1: 4x less CPU than the default 6 for files ~1.4x larger

# Identifier shapes: prefix and the number added to the 0-based sequence, so ids have a fixed
# width (C10000001, O100000001, ...) without a costly lpad on tens of millions of rows.
ID_SHAPES = {
    "customer": ("C", 10_000_001),
    "order": ("O", 100_000_001),
    "return": ("R", 10_000_001),
    "message": ("M", 1_000_000_001),
    "response": ("S", 100_000_001),
    "review": ("V", 10_000_001),
    "ticket": ("T", 10_000_001),
}


def id_sql(column: str, kind: str) -> str:
    """SQL that turns a 0-based integer id column into its text id (NULL stays NULL)."""
    prefix, base = ID_SHAPES[kind]
    return f"('{prefix}' || ({column} + {base})::VARCHAR)"


@dataclass
class Part:
    """One file's worth of one source: raw columns and formatting expressions."""

    table: pa.Table
    exprs: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of rows."""
        return self.table.num_rows


# --- arrow column helpers used by the builders ----------------------------------------------------

def ts_col(seconds: np.ndarray) -> pa.Array:
    """int64 epoch seconds (NULL = negative) as an arrow timestamp column."""
    seconds = np.ascontiguousarray(seconds, dtype=np.int64)
    return pa.array(seconds.view("datetime64[s]"), mask=seconds < 0)  # a view: no copy


def date_col(days: np.ndarray) -> pa.Array:
    """int64 epoch days (NULL = negative) as an arrow date column."""
    days = np.asarray(days, dtype=np.int64)
    return pa.array(days.astype(np.int32), mask=days < 0, type=pa.int32()).cast(pa.date32())


def int_col(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """int64 column, NULL where `null` is true."""
    return pa.array(np.asarray(values, dtype=np.int64), mask=null)


def dict_col(codes: np.ndarray, values: list[str]) -> pa.Array:
    """Text column from integer codes into `values` (NULL = negative code)."""
    codes = np.asarray(codes)
    if codes.dtype not in (np.int8, np.int16, np.int32):  # arrow takes these index types as they are
        codes = codes.astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), pa.array(values, pa.string()))


# --- files --------------------------------------------------------------------------------------

def file_names(source: str, fmt: str, parts: int) -> list[str]:
    """Deterministic file names: `<source>.<ext>`, or `<source>-0000.<ext>`... when split."""
    if parts == 1:
        return [f"{source}.{fmt}"]
    return [f"{source}-{i:04d}.{fmt}" for i in range(parts)]


def generated_files(folder: Path, source: str) -> list[Path]:
    """Files in `folder` that look like generator output for `source` (any format, any split)."""
    if not folder.is_dir():
        return []
    exts = "|".join(re.escape(f) for f in FORMATS)
    pattern = re.compile(rf"^{re.escape(source)}(-\d{{4}})?\.({exts})$")
    return sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))


def select_sql(src: Source, part: Part, table_name: str) -> str:
    """SELECT of every contract column in contract order, cast to the contract's types.

    One select serves every format: the COPY options do the text formatting of csv and jsonl.
    """
    present = set(part.table.column_names)
    cols = []
    for col in src.columns:
        if col.name in part.exprs:
            expr = part.exprs[col.name]
        elif col.name in present:
            expr = f'"{col.name}"'
            if col.type == "decimal":
                expr = f"({expr} / 100)"  # builders hand over exact integer cents
        else:
            expr = "NULL"
        cols.append(f'CAST({expr} AS {col.duckdb_type}) AS "{col.name}"')
    return f"SELECT {', '.join(cols)} FROM {table_name}"


def sql_string(value: object) -> str:
    """A SQL string literal (paths may contain quotes)."""
    return "'" + str(value).replace("'", "''") + "'"


def write_part(con: duckdb.DuckDBPyConnection, src: Source, part: Part, path: Path, fmt: str) -> None:
    """Write one part atomically (temporary hidden file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    name = f"gen_{src.name}"
    con.register(name, part.table)
    try:
        sql = select_sql(src, part, name)
        if fmt in ("csv", "csv.gz"):
            # csv.gz: plain csv first (a dotfile ending in .tmp, which landing sensors skip), then gzip
            target = tmp if fmt == "csv" else tmp.with_name(f".{path.name}.raw.tmp")
            con.execute(f"COPY ({sql}) TO {sql_string(target)} (FORMAT csv, HEADER true, "
                        f"TIMESTAMPFORMAT '{TIMESTAMP_FORMAT}', DATEFORMAT '{DATE_FORMAT}')")
            if fmt == "csv.gz":
                _gzip(target, tmp)
                target.unlink()
        elif fmt == "jsonl":
            con.execute(f"COPY ({sql}) TO {sql_string(tmp)} (FORMAT json, "
                        f"TIMESTAMPFORMAT '{TIMESTAMP_FORMAT}', DATEFORMAT '{DATE_FORMAT}')")
        elif fmt == "parquet":
            con.execute(f"COPY ({sql}) TO {sql_string(tmp)} (FORMAT parquet, COMPRESSION zstd)")
        else:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        os.replace(tmp, path)
    finally:
        con.unregister(name)
        for leftover in (tmp, tmp.with_name(f".{path.name}.raw.tmp")):
            if leftover.exists():
                leftover.unlink()


def _gzip(src: Path, dst: Path) -> None:
    """gzip without file name or time in the header, so equal input gives equal bytes."""
    with open(src, "rb") as fin, open(dst, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as fout:
        shutil.copyfileobj(fin, fout, 4 << 20)
