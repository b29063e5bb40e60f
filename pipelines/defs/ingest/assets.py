"""Dagster assets for ingestion: one per contract source, `raw/<source>`, plus their checks.

The work is `pipelines.ingest.ingest([source])` (plain Python, also behind `retain ingest`);
the asset reports what it did as metadata and the blocking check proves the ledger balances.
All of them run in the `duckdb_writer` pool so no two steps fight over the warehouse's
file lock.
"""

import dagster as dg
from dagster import AssetExecutionContext

from pipelines.core.contract import Source, load_contract
from pipelines.defs.resources import WarehouseResource, retry_if_busy
from pipelines.ingest import FileResult, ingest
from pipelines.runs import pause_point

GROUP = "ingest"
POOL = "duckdb_writer"


def raw_key(name: str) -> dg.AssetKey:
    """Asset key of a source's raw table: `raw/<source>`."""
    return dg.AssetKey(["raw", name])


def _log(context: AssetExecutionContext, r: FileResult) -> None:
    if r.status == "rejected":
        context.log.warning(f"{r.file}: rejected ({r.reason_code}): {r.message}")
    elif r.status == "loaded":
        context.log.info(
            f"{r.file}: {r.rows_loaded:,} rows loaded, {r.rows_quarantined:,} quarantined in {r.seconds:.1f} s"
        )
    elif r.status == "skipped_duplicate":
        context.log.info(r.message or f"{r.file}: skipped")


def _table_rows(warehouse: WarehouseResource, name: str) -> int:
    with warehouse.connect(read_only=True) as con:
        return con.execute(f'SELECT count(*) FROM raw."{name}"').fetchone()[0]


def _make_asset(src: Source) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_key(src.name),
        group_name=GROUP,
        pool=POOL,
        kinds={"duckdb"},
        description=(
            f"{src.description} Loaded from every new or changed file under landing/{src.name}/ "
            "(CSV, CSV.gz, Parquet, JSON Lines), validated against the data contract; bad rows go to "
            "raw._quarantine, unreadable files to raw._rejected_files, every file to the raw._loads ledger."
        ),
        metadata={
            "primary_key": ", ".join(src.primary_key),
            "columns": ", ".join(src.column_names),
        },
    )
    def _asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        def progress(r: FileResult) -> None:
            _log(context, r)
            pause_point("ingest")  # test hook: a run killed between two files of a load

        with retry_if_busy():  # the warehouse is opened first: a lock held for a moment is retried
            results = ingest([src.name], warehouse=warehouse.location, progress=progress)
        loaded = [r for r in results if r.status == "loaded"]
        rejected = [r for r in results if r.status == "rejected"]
        rows_read = sum(r.rows_read for r in results)
        rows_loaded = sum(r.rows_loaded for r in results)
        return dg.MaterializeResult(
            metadata={
                "files": len(results),
                "files_loaded": len(loaded),
                "files_skipped": sum(r.status in ("unchanged", "skipped_duplicate") for r in results),
                "files_rejected": len(rejected),
                "rows_read": rows_read,
                "rows_loaded": rows_loaded,
                "rows_quarantined": sum(r.rows_quarantined for r in results),
                "values_nulled": sum(r.values_nulled for r in results),
                "rejected_files": dg.MetadataValue.json(
                    [{"file": r.file, "reason": r.reason_code, "message": r.message} for r in rejected]
                ),
                "extra_columns": sorted({c for r in loaded for c in r.extra_columns}),
                # The names `retain run`'s per-stage summary reads: rows in this run in / out.
                "rows_in": rows_read,
                "rows_out": rows_loaded,
                "dagster/row_count": _table_rows(warehouse, src.name),
            }
        )

    return _asset


def _make_check(src: Source) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(src.name),
        name="ledger_balanced",
        blocking=True,
        pool=POOL,
        description=(
            "For every file in raw._loads: rows read = rows loaded + rows quarantined; and the raw table and "
            "raw._quarantine hold exactly the rows the ledger says were loaded and quarantined."
        ),
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            unbalanced = con.execute(
                "SELECT file_path, rows_read, rows_loaded, rows_quarantined FROM raw._loads "
                "WHERE source = ? AND rows_read <> rows_loaded + rows_quarantined ORDER BY load_id",
                [src.name],
            ).fetchall()
            ledger_loaded, ledger_quarantined = con.execute(
                "SELECT coalesce(sum(rows_loaded), 0), coalesce(sum(rows_quarantined), 0) FROM raw._loads "
                "WHERE source = ?",
                [src.name],
            ).fetchone()
            table_rows = con.execute(f'SELECT count(*) FROM raw."{src.name}"').fetchone()[0]
            quarantine_rows = con.execute(
                "SELECT count(*) FROM raw._quarantine WHERE source = ?", [src.name]
            ).fetchone()[0]
        passed = not unbalanced and ledger_loaded == table_rows and ledger_quarantined == quarantine_rows
        problems = [f"{f}: read {r:,} ≠ loaded {lo:,} + quarantined {q:,}" for f, r, lo, q in unbalanced[:10]]
        if ledger_loaded != table_rows:
            problems.append(f"raw.{src.name} has {table_rows:,} rows but the ledger says {ledger_loaded:,} were loaded")
        if ledger_quarantined != quarantine_rows:
            problems.append(
                f"raw._quarantine has {quarantine_rows:,} {src.name} rows but the ledger says {ledger_quarantined:,}"
            )
        return dg.AssetCheckResult(
            passed=passed,
            metadata={
                "unbalanced_files": len(unbalanced),
                "rows_in_table": table_rows,
                "rows_loaded_per_ledger": ledger_loaded,
                "rows_quarantined": quarantine_rows,
                "problems": "\n".join(problems) or "none",
            },
            description="Ledger balanced." if passed else "; ".join(problems),
        )

    return _check


ingest_assets: list[dg.AssetsDefinition] = [_make_asset(s) for s in load_contract().values()]
ingest_checks: list[dg.AssetChecksDefinition] = [_make_check(s) for s in load_contract().values()]

#: Every ingestion asset (and its checks): what the landing sensor launches.
ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Load new and changed landing files into raw.<source> (all 8 sources).",
)
