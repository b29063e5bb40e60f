"""dbt build versus the same KPIs as hand-written DuckDB SQL over the raw tables, side by side.

    python -m bench.bench_dbt --customers 100000
    python -m bench.bench_dbt --customers 1000000 --synthetic   # SQL-synthesised raw data, faster

Steps: make a raw warehouse (the generator's landing files loaded by real ingestion, or with
`--synthetic` the test fixture's vectorised SQL shop), copy it twice, then in separate processes
(wall time and peak memory measured the same way, bench.common.run_measured):

1. `dbt build --select <KPI marts and everything upstream>` (on a copy holding only `raw`): models, unit tests
   and data tests for exactly the marts the hand SQL computes (the target: ≤ 2× the hand SQL);
2. the whole `dbt build` (every mart, including the dashboard's), for reference;
3. HAND_SQL below: the same KPIs written directly in DuckDB's dialect (QUALIFY, FILTER,
   generate_series), no tests, on the other copy.

Then it checks that the hand SQL and dbt produce the same numbers, mart by mart, and prints a
table and one JSON line. `--keep DIR` keeps the warehouses; `--raw FILE` reuses a raw warehouse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench.common import run_measured
from pipelines.core.config import PROJECT_ROOT

#: The marts the hand SQL reproduces; dbt builds them with everything upstream (`+mart`).
KPI_MARTS = (
    "fct_orders", "fct_support_tickets", "dim_customers", "kpi_monthly", "retention_cohorts",
    "message_engagement_monthly", "complaint_recovery", "repurchase_by_delivery",
    "repurchase_by_nps_band", "repurchase_by_message_exposure",
)

#: The KPIs by hand: one script, DuckDB dialect, straight from raw. Same definitions as the
#: model YAML (docs/kpis.md), written independently of the dbt models. Every customer id is read
#: through the identity table ingestion writes (`raw._customer_identity`: one customer per
#: person), as staging reads it (`RESOLVED` below).
HAND_SQL = r"""
create schema if not exists hand;

create or replace table hand.identity as
select customer_key as identity_key, min(customer_id) as identity_customer_id
from raw._customer_identity group by 1;

create or replace table hand.orders as
select
    coalesce(nullif(trim(order_id), ''), md5(trim(customer_id) || '|' || cast(ordered_at as varchar) || '|'
        || cast(total as varchar) || '|' || _source_file || '|' || cast(_source_row as varchar))) as order_id,
    {RESOLVED} as customer_id, ordered_at, total, discount, sales_channel, currency,
    coalesce(nullif(lower(trim(status)), ''), 'placed') as status,
    coalesce(nullif(lower(trim(status)), ''), 'placed') <> 'cancelled' as valid,
    promised_delivery_date, delivered_at
from raw.orders
qualify row_number() over (
    partition by coalesce(nullif(trim(order_id), ''), _source_file || '#' || cast(_source_row as varchar))
    order by updated_at desc nulls last, _load_id desc, _source_row desc) = 1;

create or replace table hand.returns_by_order as
select trim(order_id) as order_id,
    bool_or(coalesce(lower(trim(status)), '') <> 'rejected') as has_return,
    coalesce(sum(refund_amount) filter (where refunded_at is not null or lower(trim(status)) = 'refunded'), 0)
        as refund_amount
from (from raw.returns qualify row_number() over (partition by return_id order by _load_id desc, _source_row desc) = 1)
group by 1;

create or replace table hand.fct_orders as
with v as (
    select order_id,
        row_number() over w as seq,
        lag(ordered_at) over w as previous_at
    from hand.orders where valid
    window w as (partition by customer_id order by ordered_at, order_id)
),
nxt as (
    select customer_id, ordered_at, lead(ordered_at) over (partition by customer_id order by ordered_at) as next_at
    from (select distinct customer_id, ordered_at from hand.orders where valid)
)
select o.*, v.seq, v.previous_at, date_diff('day', v.previous_at, o.ordered_at) as days_since_previous,
    case when o.valid then nxt.next_at end as next_at,
    cast(o.delivered_at as date) <= o.promised_delivery_date as on_time,
    coalesce(r.has_return, false) as has_return, coalesce(r.refund_amount, 0) as refund_amount
from hand.orders o
left join v using (order_id)
left join nxt on o.customer_id = nxt.customer_id and o.ordered_at = nxt.ordered_at
left join hand.returns_by_order r using (order_id);

