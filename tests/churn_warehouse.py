"""Warehouses for the churn tests and benchmarks, built directly in DuckDB.

They hold the tables the churn model reads, with the names and column types the dbt models
produce (`marts.fct_orders` and the `staging.stg_*` tables, whose columns come from the data
contract), so the `ml` library can be tested without running ingestion and dbt:
`generated_warehouse` loads the synthetic shop generator's files, `create_tables` +
`insert` build hand-written cases.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.core.contract import source

FCT_ORDERS_COLUMNS = {
    "order_id": "VARCHAR",
    "customer_id": "VARCHAR",
    "ordered_at": "TIMESTAMP",
    "status": "VARCHAR",
    "is_valid": "BOOLEAN",
    "total": "DECIMAL(18, 2)",
    "discount": "DECIMAL(18, 2)",
    "sales_channel": "VARCHAR",
    "promised_delivery_date": "DATE",
    "delivered_at": "TIMESTAMP",
    "is_delivered_on_time": "BOOLEAN",
    "delivery_delay_days": "INTEGER",
}

STAGING_TABLES = {
    "customers": "stg_shop__customers",
    "returns": "stg_shop__returns",
    "messages": "stg_messaging__messages",
    "survey_responses": "stg_surveys__survey_responses",
    "reviews": "stg_reviews__reviews",
    "support_tickets": "stg_helpdesk__support_tickets",
}


def create_tables(con, extras: bool = True) -> None:
    """Create empty `marts.fct_orders` and (with `extras`) the staging tables, contract-typed."""
    con.execute("create schema if not exists marts")
    con.execute("create schema if not exists staging")
    cols = ", ".join(f"{name} {typ}" for name, typ in FCT_ORDERS_COLUMNS.items())
    con.execute(f"create or replace table marts.fct_orders ({cols})")
    if extras:
        for src_name, table in STAGING_TABLES.items():
            src = source(src_name)
            cols = ", ".join(f'"{c.name}" {c.duckdb_type}' for c in src.columns)
            con.execute(f"create or replace table staging.{table} ({cols})")


def insert(con, table: str, frame: pd.DataFrame) -> None:
    """Append a DataFrame to a table by column name (missing columns stay NULL)."""
    con.register("_frame", frame)
    con.execute(f"insert into {table} by name select * from _frame")
    con.unregister("_frame")


def _reader(landing: Path, name: str) -> str:
    """A typed DuckDB table expression over one source's files (parquet or CSV) in `landing/<name>/`."""
    src = source(name)
    parquet = sorted((landing / name).glob("*.parquet"))
    if parquet:
        cols = ", ".join(f'cast("{c.name}" as {c.duckdb_type}) as "{c.name}"' for c in src.columns)
        return f"(select {cols} from read_parquet([{', '.join(repr(str(f)) for f in parquet)}]))"
    files = sorted((landing / name).glob("*.csv*"))
    if not files:
        raise FileNotFoundError(f"no landing files for {name} in {landing / name}")
    types = "{" + ", ".join(f"'{c.name}': '{c.duckdb_type}'" for c in src.columns) + "}"
    return (f"read_csv([{', '.join(repr(str(f)) for f in files)}], header = true, columns = {types}, "
            "auto_detect = false)")


def load_landing(con, landing: Path, sources: tuple[str, ...] | None = None) -> None:
    """Build `marts.fct_orders` and the `staging.stg_*` tables from generator landing files.

    A stand-in for ingestion + dbt with the same table names and column types: every source
    is read typed from the data contract, keys keep their latest version (by `updated_at`),
    and fct_orders adds is_valid and the delivery columns. `sources` limits which non-order
    tables are built (() = orders only).
    """
    con.execute("create schema if not exists marts")
    con.execute("create schema if not exists staging")
    wanted = tuple(STAGING_TABLES) if sources is None else sources
    for name in ("orders", *wanted):
        src = source(name)
        keys = ", ".join(src.primary_key)
        order = f"{src.updated_at} desc nulls last" if src.updated_at else "1"
        target = "staging.stg_shop__orders" if name == "orders" else f"staging.{STAGING_TABLES[name]}"
        con.execute(f"""
            create or replace table {target} as
            select * from {_reader(Path(landing), name)}
            where {' and '.join(f'{k} is not null' for k in src.primary_key)}
            qualify row_number() over (partition by {keys} order by {order}) = 1
        """)
    con.execute("""
        create or replace table marts.fct_orders as
        select order_id, customer_id, ordered_at, coalesce(status, 'placed') as status,
               coalesce(status, 'placed') <> 'cancelled' as is_valid, total, discount, sales_channel,
               promised_delivery_date, delivered_at,
               case when delivered_at is not null
                    then cast(delivered_at as date) <= promised_delivery_date end as is_delivered_on_time,
               case when delivered_at is not null
                    then greatest(cast(delivered_at as date) - promised_delivery_date, 0) end as delivery_delay_days
        from staging.stg_shop__orders
        where customer_id is not null and ordered_at is not null and total is not null
    """)
    con.execute("drop table staging.stg_shop__orders")


def generated_warehouse(con, folder: Path, customers: int, seed: int, orders_only: bool = False) -> None:
    """Run the synthetic shop generator into `folder` and load its files into `con`."""
    from pipelines.generate import generate

    generate(Path(folder), customers=customers, seed=seed, fmt="parquet", clean=True)
    load_landing(con, Path(folder), () if orders_only else None)
