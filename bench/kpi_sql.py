"""retain's KPIs as hand-written DuckDB SQL: the lower bound the dbt stage is measured against.

It computes the same numbers as `marts.kpi_monthly`, `marts.retention_cohorts` and a
customer-level summary like `marts.dim_customers`, by the definitions in the model YAML
(valid orders only, calendar months in UTC, NULL on an empty denominator), straight from
the landing CSV files (`--landing`) or from the warehouse's `raw` tables (`--warehouse`).
Each source is read once, keeping only the columns the KPIs need, into an in-memory DuckDB
database; the three results are written as Parquet into `--out`.

Customers are counted per person, as the marts count them: every `customer_id` is first read
through an independent re-implementation of retain's identity rule (`IDENTITY_SQL` below;
docs/importing.md, "The marts count one customer per identity group").

Staging keeps the latest version of each key. Generated data holds every key once, so a plain
read gives the same rows; over data that re-sends changed records this script would count
each version, like an analyst reading the files would.

    python -m bench.kpi_sql --landing data/bench/s/landing --out /tmp/kpi_sql

Prints one JSON line: {"seconds": compute time without interpreter start-up, "rows": {...}}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb

from bench.common import NEEDED, NORMALISED, RESULTS, read_header, source_files
from pipelines.core.contract import SOURCE_NAMES, source
from pipelines.ingest.rules import EMAIL_RE, PHONE_DIGITS, PHONE_RE


def _csv_type(source_name: str, column: str) -> str:
    """The type to read a CSV column as: the contract's, with offsets honoured for timestamps."""
    col = source(source_name).column(column)
    return "TIMESTAMPTZ" if col.type == "timestamp" else col.duckdb_type


def _select_list(source_name: str, present: set[str], typed: bool) -> str:
    """Project the needed columns, casting and normalising; a column missing from the files is NULL."""
    parts = []
    for name in NEEDED[source_name]:
        col = source(source_name).column(name)
        if name not in present:
            expr = f"cast(null as {col.duckdb_type})"
        elif col.type == "timestamp" and not typed:
            # read as TIMESTAMPTZ so offsets count. Not `cast(... as timestamp)`: DuckDB pushes
            # that cast into the CSV reader, which then parses as TIMESTAMP and drops the offset
            expr = f"({name} at time zone 'UTC')"
        elif name in NORMALISED:
            expr = f"nullif(lower(trim({name})), '')"
        elif col.type == "varchar":
            expr = f"nullif(trim({name}), '')"
        else:
            expr = name
        parts.append(f"{expr} as {name}")
    return ", ".join(parts)


def load_landing(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    """Read each source's CSV (or Parquet) files once into a table `src_<source>` with the needed columns."""
    for name in NEEDED:
        files = source_files(landing, name)
        if files and files[0].name.lower().endswith(".parquet"):  # typed already: no text to parse
            file_list = "[" + ", ".join(f"'{f}'" for f in files) + "]"
            relation = f"read_parquet({file_list}, union_by_name = true)"
            present = {row[0] for row in con.execute(f"describe select * from {relation}").fetchall()}
            con.execute(f"create table src_{name} as select {_select_list(name, present, True)} from {relation}")
            continue
        headers = [read_header(f) for f in files]
        present = {c for h in headers for c in h}
        if not files:
            con.execute(f"create table src_{name} as select {_select_list(name, set(), True)} where false")
            continue
        # the needed columns typed, every other one text (never parsed, as it is not selected)
        types = {c: _csv_type(name, c) if c in NEEDED[name] else "VARCHAR" for h in headers for c in h}
        file_list = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        if all(h == headers[0] for h in headers):
            # one known layout: no sniffing (it costs more than reading a small file)
            columns = "{" + ", ".join(f"'{c}': '{types[c]}'" for c in headers[0]) + "}"
            options = f"header = true, columns = {columns}, auto_detect = false"
        else:
            type_map = "{" + ", ".join(f"'{c}': '{t}'" for c, t in types.items()) + "}"
            options = f"header = true, union_by_name = true, types = {type_map}"
        con.execute(
            f"""
            create table src_{name} as
            select {_select_list(name, present, False)}
            from read_csv({file_list}, {options})
            """
        )


def _landing_identity(con: duckdb.DuckDBPyConnection) -> None:
    """The identity rule's input from the contract's `customers/` files: every key a contract key.

    An email or phone that fails the contract's `format:` is nulled first, as ingestion nulls
    an invalid optional value (docs/ingestion.md), so it joins no group in raw either.
    """
    lo, hi = PHONE_DIGITS
    con.execute(
        f"""
        create table identity_customers as
        select customer_id as customer_key, 'retain' as platform,
               case when regexp_full_match(email, '{EMAIL_RE}') then email end as email,
               case when regexp_full_match(phone, '{PHONE_RE}')
                    and length(regexp_replace(phone, '[^0-9]', '', 'g')) between {lo} and {hi} then phone end as phone,
               cast(null as varchar) as platform_customer_id
        from src_customers
        where customer_id is not null
        """
    )


def load_warehouse(con: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
    """Read each source's `raw` table (typed by ingestion) into `src_<source>`."""
    con.execute(f"attach '{warehouse}' as wh (read_only)")
    for name in NEEDED:
        present = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_catalog = 'wh' and table_schema = 'raw' and table_name = ?",
                [name],
            ).fetchall()
        }
        if not present:
            con.execute(f"create table src_{name} as select {_select_list(name, set(), True)} where false")
        else:
            con.execute(f"create table src_{name} as select {_select_list(name, present, True)} from wh.raw.{name}")
    _warehouse_identity(con)
    con.execute("detach wh")