create or replace table hand.tickets as
select trim(ticket_id) as ticket_id, {RESOLVED} as customer_id, created_at, first_response_at,
    resolved_at, lower(trim(ticket_type)) = 'complaint' as complaint, lower(trim(category)) = 'wismo' as wismo,
    resolved_at is null and coalesce(lower(trim(status)), 'open') not in ('solved', 'closed') as is_open,
    (epoch(first_response_at) - epoch(created_at)) / 3600 as hours_first_response,
    (epoch(resolved_at) - epoch(created_at)) / 3600 as hours_resolution,
    case when resolved_at is not null then coalesce(agent_replies = 1 and reopen_count = 0, false) end as fcr
from raw.support_tickets
qualify row_number() over (
    partition by ticket_id order by updated_at desc nulls last, _load_id desc, _source_row desc) = 1;

create or replace table hand.surveys as
select trim(response_id) as response_id, {RESOLVED} as customer_id, lower(trim(survey_type)) as kind,
    score, responded_at
from raw.survey_responses
qualify row_number() over (partition by response_id order by _load_id desc, _source_row desc) = 1;

create or replace table hand.reviews as
select {RESOLVED} as customer_id, rating, created_at
from raw.reviews
qualify row_number() over (partition by review_id order by _load_id desc, _source_row desc) = 1;

create or replace table hand.messages as
select trim(message_id) as message_id, {RESOLVED} as customer_id, nullif(trim(order_id), '') as order_id,
    lower(trim(channel)) as channel, lower(trim(message_type)) as message_type,
    coalesce(nullif(lower(trim(direction)), ''), 'outbound') = 'outbound' as outbound, sent_at,
    coalesce(delivered_at, opened_at, clicked_at, unsubscribed_at) is not null as delivered,
    coalesce(opened_at, clicked_at) is not null as opened,
    clicked_at is not null as clicked, unsubscribed_at is not null as unsubscribed
from raw.messages
qualify row_number() over (partition by message_id order by _load_id desc, _source_row desc) = 1;

create or replace table hand.data_end as select max(ordered_at) as end_at from hand.orders;

create or replace table hand.kpi_monthly as
with v as (select * from hand.fct_orders where valid),
events as (
    select date_trunc('month', ordered_at) as m from hand.orders
    union all select date_trunc('month', delivered_at) from hand.orders
    union all select date_trunc('month', created_at) from hand.tickets
    union all select date_trunc('month', responded_at) from hand.surveys
    union all select date_trunc('month', created_at) from hand.reviews
),
months as (
    select cast(unnest(generate_series(min(m), max(m), interval 1 month)) as date) as month from events
),
o as (
    select cast(date_trunc('month', ordered_at) as date) as month, count(*) as orders,
        count(distinct customer_id) as customers, sum(total) as revenue,
        count(*) filter (where seq = 1) as new_customers, count(*) filter (where seq = 2) as second_orders
    from v group by 1
),
cm as (select distinct customer_id, cast(date_trunc('month', ordered_at) as date) as month from v),
ret as (
    select a.month, count(*) as came_back
    from cm a join cm b on a.customer_id = b.customer_id and b.month = a.month - interval 1 month
    group by 1
),
d as (
    select cast(date_trunc('month', delivered_at) as date) as month, count(*) as delivered,
        count(*) filter (where has_return) as returned,
        count(*) filter (where promised_delivery_date is not null) as promised,
        count(*) filter (where on_time) as on_time
    from v where delivered_at is not null group by 1
),
s as (
    select cast(date_trunc('month', responded_at) as date) as month,
        count(*) filter (where kind = 'nps') as nps_n,
        count(*) filter (where kind = 'nps' and score >= 9) - count(*) filter (where kind = 'nps' and score <= 6)
            as nps_net,
        count(*) filter (where kind = 'csat') as csat_n,
        count(*) filter (where kind = 'csat' and score >= 4) as csat_ok
    from hand.surveys group by 1
),
r as (select cast(date_trunc('month', created_at) as date) as month, avg(rating) as rating
      from hand.reviews group by 1),
