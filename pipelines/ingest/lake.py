"""The raw layer as Parquet in the lake, for Spark (RETAIN_ENGINE=spark).

Ingestion validates every file into the DuckDB raw layer (ledger, quarantine, one
transaction per file). With the Spark engine the same rows are also written to the lake,
where Spark reads them without opening the DuckDB file:

    <RETAIN_LAKE>/raw/<table>/load-<load_id>/data.parquet     one folder per load
    <RETAIN_LAKE>/raw/<table>/snapshot-<n>/data.parquet       tables recomputed whole
                                                              (customer identity, ledger)

Guarantees, the same as the DuckDB raw layer's:

* **exactly the ledger's loads**: a load's folder is written only after its transaction
  committed, and `sync` makes the lake match the ledger: it writes every committed load
  the lake lacks (a crash between the commit and the write), removes folders of loads the
  ledger does not hold as loaded;
* **no partial load ever visible**: each folder is written under a hidden name
  (`.tmp-...`; Spark skips names starting with `.` or `_`) and renamed into place, and
  leftovers of a killed write are removed by the next `sync`;
* **the quarantine and the ledger** go along as snapshots (`_loads`, `_quarantine`,
  `_rejected_files`), so what was refused is visible next to what was loaded.

Spark reads each table through the dbt sources (`macros/spark_sources.sql` registers
`raw.<table>` over its folder with the contract's column types).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

#: Tables written whole at every sync (small, recomputed from the whole raw layer).
SNAPSHOT_TABLES = ("_customer_identity", "_identity_match", "_loads", "_quarantine", "_rejected_files")

LOAD_PREFIX = "load-"
SNAPSHOT_PREFIX = "snapshot-"
TMP_PREFIX = ".tmp-"


def raw_folder() -> Path:
    """`<RETAIN_LAKE>/raw` (a local folder: ingestion writes it; a cluster reads it by its URL)."""
    from pipelines.core.spark import spark_settings

    lake = spark_settings().raw
    if "://" in lake:
        raise ValueError(
            f"RETAIN_LAKE={lake.rsplit('/raw', 1)[0]} is an object store URL: ingestion writes the raw "
            "layer to a local or mounted folder; see docs/scale-out.md"
        )
    return Path(lake)


def _columns_sql(con: duckdb.DuckDBPyConnection, table: str, schema: str = "raw", lists_as_text: bool = True) -> str:
    """SELECT list of `<schema>.<table>` with JSON (and list) columns as text (Parquet Spark reads)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    parts = []
    for name, data_type in rows:
        quoted = '"' + name.replace('"', '""') + '"'
        if data_type.upper() == "JSON" or (lists_as_text and data_type.endswith("[]")):
            parts.append(f"CAST({quoted} AS VARCHAR) AS {quoted}")
        else:
            parts.append(quoted)
    return ", ".join(parts)


def _write(
    con: duckdb.DuckDBPyConnection, table: str, where: str, folder: Path,
    schema: str = "raw", lists_as_text: bool = True,
) -> None:
    """Write `<schema>.<table>` rows matching `where` to `folder`/data.parquet, atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{TMP_PREFIX}{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    target = str(tmp / "data.parquet").replace("'", "''")
    columns = _columns_sql(con, table, schema, lists_as_text)
    con.execute(
        f"COPY (SELECT {columns} FROM \"{schema}\".\"{table}\" WHERE {where}) "
        f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
    )
    os.replace(tmp, folder)


def sync(con: duckdb.DuckDBPyConnection, tables: list[str] | None = None) -> dict[str, int]:
    """Make the lake's raw layer match the DuckDB ledger; returns loads written per table.

    `tables`: the contract sources to sync (default every one); the snapshot tables are
    rewritten every time (they are small).
    """
    from pipelines.core.contract import load_contract

    root = raw_folder()
    root.mkdir(parents=True, exist_ok=True)
    names = list(tables) if tables is not None else list(load_contract())
    written: dict[str, int] = {}
    for name in names:
        folder = root / name
        folder.mkdir(exist_ok=True)
        for leftover in folder.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        loaded = {
            row[0]
            for row in con.execute(
                "SELECT load_id FROM raw._loads WHERE source = ? AND status = 'loaded' AND rows_loaded > 0", [name]
            ).fetchall()
        }
        present = {int(p.name[len(LOAD_PREFIX):]): p for p in folder.glob(f"{LOAD_PREFIX}*")}
        for load_id, path in present.items():
            if load_id not in loaded:  # rolled back, or the ledger was rebuilt: not a load any more
                shutil.rmtree(path)
        missing = sorted(loaded - present.keys())
        for load_id in missing:
            _write(con, name, f"_load_id = {int(load_id)}", folder / f"{LOAD_PREFIX}{load_id:09d}")
        written[name] = len(missing)
    for name in SNAPSHOT_TABLES:
        if con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 'raw' AND table_name = ?", [name]
        ).fetchone():
            _write_snapshot(con, root / name, name)
    return written


def _write_snapshot(
    con: duckdb.DuckDBPyConnection, folder: Path, name: str, schema: str = "raw", lists_as_text: bool = True
) -> None:
    """Replace the snapshot of `<schema>.<name>`: the new one is renamed in, then older ones removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    old = sorted(folder.glob(f"{SNAPSHOT_PREFIX}*"))
    number = int(old[-1].name[len(SNAPSHOT_PREFIX):]) + 1 if old else 1
    _write(con, name, "true", folder / f"{SNAPSHOT_PREFIX}{number:09d}", schema, lists_as_text)
    for path in old:
        shutil.rmtree(path, ignore_errors=True)


def sync_sources(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, str]]) -> list[str]:
    """Snapshot the dbt sources outside `raw` that the warehouse holds (`ml.churn_scores`,
    `exports.holdouts`, ...: what the scoring and outreach steps wrote) into
    `<RETAIN_LAKE>/sources/<schema>/<table>/`, for the dbt models that read them on Spark.

    Returns `<schema>.<table>` of each table written; a source the warehouse does not hold
    yet is left out (its models read an empty relation, `source_or_empty`).
    """
    root = raw_folder().parent / "sources"
    written = []
    for schema, name in tables:
        if not con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, name]
        ).fetchone():
            continue
        _write_snapshot(con, root / schema / name, name, schema, lists_as_text=False)
        written.append(f"{schema}.{name}")
    return written