def _warehouse_identity(con: duckdb.DuckDBPyConnection) -> None:
    """The identity rule's input from `raw.customers`: each key with its platform (its landing
    folder; `retain` for the contract's folders), email, phone and platform customer id."""
    columns = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_catalog = 'wh' and table_schema = 'raw' and table_name = 'customers'"
        ).fetchall()
    }
    if not columns:
        con.execute(
            "create table identity_customers (customer_key varchar, platform varchar, email varchar, "
            "phone varchar, platform_customer_id varchar)"
        )
        return
    contract_folders = ", ".join(f"'{n}'" for n in SOURCE_NAMES)
    folder = "split_part(_source_file, '/', 1)" if "_source_file" in columns else "'customers'"
    platform_id = "_extra->>'$.platform_customer_id'" if "_extra" in columns else "cast(null as varchar)"
    email = "email" if "email" in columns else "cast(null as varchar)"
    phone = "phone" if "phone" in columns else "cast(null as varchar)"
    con.execute(
        f"""
        create table identity_customers as
        select customer_id as customer_key,
               case when {folder} in ({contract_folders}) then 'retain' else {folder} end as platform,
               {email} as email, {phone} as phone, {platform_id} as platform_customer_id
        from wh.raw.customers
        where customer_id is not null
        """
    )


# retain's identity rule (docs/importing.md, "The marts count one customer per identity group",
# and the `raw._customer_identity` bullet above it), written again from the documentation (the
# exact email and phone shapes from the docstrings of `pipelines/importers/identity.py`), not
# calling the loader's code:
# - an email is usable when, trimmed and lower-cased, it is `x@y.z`-shaped without a space; its
#   key is `em_` + the first 20 hex digits of its md5; a phone is E.164 when it starts with `+`
#   (8-15 digits) or `00` (10-17 digits, the `00` dropped) and is otherwise only digits and
#   ` ()./-`; its key is `ph_` + md5 likewise;
# - the keys are every customer_id of the customers, and the platform id of a person keyed by email;
# - a key with an email resolves to its email's key; one without joins the (smallest) email key
#   carrying the same platform id, else the same E.164 phone, else the phone's own key, else
#   stays itself;
# - a group (keys resolving alike) holding a contract customer takes the smallest contract id.
# Every customer_id of orders, tickets and customers then reads through it (unknown keys stay).
IDENTITY_SQL = r"""
create table identity_input as
with normalised as (
    select
        customer_key,
        platform,
        platform_customer_id,
        lower(trim(email)) as e,
        trim(phone) as p,
        regexp_replace(trim(phone), '[^0-9]', '', 'g') as digits
    from identity_customers
),
parsed as (
    select
        customer_key,
        platform,
        platform_customer_id,
        case when e like '%_@_%._%' and not contains(e, ' ') then e end as email,
        case
            when not regexp_full_match(p, '\+?[0-9][0-9 ()./-]+[0-9]') then null
            when starts_with(p, '+') and length(digits) between 8 and 15 then '+' || digits
            when starts_with(p, '00') and length(digits) between 10 and 17 then '+' || substr(digits, 3)
        end as phone
    from normalised
)
select customer_key, platform, platform_customer_id, email, phone from parsed
union all
-- a person keyed by email is found by their platform id too
select platform_customer_id, platform, platform_customer_id, email, phone from parsed
where platform_customer_id is not null and platform_customer_id <> customer_key;

create table identity as
with keyed as (
    select
        customer_key,
        bool_or(platform = 'retain') as is_contract,
        max(email) as email,
        max(phone) as phone,
        max(platform_customer_id) as platform_customer_id
    from identity_input
    group by customer_key
),
email_keys as (
    select *, 'em_' || left(md5(email), 20) as email_key from keyed
),
first_by_platform_id as (
    select platform_customer_id, min(email_key) as email_key
    from email_keys where email is not null and platform_customer_id is not null
    group by 1
),
first_by_phone as (
    select phone, min(email_key) as email_key
    from email_keys where email is not null and phone is not null
    group by 1
),
grouped as (
    select
        k.customer_key,
        k.is_contract,
        case
            when k.email is not null then k.email_key
            when by_id.email_key is not null then by_id.email_key
            when by_phone.email_key is not null then by_phone.email_key
            when k.phone is not null then 'ph_' || left(md5(k.phone), 20)
            else k.customer_key
        end as group_id
    from email_keys as k
    left join first_by_platform_id as by_id on by_id.platform_customer_id = k.customer_key
    left join first_by_phone as by_phone on by_phone.phone = k.phone
),
contract_ids as (
    select group_id, min(customer_key) as contract_id from grouped where is_contract group by 1
)
select g.customer_key, coalesce(c.contract_id, g.group_id) as customer_id
from grouped as g
left join contract_ids as c on c.group_id = g.group_id;
"""