t as (
    select cast(date_trunc('month', created_at) as date) as month,
        count(*) filter (where complaint) as complaints,
        count(*) filter (where complaint and resolved_at is not null) as resolved,
        count(*) filter (where complaint and fcr) as fcr,
        median(hours_first_response) filter (where complaint) as med_first,
        median(hours_resolution) filter (where complaint) as med_resolution,
        count(*) filter (where wismo) as wismo
    from hand.tickets group by 1
),
j as (
    select months.month, coalesce(o.orders, 0) as orders, coalesce(o.customers, 0) as customers,
        coalesce(o.new_customers, 0) as new_customers, coalesce(o.revenue, 0) as revenue,
        coalesce(ret.came_back, 0) as came_back,
        lag(coalesce(o.customers, 0)) over (order by months.month) as customers_before,
        sum(coalesce(o.new_customers, 0)) over (order by months.month) as to_date,
        sum(coalesce(o.second_orders, 0)) over (order by months.month) as repeat_to_date,
        d.*, s.*, r.rating, t.*
    from months
    left join o using (month) left join ret using (month) left join d using (month)
    left join s using (month) left join r using (month) left join t using (month)
)
select month, orders, customers as customers_ordering, new_customers, revenue,
    revenue / nullif(orders, 0) as avg_order_value,
    came_back / nullif(customers_before, 0) as returning_customer_rate,
    repeat_to_date / nullif(to_date, 0) as repeat_purchase_rate,
    on_time / nullif(promised, 0) as on_time_delivery_rate,
    100 * nps_net / nullif(nps_n, 0) as nps,
    100 * csat_ok / nullif(csat_n, 0) as csat,
    rating as avg_review_rating,
    coalesce(complaints, 0) as complaints,
    resolved / nullif(complaints, 0) as complaint_resolution_rate,
    med_first as median_hours_to_first_response,
    med_resolution as median_hours_to_resolution,
    fcr / nullif(resolved, 0) as first_contact_resolution_rate,
    100 * coalesce(wismo, 0) / nullif(orders, 0) as wismo_per_100_orders,
    returned / nullif(delivered, 0) as return_rate
from j;

create or replace table hand.retention_cohorts as
with cm as (select distinct customer_id, cast(date_trunc('month', ordered_at) as date) as month
            from hand.orders where valid),
c as (select customer_id, min(month) as cohort from cm group by 1),
sizes as (select cohort, count(*) as size from c group by 1),
grid as (
    select cohort, size, unnest(range(date_diff('month', cohort,
        cast(date_trunc('month', (select end_at from hand.data_end)) as date)) + 1)) as k
    from sizes
),
act as (select cohort, date_diff('month', cohort, month) as k, count(*) as active from cm join c using (customer_id)
        group by 1, 2)
select cohort as cohort_month, k as months_since_first_order, size as cohort_size,
    coalesce(active, 0) as active_customers, coalesce(active, 0) / size as retention_rate
from grid left join act using (cohort, k);

create or replace table hand.dim_customers as
with ids as (
    select {RESOLVED} as customer_id from raw.customers
    union select customer_id from hand.orders union select customer_id from hand.tickets
    union select customer_id from hand.surveys union select customer_id from hand.reviews
    union select customer_id from hand.messages
),
o as (
    select customer_id, min(ordered_at) as first_at, max(ordered_at) as last_at, count(*) as n,
        sum(total) as revenue, sum(refund_amount) as refunds, count(*) filter (where not on_time) as late
    from hand.fct_orders where valid group by 1
),
as_of as (select coalesce(cast(:as_of as date), cast(end_at as date)) as d
         from hand.data_end),
t as (select customer_id, count(*) filter (where complaint) as complaints,
          count(*) filter (where is_open) as open_tickets
      from hand.tickets group by 1),
s as (select customer_id,
        arg_max(score, (responded_at, response_id)) filter (where kind = 'nps') as nps,
        arg_max(score, (responded_at, response_id)) filter (where kind = 'csat') as csat
      from hand.surveys group by 1),
r as (select customer_id, avg(rating) as rating from hand.reviews group by 1),
m as (select customer_id, max(sent_at) as last_message_at from hand.messages where outbound group by 1)
select ids.customer_id, coalesce(o.n, 0) as orders_count, coalesce(o.revenue, 0) as lifetime_revenue,
    coalesce(o.refunds, 0) as lifetime_refunds, o.revenue / o.n as avg_order_value,
    date_diff('day', o.first_at, o.last_at) / nullif(o.n - 1, 0) as avg_days_between_orders,
    date_diff('day', cast(o.last_at as date), as_of.d) as days_since_last_order,
    coalesce(t.complaints, 0) as complaints_count, coalesce(t.open_tickets, 0) as open_tickets_count,
    s.nps as last_nps_score, s.csat as last_csat_score, r.rating as avg_review_rating,
    coalesce(o.late, 0) as late_deliveries_count, m.last_message_at, coalesce(o.n, 0) >= 2 as is_repeat_customer
