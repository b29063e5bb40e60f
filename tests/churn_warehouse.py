"""Warehouses for the churn tests and benchmarks, built directly in DuckDB.

They hold the tables the churn model reads, with the names the dbt models produce, so the `ml`
library can be tested without running ingestion and dbt: `marts.fct_orders`, the source
tables as `staging.stg_*` (columns from the data contract), and over them views standing in
for the other marts the features read (`MART_VIEWS`: `marts.fct_support_tickets`,
`fct_messages`, `fct_feedback`, `fct_returns`, `dim_customers`), whose flags join the very
seeds dbt joins (seeds/*.csv). A test changes the `staging.stg_*` rows and the marts follow.
`generated_warehouse` loads the synthetic shop generator's files, `create_tables` + `insert`
build hand-written cases. The real marts are tested against these in tests/test_churn.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.core.contract import source
from pipelines.core.rules import SEEDS_DIR

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


def _seed(name: str) -> str:
    return f"read_csv('{SEEDS_DIR / (name + '.csv')}', header = true, auto_detect = true)"


#: Stand-ins for the marts `ml.features` reads besides fct_orders, over the staging tables.
MART_VIEWS = {
    "marts.dim_customers": """
        select customer_id, country, is_test_account, erasure_requested_at, updated_at as consent_updated_at
        from staging.stg_shop__customers""",
    "marts.fct_returns": """
        select r.*, o.customer_id from staging.stg_shop__returns r left join marts.fct_orders o using (order_id)""",
    "marts.fct_messages": f"""
        select m.*, coalesce(m.direction, 'outbound') = 'outbound' as is_outbound,
               coalesce(t.needs_marketing_consent, false) as needs_marketing_consent,
               coalesce(t.is_marketing_contact, false) as is_marketing_contact
        from staging.stg_messaging__messages m left join {_seed('message_types')} t using (message_type)""",
    "marts.fct_support_tickets": f"""
        select s.*, case when s.ticket_type is not null then coalesce(t.is_complaint, false) end as is_complaint,
               case when s.category is not null then coalesce(c.is_wismo, false) end as is_wismo,
               s.resolved_at is not null as is_resolved,
               s.resolved_at is null and coalesce(s.status, 'open') not in ('solved', 'closed') as is_open
        from staging.stg_helpdesk__support_tickets s
        left join {_seed('ticket_types')} t on t.ticket_type = s.ticket_type
        left join {_seed('ticket_categories')} c on c.category = s.category""",
    "marts.fct_feedback": f"""
        with f as (
            select response_id as source_id, survey_type as feedback_type, customer_id, order_id, score,
                   responded_at as submitted_at
            from staging.stg_surveys__survey_responses
            union all
            select review_id, 'review', customer_id, order_id, rating, created_at from staging.stg_reviews__reviews
        )
        select f.*, b.sentiment, b.nps_band, coalesce(b.nps_band = 'detractor', false) as is_detractor,
               coalesce(b.nps_band = 'promoter', false) as is_promoter,
               coalesce(f.feedback_type in ('nps', 'csat') and b.sentiment = 'negative', false) as is_dissatisfied
        from f left join {_seed('feedback_bands')} b
          on b.feedback_type = f.feedback_type and f.score between b.score_min and b.score_max""",
}


def create_mart_views(con) -> None:
    """The `MART_VIEWS` over the staging tables there are (a view of a missing table is left out)."""
    have = {f"{s}.{t}" for s, t in con.execute("select table_schema, table_name from information_schema.tables")
            .fetchall()}
    for name, sql in MART_VIEWS.items():
        needs = [f"staging.{t}" for t in STAGING_TABLES.values() if f"staging.{t}" in sql]
        if all(n in have for n in needs):
            con.execute(f"create or replace view {name} as {sql}")


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
        create_mart_views(con)


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
    create_mart_views(con)


def generated_warehouse(con, folder: Path, customers: int, seed: int, orders_only: bool = False) -> None:
    """Run the synthetic shop generator into `folder` and load its files into `con`."""
    from pipelines.generate import generate

    generate(Path(folder), customers=customers, seed=seed, fmt="parquet", clean=True)
    load_landing(con, Path(folder), () if orders_only else None)
