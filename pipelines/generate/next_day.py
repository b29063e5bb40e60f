"""One more day of landing data after the last one, for trying the daily job (`retain generate --next-day`).

The last day's activity is copied one day later with new ids: orders (and their items),
returns, messages, survey responses, reviews and support tickets. It works on any landing
folder of CSV files (`.csv`, `.csv.gz`) or of Parquet files with the contract's columns,
generated or not, and never changes an existing file: each source gets a new
`increment-<date>.csv` (`increment-<date>.parquet` in a Parquet folder, its columns typed as
the source's files are).
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from pipelines.core.contract import source
from pipelines.core.warehouse import scratch

#: The sources a day of activity is copied from (customers are unchanged: new orders are repeat orders).
DAY_SOURCES = ("orders", "order_items", "returns", "messages", "survey_responses", "reviews", "support_tickets")
OTHER_FORMATS = (".jsonl", ".json", ".ndjson")
CSV_FORMATS = (".csv", ".csv.gz")
PARQUET_FORMATS = (".parquet",)


class NextDayError(ValueError):
    """The landing folder cannot be extended by a day (no orders, or files that are neither CSV nor Parquet)."""


def source_files(landing: Path, source_name: str) -> list[Path]:
    """The landing files of one source under `<landing>/<source>/`, sorted: all CSV (`.csv`,
    `.csv.gz`) or all Parquet.

    Like ingestion, dotfiles and anything in a dot-folder are files still being written.
    Raises `NextDayError` if the source has files of another format, or of both.
    """
    folder = landing / source_name
    if not folder.is_dir():
        return []
    files = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        name = p.name.lower()
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if name.endswith(CSV_FORMATS + PARQUET_FORMATS):
            files.append(p)
        elif name.endswith(OTHER_FORMATS) or name.endswith(tuple(f + ".gz" for f in OTHER_FORMATS)):
            raise NextDayError(
                f"{p}: --next-day copies CSV or Parquet landing files only; this source also has {p.suffix} files")
    if len({_is_parquet(p) for p in files}) > 1:
        raise NextDayError(f"{folder}: --next-day needs one format per source; it has both CSV and Parquet files")
    return sorted(files)


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_FORMATS)


def read_header(path: Path) -> list[str]:
    """The column names in the first line of a CSV file (gzip-aware), trimmed."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        first = fh.readline().decode("utf-8-sig")
    row = next(csv.reader(io.StringIO(first)), [])
    return [c.strip() for c in row]


def append_next_day(landing: Path) -> dict:
    """Add one day of data after the last one: new landing files `<source>/increment-<date>.csv`.

    The last day's orders are copied with new order ids (suffix `-<date>`) and every
    timestamp moved one day later; their order items too; returns, messages, survey
    responses, reviews and tickets of that day likewise (new ids, one day later, order ids
    mapped to the copies). Customers are unchanged: the new orders are repeat orders.
    Returns the new day and the rows written per source.
    """

    con = scratch()
    con.execute("set TimeZone = 'UTC'")

    def files_sql(name: str) -> str | None:
        files = source_files(landing, name)
        quoted = ["'" + str(f).replace("'", "''") + "'" for f in files]
        return "[" + ", ".join(quoted) + "]" if files else None

    def parquet(name: str) -> bool:
        return any(_is_parquet(f) for f in source_files(landing, name))

    def read(name: str) -> str:
        if parquet(name):
            return f"read_parquet({files_sql(name)}, union_by_name = true)"
        return f"read_csv({files_sql(name)}, header = true, all_varchar = true, union_by_name = true)"

    def columns(name: str) -> list[str]:
        if parquet(name):
            return [row[0] for row in con.execute(f"describe select * from {read(name)}").fetchall()]
        header: list[str] = []
        for f in source_files(landing, name):
            header += [c for c in read_header(f) if c not in header]
        return header

    orders = files_sql("orders")
    if orders is None:
        raise NextDayError(f"no order files under {landing / 'orders'}: nothing to copy a day from")
    last_day = con.execute(
        f"select max(cast(cast(ordered_at as timestamptz) as date)) from {read('orders')}"
    ).fetchone()[0]
    new_day = last_day.fromordinal(last_day.toordinal() + 1)
    suffix = f"-{new_day:%Y%m%d}"
    con.execute(
        f"create table day_orders as select order_id from {read('orders')} "
        f"where cast(cast(ordered_at as timestamptz) as date) = date '{last_day}'"
    )
    targets = {name: landing / name / f"increment-{new_day}.{'parquet' if parquet(name) else 'csv'}"
               for name in DAY_SOURCES}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing:
        raise NextDayError(f"{existing[0]} already exists: --next-day never overwrites a landing file")
    written: dict[str, int] = {}
    for name in DAY_SOURCES:
        if files_sql(name) is None:
            continue
        src = source(name)
        typed = parquet(name)  # Parquet keeps its types: the copy is shifted as values, not as text
        header = columns(name)
        exprs = []
        for col in header:
            spec = next((c for c in src.columns if c.name == col), None)
            q = f'"{col}"'
            if spec is None:
                exprs.append(q)
            elif col in src.primary_key and col != "order_id" and spec.type == "varchar":
                exprs.append(f"{q} || '{suffix}' as {q}")
            elif col == "order_id":
                exprs.append(
                    f"case when {q} in (select order_id from day_orders) then {q} || '{suffix}' else {q} end as {q}"
                )
            elif spec.type == "timestamp" and typed:
                exprs.append(f"{q} + interval 1 day as {q}")
            elif spec.type == "timestamp":
                exprs.append(f"strftime(cast({q} as timestamptz) + interval 1 day, '%Y-%m-%dT%H:%M:%SZ') as {q}")
            elif spec.type == "date" and typed:
                exprs.append(f"cast({q} + interval 1 day as date) as {q}")
            elif spec.type == "date":
                exprs.append(f"strftime(cast({q} as date) + interval 1 day, '%Y-%m-%d') as {q}")
            else:
                exprs.append(q)
        if name == "order_items":
            where = "order_id in (select order_id from day_orders)"
        else:
            event = "ordered_at" if name == "orders" else src.event_at
            if event not in header:
                continue
            where = f"cast(cast({event} as timestamptz) as date) = date '{last_day}'"
        target = targets[name]
        rows = con.execute(
            f"copy (select {', '.join(exprs)} from {read(name)} where {where}) to '{target}' "
            + ("(format parquet, compression zstd)" if typed else "(header, format csv)")
        ).fetchone()[0]
        if rows:
            written[name] = int(rows)
        else:
            target.unlink()  # a header-only file would only be rejected as empty
    con.close()
    return {"day": str(new_day), "rows": written}