from ids cross join as_of
left join o using (customer_id) left join t using (customer_id) left join s using (customer_id)
left join r using (customer_id) left join m using (customer_id);

create or replace table hand.message_engagement_monthly as
select cast(date_trunc('month', sent_at) as date) as month, channel, message_type, count(*) as sent,
    count(*) filter (where delivered) as delivered, count(*) filter (where opened) as opened,
    count(*) filter (where clicked) as clicked, count(*) filter (where unsubscribed) as unsubscribed,
    count(*) filter (where delivered) / count(*) as delivery_rate,
    count(*) filter (where opened) / nullif(count(*) filter (where delivered), 0) as open_rate,
    count(*) filter (where clicked) / nullif(count(*) filter (where delivered), 0) as click_rate,
    count(*) filter (where unsubscribed) / nullif(count(*) filter (where delivered), 0) as unsubscribe_rate
from hand.messages where outbound group by all;

create or replace table hand.complaint_recovery as
with first_complaint as (
    select customer_id, created_at, resolved_at, coalesce(resolved_at, created_at) as anchor,
        case when resolved_at is null then 'unresolved'
             when resolved_at <= created_at + interval 48 hour then 'resolved_within_48h'
             else 'resolved_later' end as outcome
    from hand.tickets where complaint
    qualify row_number() over (partition by customer_id order by created_at, ticket_id) = 1
),
eligible as (select * from first_complaint where anchor + interval 90 day <= (select end_at from hand.data_end)),
flagged as (
    select outcome, exists (select 1 from hand.orders o where o.valid and o.customer_id = e.customer_id
                            and o.ordered_at > e.anchor and o.ordered_at <= e.anchor + interval 90 day) as back
    from eligible e
)
select outcome, count(*) as customers, count(*) filter (where back) as repurchased_90d,
    count(*) filter (where back) / count(*) as repurchase_rate_90d
from flagged group by 1;

create or replace table hand.order_repurchase as
select order_id, on_time, coalesce(next_at <= ordered_at + interval 90 day, false) as back
from hand.fct_orders
where valid and ordered_at + interval 90 day <= (select end_at from hand.data_end);

create or replace table hand.repurchase_by_delivery as
select case when on_time then 'on_time' else 'late' end as delivery_outcome, count(*) as orders,
    count(*) filter (where back) as repurchased_90d, count(*) filter (where back) / count(*) as repurchase_rate_90d
from hand.order_repurchase o join hand.orders using (order_id)
where on_time is not null group by 1;

create or replace table hand.repurchase_by_nps_band as
with answers as (
    select response_id, customer_id, responded_at,
        case when score >= 9 then 'promoter' when score >= 7 then 'passive' else 'detractor' end as nps_band
    from hand.surveys where kind = 'nps' and responded_at + interval 90 day <= (select end_at from hand.data_end)
),
flagged as (
    select nps_band, exists (select 1 from hand.orders o where o.valid and o.customer_id = a.customer_id
                             and o.ordered_at > a.responded_at
                             and o.ordered_at <= a.responded_at + interval 90 day) as back
    from answers a
)
select nps_band, count(*) as responses, count(*) filter (where back) as repurchased_90d,
    count(*) filter (where back) / count(*) as repurchase_rate_90d
from flagged group by 1;

create or replace table hand.repurchase_by_message_exposure as
with sent as (select distinct order_id, message_type from hand.messages where outbound and order_id is not null),
per_type as (
    select message_type, count(*) as orders, count(*) filter (where back) as repurchased
    from sent join hand.order_repurchase using (order_id) group by 1
),
total as (select count(*) as orders, count(*) filter (where back) as repurchased from hand.order_repurchase)
select message_type, 'sent' as exposure, orders, repurchased as repurchased_90d, repurchased / orders
    as repurchase_rate_90d from per_type
union all
select message_type, 'not_sent', total.orders - per_type.orders, total.repurchased - per_type.repurchased,
    (total.repurchased - per_type.repurchased) / nullif(total.orders - per_type.orders, 0)
