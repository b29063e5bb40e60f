"""The `raw` schema: one table per contract source plus the ingestion bookkeeping tables.

| table | one row per |
| --- | --- |
| `raw.<source>` | loaded row; every version of a key is kept (staging picks the latest) |
| `raw._loads` | file seen: the load ledger (loaded, rejected or skipped_duplicate) |
| `raw._quarantine` | row that broke the contract, with its raw record and a reason |
| `raw._rejected_files` | file that could not be loaded at all |
| `raw._warnings` | optional value that was nulled on load (invalid optional email/phone/country) |
| `raw._customer_identity` | customer key → retain customer id (recomputed by `pipelines.importers.identity`) |
| `raw._identity_match` | source and platform: rows matched to a shop customer, rows unmatched |
"""

from __future__ import annotations

import duckdb

from pipelines.core.contract import Source, load_contract
from pipelines.ingest.rules import q

#: Columns ingestion adds to every `raw.<source>` table, after the contract's columns.
LINEAGE_COLUMNS = {
    "_load_id": "BIGINT NOT NULL",  # raw._loads.load_id; increases with every load
    "_source_file": "VARCHAR NOT NULL",  # path relative to the landing folder
    "_source_row": "BIGINT NOT NULL",  # 1-based data row (CSV record, JSON line, Parquet row)
    "_loaded_at": "TIMESTAMP NOT NULL",  # UTC
    "_extra": "JSON",  # unknown columns of the file as a JSON object; NULL if none
}

BOOKKEEPING_DDL = [
    "CREATE SCHEMA IF NOT EXISTS raw",
    "CREATE SEQUENCE IF NOT EXISTS raw._load_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS raw._loads (
        load_id BIGINT PRIMARY KEY,
        source VARCHAR NOT NULL,
        file_path VARCHAR NOT NULL,
        file_size BIGINT,
        file_mtime TIMESTAMP,
        sha256 VARCHAR,
        format VARCHAR,
        status VARCHAR NOT NULL,
        rows_read BIGINT NOT NULL DEFAULT 0,
        rows_loaded BIGINT NOT NULL DEFAULT 0,
        rows_quarantined BIGINT NOT NULL DEFAULT 0,
        values_nulled BIGINT NOT NULL DEFAULT 0,
        extra_columns VARCHAR[],
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        error VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS raw._quarantine (
        load_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL,
        source_row BIGINT,
        column_name VARCHAR,
        reason_code VARCHAR NOT NULL,
        message VARCHAR NOT NULL,
        record VARCHAR,
        quarantined_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS raw._rejected_files (
        load_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        file_path VARCHAR NOT NULL,
        sha256 VARCHAR,
        reason_code VARCHAR NOT NULL,
        message VARCHAR NOT NULL,
        rejected_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS raw._warnings (
        load_id BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL,
        column_name VARCHAR NOT NULL,
        warning_code VARCHAR NOT NULL,
        message VARCHAR NOT NULL
    )""",
]


#: The identity tables (docs/importing.md): rewritten whole by `pipelines.importers.identity.resolve`
#: after a full ingest; created here, empty, so dbt's `identity` source exists in every warehouse.
IDENTITY_DDL = [
    """CREATE TABLE IF NOT EXISTS raw._customer_identity (
        customer_key VARCHAR NOT NULL,
        platform VARCHAR NOT NULL,
        platform_customer_id VARCHAR,
        email_normalised VARCHAR,
        phone_e164 VARCHAR,
        customer_id VARCHAR NOT NULL,
        is_shop_customer BOOLEAN NOT NULL,
        resolved_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS raw._identity_match (
        source VARCHAR NOT NULL,
        platform VARCHAR NOT NULL,
        rows BIGINT NOT NULL,
        matched BIGINT NOT NULL,
        unmatched BIGINT NOT NULL,
        match_rate DOUBLE,
        resolved_at TIMESTAMP NOT NULL
    )""",
]


def source_table_ddl(src: Source) -> str:
    """CREATE TABLE for `raw.<source>`: contract columns typed, then the lineage columns."""
    cols = [f"{q(c.name)} {c.duckdb_type}" for c in src.columns]
    cols += [f"{name} {decl}" for name, decl in LINEAGE_COLUMNS.items()]
    return f"CREATE TABLE IF NOT EXISTS raw.{q(src.name)} (\n    " + ",\n    ".join(cols) + "\n)"


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema, its bookkeeping tables and one table per source, if missing.

    A column added to the contract later is added to the existing table (NULL for rows loaded
    before); a changed type is not migrated silently but raises with what to do.
    """
    for ddl in BOOKKEEPING_DDL + IDENTITY_DDL:
        con.execute(ddl)
    existing: dict[str, dict[str, str]] = {}
    for table, column, dtype in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'raw' AND table_catalog = current_database()"
    ).fetchall():
        existing.setdefault(table, {})[column] = dtype
    for src in load_contract().values():
        if src.name not in existing:
            con.execute(source_table_ddl(src))
            continue
        have = existing[src.name]
        for col in src.columns:
            if col.name not in have:
                con.execute(f"ALTER TABLE raw.{q(src.name)} ADD COLUMN {q(col.name)} {col.duckdb_type}")
            elif have[col.name].replace(" ", "") != col.duckdb_type.replace(" ", ""):
                raise RuntimeError(
                    f"raw.{src.name}.{col.name} is {have[col.name]} in the warehouse but the contract "
                    f"now says {col.duckdb_type}; migrate the table (or rebuild raw from landing) first"
                )