#: Every customer_id read through `identity` (customer_key -> customer_id), as staging reads
#: them; a key no customer row names stays. One customers row per person.
APPLY_IDENTITY_SQL = """
-- every customer_id as the marts count it, and one customers row per person
create or replace table src_orders as
select s.* replace (coalesce(i.customer_id, s.customer_id) as customer_id)
from src_orders as s left join identity as i on i.customer_key = s.customer_id;
create or replace table src_support_tickets as
select s.* replace (coalesce(i.customer_id, s.customer_id) as customer_id)
from src_support_tickets as s left join identity as i on i.customer_key = s.customer_id;
create or replace table src_customers as
select distinct coalesce(i.customer_id, c.customer_id) as customer_id
from src_customers as c
left join identity as i on i.customer_key = c.customer_id;
"""


KPI_SQL = """
-- valid orders: every status but cancelled; a missing status means placed
create table valid_orders as
select
    order_id,
    customer_id,
    ordered_at,
    cast(total as decimal(18, 2)) as total,
    promised_delivery_date,
    delivered_at,
    cast(date_trunc('month', ordered_at) as date) as order_month,
    cast(date_trunc('month', delivered_at) as date) as delivery_month
from src_orders
where coalesce(status, 'placed') <> 'cancelled';

create table complaints as
select * from src_support_tickets where ticket_type = 'complaint';

-- "the latest order in the data": as-of date and the last cohort column
create table bounds as
select
    cast(max(ordered_at) as date) as as_of_date,
    cast(date_trunc('month', max(ordered_at)) as date) as last_order_month
from src_orders;

-- per customer: counts, revenue, first and second valid order (for repeat rates)
create table customer_orders as
select
    customer_id,
    count(*) as orders_count,
    sum(total) as lifetime_revenue,
    min(ordered_at) as first_order_at,
    max(ordered_at) as last_order_at,
    list_sort(list(ordered_at))[2] as second_order_at
from valid_orders
group by customer_id;

create table customer_months as
select distinct customer_id, order_month from valid_orders;

create table months as
-- the calendar runs from the first to the last month with any event (cancelled orders too)
with event_months as (
    select cast(date_trunc('month', ordered_at) as date) as m from src_orders
    union all select cast(date_trunc('month', delivered_at) as date) from src_orders
    union all select cast(date_trunc('month', responded_at) as date) from src_survey_responses
    union all select cast(date_trunc('month', created_at) as date) from src_reviews
    union all select cast(date_trunc('month', created_at) as date) from src_support_tickets
)
select cast(unnest(generate_series(min(m), max(m), interval 1 month)) as date) as month
from event_months
having min(m) is not null;

create table kpi_monthly as
with
ord as (
    select
        order_month as month,
        count(*) as orders,
        count(distinct customer_id) as customers_ordering,
        sum(total) as revenue
    from valid_orders
    group by 1
),
firsts as (
    select
        cast(date_trunc('month', first_order_at) as date) as month,
        count(*) as new_customers
    from customer_orders
    group by 1
),
seconds as (
    select cast(date_trunc('month', second_order_at) as date) as month, count(*) as second_orders
    from customer_orders
    where second_order_at is not null
    group by 1
),
returners as (
    select cur.order_month as month, count(*) as returning_customers
    from customer_months as cur
    inner join customer_months as prev
        on prev.customer_id = cur.customer_id
        and prev.order_month = cast(cur.order_month - interval 1 month as date)
    group by 1
),
deliveries as (
    select
        valid_orders.delivery_month as month,
        count(*) filter (where promised_delivery_date is not null) as promised,
        count(*) filter (
            where promised_delivery_date is not null and cast(delivered_at as date) <= promised_delivery_date
        ) as on_time,
        count(*) as delivered,
        count(returned.order_id) as returned
    from valid_orders
    left join (
        -- a rejected return request is not a return
        select distinct order_id from src_returns where coalesce(status, '') <> 'rejected'
    ) as returned on returned.order_id = valid_orders.order_id
    where delivered_at is not null
    group by 1
),
surveys as (
    select
        cast(date_trunc('month', responded_at) as date) as month,
        count(*) filter (where survey_type = 'nps') as nps_responses,
        count(*) filter (where survey_type = 'nps' and score >= 9) as promoters,
        count(*) filter (where survey_type = 'nps' and score <= 6) as detractors,
        count(*) filter (where survey_type = 'csat') as csat_responses,
        count(*) filter (where survey_type = 'csat' and score >= 4) as csat_satisfied
    from src_survey_responses
    group by 1
),
review_months as (
    select cast(date_trunc('month', created_at) as date) as month, avg(rating) as avg_review_rating
    from src_reviews
    group by 1
),
complaint_months as (
    select
        cast(date_trunc('month', created_at) as date) as month,
        count(*) as complaints,
        count(resolved_at) as resolved,
        quantile_cont(
            (epoch(first_response_at) - epoch(created_at)) / 3600.0, 0.5
        ) as median_hours_to_first_response,
        quantile_cont((epoch(resolved_at) - epoch(created_at)) / 3600.0, 0.5) as median_hours_to_resolution,
        count(*) filter (
            where resolved_at is not null and agent_replies = 1 and reopen_count = 0
        ) as first_contact_resolved
    from complaints
    group by 1
),
wismo as (
    select cast(date_trunc('month', created_at) as date) as month, count(*) as wismo_tickets
    from src_support_tickets
    where category = 'wismo'
    group by 1
),
spine as (
    select
        months.month,
        coalesce(ord.orders, 0) as orders,
        coalesce(ord.customers_ordering, 0) as customers_ordering,
        coalesce(ord.revenue, 0) as revenue,
        coalesce(firsts.new_customers, 0) as new_customers,
        sum(coalesce(firsts.new_customers, 0)) over (order by months.month) as customers_to_date,
        sum(coalesce(seconds.second_orders, 0)) over (order by months.month) as repeat_customers_to_date,
        lag(coalesce(ord.customers_ordering, 0)) over (order by months.month) as prev_customers_ordering,
        coalesce(returners.returning_customers, 0) as returning_customers
    from months
    left join ord on ord.month = months.month
    left join firsts on firsts.month = months.month
    left join seconds on seconds.month = months.month
    left join returners on returners.month = months.month
)
select
    spine.month,
    spine.orders,
    spine.customers_ordering,
    spine.new_customers,
    cast(spine.revenue as double) as revenue,
    cast(spine.revenue as double) / nullif(spine.orders, 0) as avg_order_value,
    spine.returning_customers / nullif(spine.prev_customers_ordering, 0) as returning_customer_rate,
    spine.repeat_customers_to_date / nullif(spine.customers_to_date, 0) as repeat_purchase_rate,
    deliveries.on_time / nullif(deliveries.promised, 0) as on_time_delivery_rate,
    100.0 * (surveys.promoters - surveys.detractors) / nullif(surveys.nps_responses, 0) as nps,
    100.0 * surveys.csat_satisfied / nullif(surveys.csat_responses, 0) as csat,
    cast(review_months.avg_review_rating as double) as avg_review_rating,
    coalesce(complaint_months.complaints, 0) as complaints,
    complaint_months.resolved / nullif(complaint_months.complaints, 0) as complaint_resolution_rate,
    complaint_months.median_hours_to_first_response,
    complaint_months.median_hours_to_resolution,
    complaint_months.first_contact_resolved / nullif(complaint_months.resolved, 0)
        as first_contact_resolution_rate,
    100.0 * coalesce(wismo.wismo_tickets, 0) / nullif(spine.orders, 0) as wismo_per_100_orders,
    deliveries.returned / nullif(deliveries.delivered, 0) as return_rate
from spine
left join deliveries on deliveries.month = spine.month
left join surveys on surveys.month = spine.month
left join review_months on review_months.month = spine.month
left join complaint_months on complaint_months.month = spine.month
left join wismo on wismo.month = spine.month
order by spine.month;

create table retention_cohorts as
with
cohorts as (
    select customer_id, cast(date_trunc('month', first_order_at) as date) as cohort_month
    from customer_orders
),
sizes as (
    select cohort_month, count(*) as cohort_size from cohorts group by 1
),
grid as (
    select
        sizes.cohort_month,
        sizes.cohort_size,
        unnest(range(0, date_diff('month', sizes.cohort_month, bounds.last_order_month) + 1))
            as months_since_first_order
    from sizes cross join bounds
),
active as (
    select
        cohorts.cohort_month,
        date_diff('month', cohorts.cohort_month, customer_months.order_month) as months_since_first_order,
        count(*) as active_customers
    from customer_months
    inner join cohorts on cohorts.customer_id = customer_months.customer_id
    group by 1, 2
)
select
    grid.cohort_month,
    cast(grid.months_since_first_order as bigint) as months_since_first_order,
    grid.cohort_size,
    coalesce(active.active_customers, 0) as active_customers,
    coalesce(active.active_customers, 0) / grid.cohort_size as retention_rate
from grid
left join active
    on active.cohort_month = grid.cohort_month
    and active.months_since_first_order = grid.months_since_first_order
order by 1, 2;

create table customers as
with complaint_counts as (
    select customer_id, count(*) as complaints_count from complaints group by 1
)
select
    c.customer_id,
    coalesce(o.orders_count, 0) as orders_count,
    cast(coalesce(o.lifetime_revenue, 0) as double) as lifetime_revenue,
    o.first_order_at,
    o.last_order_at,
    date_diff('day', cast(o.last_order_at as date), bounds.as_of_date) as days_since_last_order,
    coalesce(cc.complaints_count, 0) as complaints_count
from src_customers as c
cross join bounds
left join customer_orders as o on o.customer_id = c.customer_id
left join complaint_counts as cc on cc.customer_id = c.customer_id
order by c.customer_id;
"""