from per_type, total;
"""

#: (mart, key columns, compared columns) checked between dbt and the hand SQL.
COMPARISONS = [
    ("kpi_monthly", ["month"], [
        "orders", "customers_ordering", "new_customers", "revenue", "avg_order_value", "returning_customer_rate",
        "repeat_purchase_rate", "on_time_delivery_rate", "nps", "csat", "avg_review_rating", "complaints",
        "complaint_resolution_rate", "median_hours_to_first_response", "median_hours_to_resolution",
        "first_contact_resolution_rate", "wismo_per_100_orders", "return_rate"]),
    ("retention_cohorts", ["cohort_month", "months_since_first_order"],
     ["cohort_size", "active_customers", "retention_rate"]),
    ("dim_customers", ["customer_id"], [
        "orders_count", "lifetime_revenue", "lifetime_refunds", "avg_order_value", "avg_days_between_orders",
        "days_since_last_order", "complaints_count", "open_tickets_count", "last_nps_score", "last_csat_score",
        "avg_review_rating", "late_deliveries_count", "last_message_at", "is_repeat_customer"]),
    ("message_engagement_monthly", ["month", "channel", "message_type"], [
        "sent", "delivered", "opened", "clicked", "unsubscribed", "delivery_rate", "open_rate", "click_rate",
        "unsubscribe_rate"]),
    ("complaint_recovery", ["outcome"], ["customers", "repurchased_90d", "repurchase_rate_90d"]),
    ("repurchase_by_delivery", ["delivery_outcome"], ["orders", "repurchased_90d", "repurchase_rate_90d"]),
    ("repurchase_by_nps_band", ["nps_band"], ["responses", "repurchased_90d", "repurchase_rate_90d"]),
    ("repurchase_by_message_exposure", ["message_type", "exposure"],
     ["orders", "repurchased_90d", "repurchase_rate_90d"]),
]


#: A raw row's customer id resolved to its person's (the key itself when ingestion linked it to no one).
RESOLVED = ("coalesce((select identity_customer_id from hand.identity where identity_key = trim(customer_id)), "
            "trim(customer_id))")
HAND_SQL = HAND_SQL.replace("{RESOLVED}", RESOLVED)


def run_hand_sql(warehouse: Path) -> None:
    """Execute HAND_SQL on `warehouse` (the measured step when called as `--hand-sql`)."""
    as_of = os.environ.get("RETAIN_AS_OF")
    con = duckdb.connect(str(warehouse))
    try:
        con.execute(HAND_SQL.replace(":as_of", f"'{as_of}'" if as_of else "null"))
    finally:
        con.close()


def compare(dbt_warehouse: Path, hand_warehouse: Path) -> dict[str, int]:
    """Rows that differ between dbt's marts and the hand SQL's tables, per mart (0 = same numbers).

    Only rows with data are compared where a mart pads empty groups (complaint_recovery and the
    repurchase marts always list every outcome; the hand SQL only outcomes that occur).
    """
    con = duckdb.connect(str(dbt_warehouse), read_only=True)
    con.execute(f"attach '{hand_warehouse}' as h (read_only)")
    mismatches = {}
    try:
        for mart, keys, cols in COMPARISONS:
            on = " and ".join(f"d.{k} is not distinct from h.{k}" for k in keys)
            differs = " or ".join(
                f"not (d.{c} is not distinct from h.{c} or coalesce(abs(d.{c} - h.{c}) < 1e-9, false))"
                if c not in ("last_message_at", "is_repeat_customer") else f"d.{c} is distinct from h.{c}"
                for c in cols
            )
            padded = f"where {cols[0]} <> 0" if mart.startswith(("complaint", "repurchase")) else ""
            mismatches[mart] = con.execute(
                f"select count(*) from (select * from marts.{mart} {padded}) d "
                f"full join h.hand.{mart} h on {on} where {differs}"
            ).fetchone()[0]
    finally:
        con.close()
    return mismatches


def make_raw(path: Path, customers: int, seed: int, synthetic: bool, work: Path) -> dict:
    """Create the raw warehouse at `path`; returns what was made and how long it took."""
    start = time.perf_counter()
    if synthetic:
        sys.path.insert(0, str(PROJECT_ROOT / "tests"))
        from dbt_fixture import build_raw

        rows = build_raw(path, customers=customers, seed=seed)
        how = "synthetic (tests/dbt_fixture.py)"
    else:
        from pipelines.generate import generate
        from pipelines.ingest import ingest

        landing = work / "landing"
        rows = generate(landing, customers=customers, seed=seed, clean=True)
        ingest(landing=landing, warehouse=path)
        shutil.rmtree(landing)
        how = "pipelines.generate + pipelines.ingest"
    return {"raw": how, "rows": rows, "seconds": round(time.perf_counter() - start, 1)}


def keep_only_raw(warehouse: Path) -> None:
    """Drop every schema but `raw` from a copy, so dbt's first build there is a full one.

    (`--full-refresh` on a built warehouse would do the same work, but dbt refuses it together
    with the backfill vars that some unit tests set.)
    """
    with duckdb.connect(str(warehouse)) as con:
        schemas = con.execute(
            "select schema_name from information_schema.schemata where catalog_name = current_database() "
            "and schema_name not in ('raw', 'main', 'information_schema', 'pg_catalog')"
        ).fetchall()
        for (schema,) in schemas:
            con.execute(f'drop schema "{schema}" cascade')
        con.execute("checkpoint")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the comparison; exit 1 if the numbers disagree."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--synthetic", action="store_true", help="synthesise raw in SQL instead of generate+ingest")
    parser.add_argument("--raw", type=Path, help="reuse this raw warehouse instead of making one")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--skip-full", action="store_true", help="skip the reference build of every mart")
    parser.add_argument("--hand-sql", type=Path, help=argparse.SUPPRESS)  # the measured child step
    args = parser.parse_args(argv)
    if args.hand_sql:
        run_hand_sql(args.hand_sql)
        return 0

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-dbt-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "bench_raw.duckdb"  # a file called raw/hand.duckdb would clash with the schema
    made = {"raw": str(args.raw)} if args.raw else make_raw(raw, args.customers, args.seed, args.synthetic, work)
    if args.raw:
        shutil.copy(args.raw, raw)
    dbt_wh, full_wh, hand_wh = work / "bench_dbt.duckdb", work / "bench_full.duckdb", work / "bench_hand.duckdb"
    for copy in (dbt_wh, hand_wh) if args.skip_full else (dbt_wh, full_wh, hand_wh):
        shutil.copy(raw, copy)
        keep_only_raw(copy)

    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    env.update(DBT_PROFILES_DIR=str(PROJECT_ROOT), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    dbt = str(Path(sys.executable).with_name("dbt"))
    selection = " ".join(f"+{m}" for m in KPI_MARTS)
    steps = {}
    for name, warehouse, cmd in (
        ("dbt build (KPI marts)", dbt_wh,
         [dbt, "build", "--select", selection, "--indirect-selection", "cautious"]),
        ("dbt build (everything)", full_wh, [dbt, "build"]),
        ("hand SQL", hand_wh, [sys.executable, "-m", "bench.bench_dbt", "--hand-sql", str(hand_wh)]),
    ):
        if args.skip_full and warehouse == full_wh:
            continue
        step_env = {**env, "RETAIN_WAREHOUSE": str(warehouse)}
        target = ["--target-path", str(work / "target"), "--log-path", str(work / "logs")] if cmd[0] == dbt else []
        measured = run_measured(cmd + target, log=work / f"{name.split()[0]}-{len(steps)}.log", env=step_env,
                                cwd=PROJECT_ROOT)
        if not measured.ok:
            print(f"{name} failed; log: {work / f'{name.split()[0]}-{len(steps)}.log'}", file=sys.stderr)
            return 1
        steps[name] = measured
    mismatches = compare(dbt_wh, hand_wh)

    hand = steps["hand SQL"].seconds
    size = "customers of the given warehouse" if args.raw else f"{args.customers:,} customers"
    print(f"\nretain dbt benchmark: {size}, raw: {made.get('raw')}")
    if "rows" in made:
        print("raw rows: " + ", ".join(f"{k} {v:,}" for k, v in made["rows"].items()))
    print(f"{'step':<26}{'seconds':>10}{'peak MB':>10}{'× hand SQL':>12}")
    for name, m in steps.items():
        print(f"{name:<26}{m.seconds:>10.1f}{m.peak_mb:>10.0f}{m.seconds / hand:>12.2f}")
    same = all(v == 0 for v in mismatches.values())
    print("dbt and hand SQL agree on every mart" if same else f"MISMATCHES (rows per mart): {mismatches}")
    print(json.dumps({
        "customers": None if args.raw else args.customers, "raw": made,
        "steps": {k: {"seconds": round(m.seconds, 2), "peak_mb": round(m.peak_mb)} for k, m in steps.items()},
        "ratio_kpi_build_to_hand_sql": round(steps["dbt build (KPI marts)"].seconds / hand, 2),
        "mismatches": mismatches,
    }))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