def compute(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Run the KPI SQL over the loaded `src_*` tables; returns each result's row count."""
    con.execute(KPI_SQL)
    return {name: con.execute(f"select count(*) from {name}").fetchone()[0] for name in RESULTS}


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the session time zone set to UTC (months are UTC months)."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    # row order of intermediate tables does not matter; results are ordered explicitly
    con.execute("set preserve_insertion_order = false")
    return con


def run(out: Path, landing: Path | None = None, warehouse: Path | None = None) -> dict:
    """Load the sources, compute the KPIs, write `<out>/<result>.parquet`; return seconds and row counts."""
    start = time.perf_counter()
    con = connect()
    if landing is not None:
        load_landing(con, landing)
        _landing_identity(con)
    elif warehouse is not None:
        load_warehouse(con, warehouse)
    else:
        raise ValueError("give landing or warehouse")
    con.execute(IDENTITY_SQL)
    con.execute(APPLY_IDENTITY_SQL)
    loaded = time.perf_counter()
    rows = compute(con)
    out.mkdir(parents=True, exist_ok=True)
    for name in RESULTS:
        con.execute(f"copy {name} to '{out / name}.parquet' (format parquet)")
    con.close()
    end = time.perf_counter()
    return {"seconds": end - start, "load_seconds": loaded - start, "rows": rows}


def main() -> None:
    """Command line: `python -m bench.kpi_sql (--landing DIR | --warehouse FILE) --out DIR`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--landing", type=Path, help="landing folder with one sub-folder of CSV files per source")
    group.add_argument("--warehouse", type=Path, help="retain warehouse: read its raw tables")
    parser.add_argument("--out", type=Path, required=True, help="folder for the Parquet results")
    args = parser.parse_args()
    print(json.dumps(run(args.out, landing=args.landing, warehouse=args.warehouse)), flush=True)


if __name__ == "__main__":
    main()
