"""A raw warehouse for testing and benchmarking the dbt project without running ingestion.

`build_raw(path, customers, seed)` fills `raw.<source>` (the tables ingestion owns, created
with its own DDL, `pipelines.ingest.schema.ensure_schema`) with a synthetic shop made by
vectorised DuckDB SQL: customers, orders (some without order_id, like a transaction log),
order lines, returns, messages, surveys, reviews and tickets, with the awkward cases staging
must handle: several versions of a row in later loads (including a stale copy with an older
`updated_at`), missing statuses and directions, untrimmed and upper-case values.

`hold_back_days` keeps the last days of events out of the first load; `load_held_back(path)`
loads them later as a new load, the way a daily ingestion run would, so incremental builds
can be tested.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb

from pipelines.core.contract import load_contract
from pipelines.ingest.schema import ensure_schema

ROOT = Path(__file__).resolve().parent.parent
DBT = str(Path(sys.executable).with_name("dbt"))

#: Last day of the synthetic shop's history.
END_DATE = "2025-06-30"
START_DATE = "2023-01-01"

#: Minimal SQL random numbers: uniform in [0, 1), deterministic in (seed, key...).
_MACROS = """
create or replace temp macro rnd(seed, a, b) as (hash(seed, a, b) % 1000003) / 1000003.0;
create or replace temp macro pick(u, options) as options[1 + cast(floor(u * len(options)) as bigint)];
"""


def _bind(sql: str, params: dict) -> str:
    # Parameters are our own numbers and dates; DuckDB insists every named parameter is used,
    # so substitute literals instead (longest names first: $start before $s).
    for name in sorted(params, key=len, reverse=True):
        value = params[name]
        sql = sql.replace(f"${name}", f"'{value}'" if isinstance(value, str) else str(value))
    return sql


def _synthesize(con: duckdb.DuckDBPyConnection, customers: int, seed: int) -> None:
    """Create syn.<source> tables with exactly the contract's columns (and types)."""
    con.execute(_MACROS)
    con.execute("create schema if not exists syn")
    n_days = (datetime.fromisoformat(END_DATE) - datetime.fromisoformat(START_DATE)).days
    p = {"n": customers, "s": seed, "days": n_days, "start": START_DATE, "end": END_DATE}
    con.execute(_bind(
        """
        create or replace table syn.customers as
        select
            'C' || lpad(cast(i as varchar), 8, '0') as customer_id,
            case when rnd($s, i, 1) < 0.95 then '  User' || i || '@Example.COM ' end as email,
            case when rnd($s, i, 2) < 0.6 then '+4915' || lpad(cast(i as varchar), 9, '0') end as phone,
            pick(rnd($s, i, 3), ['Anna', 'Ben', 'Chiara', 'Deniz', 'Emma', 'Felix']) as first_name,
            pick(rnd($s, i, 4), ['Meyer', 'Rossi', 'Novak', 'Smith', 'Yilmaz']) as last_name,
            pick(rnd($s, i, 5), ['de', 'DE', 'at', 'fr', 'nl', 'it']) as country,
            lpad(cast(i % 99999 as varchar), 5, '0') as postal_code,
            cast($start as timestamp) + to_seconds(cast(rnd($s, i, 6) * $days * 86400 * 0.9 as bigint))
                as created_at,
            pick(rnd($s, i, 7), ['subscribed', 'subscribed', 'Unsubscribed', 'never_subscribed'])
                as email_marketing_consent,
            pick(rnd($s, i, 8), ['subscribed', 'unsubscribed', 'never_subscribed', 'never_subscribed'])
                as sms_marketing_consent,
            rnd($s, i, 9) < 0.005 as is_test_account,
            case when rnd($s, i, 10) < 0.003 then cast($end as timestamp) end as erasure_requested_at,
            cast($start as timestamp) + to_seconds(cast(rnd($s, i, 6) * $days * 86400 * 0.9 as bigint))
                as updated_at,
            i,
            i as oi
        from range(1, $n + 1) as t(i)
        """,
        p,
    ))
    # Orders: a geometric-ish number per customer, exponential gaps (some same-day repeats).
    con.execute(_bind(
        """
        create or replace table syn._orders as
        with per_customer as (
            select customer_id, i, created_at,
                least(1 + cast(floor(-ln(1 - rnd($s, i, 20)) * 1.4) as bigint), 15) as n_orders
            from syn.customers
        ),
        expanded as (
            select customer_id, i, created_at, unnest(range(n_orders)) as k from per_customer
        ),
        gapped as (
            select *,
                case
                    when k = 0 then rnd($s, i, 21) * 3
                    when rnd($s, i * 100 + k, 22) < 0.04 then rnd($s, i * 100 + k, 23) * 0.5
                    else -ln(1 - rnd($s, i * 100 + k, 24)) * 80
                end as gap_days
            from expanded
        )
        select customer_id, i, k,
            created_at + to_seconds(cast(86400 * sum(gap_days) over (
                partition by customer_id order by k) as bigint)) as ordered_at
        from gapped
        """,
        p,
    ))
    con.execute(_bind(
        """
        create or replace table syn.orders as
        with base as (
            select o.*, i * 100 + k as oi,
                rnd($s, i * 100 + k, 30) as u_status,
                cast(ordered_at as date) + 3 + cast(floor(rnd($s, i * 100 + k, 31) * 3) as int)
                    as promised_delivery_date,
                ordered_at + to_seconds(cast(86400 * (1.5 + rnd($s, i * 100 + k, 32) * 6) as bigint))
                    as delivery_time,
                round(15 + rnd($s, i * 100 + k, 33) * 185, 2) as gross
            from syn._orders o
            where ordered_at < cast($end as timestamp) + interval 1 day
        )
        select
            case when rnd($s, oi, 34) < 0.005 then null else 'O' || lpad(cast(oi as varchar), 10, '0') end
                as order_id,
            customer_id,
            ordered_at,
            case
                when u_status < 0.04 then 'Cancelled'
                when u_status < 0.06 then null
                when delivery_time <= cast($end as timestamp) then 'delivered'
                else 'shipped'
            end as status,
            'EUR' as currency,
            cast(gross as decimal(18, 2)) as subtotal,
            cast(case when rnd($s, oi, 35) < 0.15 then round(gross * 0.1, 2) else 0 end as decimal(18, 2))
                as discount,
            cast(case when gross < 50 then 4.90 else 0 end as decimal(18, 2)) as shipping,
            cast(round(gross * 0.16, 2) as decimal(18, 2)) as tax,
            cast(gross - case when rnd($s, oi, 35) < 0.15 then round(gross * 0.1, 2) else 0 end
                + case when gross < 50 then 4.90 else 0 end as decimal(18, 2)) as total,
            pick(rnd($s, oi, 36), ['web', 'web', 'web', 'app', 'app', 'marketplace', ' WEB ', 'phone'])
                as sales_channel,
            case when rnd($s, oi, 35) < 0.15 then 'WELCOME10' end as discount_code,
            promised_delivery_date,
            case when u_status >= 0.04 then ordered_at + interval 20 hour end as shipped_at,
            case when u_status >= 0.06 and delivery_time <= cast($end as timestamp) then delivery_time end
                as delivered_at,
            pick(rnd($s, oi, 37), ['DHL', 'UPS', 'DPD']) as carrier,
            case when u_status >= 0.06 and delivery_time <= cast($end as timestamp) then delivery_time
                 else ordered_at + interval 20 hour end as updated_at,
            oi
        from base
        """,
        p,
    ))
    con.execute(_bind(
        """
        create or replace table syn.order_items as
        select order_id, cast(l as bigint) as line_number,
            'P' || lpad(cast(cast(floor(rnd($s, oi, 40 + l) * 500) as bigint) as varchar), 4, '0') as product_id,
            'Product ' || cast(floor(rnd($s, oi, 40 + l) * 500) as bigint) as product_name,
            pick(rnd($s, oi, 50 + l), ['Apparel', 'shoes', 'home', 'beauty']) as category,
            cast(1 + floor(rnd($s, oi, 60 + l) * 2) as bigint) as quantity,
            cast(round(total / (1 + floor(rnd($s, oi, 60 + l) * 2)) / 2, 2) as decimal(18, 2)) as unit_price,
            oi
        from (select *, unnest(range(1, 3)) as l from syn.orders where order_id is not null)
        """,
        p,
    ))
    con.execute(_bind(
        """
        create or replace table syn.returns as
        select 'R' || order_id as return_id, order_id,
            delivered_at + interval 3 day as requested_at,
            pick(rnd($s, oi, 70), ['damaged', 'wrong_item', 'size_fit', 'changed_mind', 'Too_Late']) as reason,
            case when rnd($s, oi, 71) < 0.7 then total end as refund_amount,
            case when rnd($s, oi, 71) < 0.7 then delivered_at + interval 10 day end as refunded_at,
            case when rnd($s, oi, 71) < 0.7 then 'refunded'
                 when rnd($s, oi, 71) < 0.85 then 'rejected' else 'requested' end as status,
            oi
        from syn.orders
        where order_id is not null and delivered_at is not null and rnd($s, oi, 72) < 0.07
          and delivered_at + interval 10 day <= cast($end as timestamp)
        """,
        p,
    ))
    con.execute(_bind(
        """
        create or replace table syn.messages as
        with order_msgs as (
            select o.oi, o.order_id, o.customer_id, m.message_type, m.channel,
                case m.message_type
                    when 'order_confirmation' then o.ordered_at + interval 1 minute
                    when 'shipping_update' then o.shipped_at
                    when 'delivered' then o.delivered_at + interval 5 minute
                    when 'how_to_guide' then o.delivered_at + interval 1 day
                    when 'review_request' then o.delivered_at + interval 7 day
                end as sent_at, m.n
            from syn.orders o,
                (values ('order_confirmation', 'email', 1), ('shipping_update', 'email', 2),
                        ('delivered', 'sms', 3), ('how_to_guide', 'email', 4),
                        ('review_request', 'email', 5)) as m(message_type, channel, n)
            where o.order_id is not null
              and (m.n <> 4 or rnd($s, o.oi, 80) < 0.5)
              and (m.n <> 5 or rnd($s, o.oi, 81) < 0.6)
        ),
        newsletters as (
            select i * 1000 + k as oi, null as order_id, customer_id,
                'newsletter' as message_type, 'email' as channel,
                cast($start as timestamp) + to_seconds(cast(rnd($s, i, 90 + k) * $days * 86400 as bigint)) as sent_at,
                10 + k as n
            from (select *, unnest(range(2)) as k from syn.customers)
        ),
        inbound as (
            select oi, order_id, customer_id, 'support_reply' as message_type, 'chat' as channel,
                ordered_at + interval 2 day as sent_at, 20 as n
            from syn.orders where order_id is not null and rnd($s, oi, 82) < 0.03
        ),
        all_msgs as (
            select * from order_msgs union all select * from newsletters union all select * from inbound
        )
        select
            'M' || cast(oi as varchar) || '-' || cast(n as varchar) as message_id,
            customer_id, order_id, channel,
            case when n = 20 then 'inbound' when rnd($s, oi, 83 + n) < 0.3 then null else 'outbound' end
                as direction,
            message_type,
            case when n >= 10 then 'monthly_newsletter' else 'post_purchase_flow' end as campaign,
            sent_at,
            case when rnd($s, oi, 84 + n) < 0.96 then sent_at + interval 1 minute end as delivered_at,
            case when rnd($s, oi, 85 + n) < 0.45 then sent_at + interval 3 hour end as opened_at,
            case when rnd($s, oi, 85 + n) < 0.08 then sent_at + interval 4 hour end as clicked_at,
            case when rnd($s, oi, 86 + n) < 0.004 then sent_at + interval 5 hour end as unsubscribed_at,
            oi
        from all_msgs
        where sent_at is not null and sent_at <= cast($end as timestamp) + interval 1 day
        """,
        p,
    ))
    con.execute(_bind(
        """
        create or replace table syn.survey_responses as
        select 'S' || cast(oi as varchar) || t as response_id, customer_id, order_id,
            case when t = 'n' then 'nps' else 'CSAT' end as survey_type,
            cast(case when t = 'n' then floor(rnd($s, oi, 100) * 11)
                      else 1 + floor(rnd($s, oi, 101) * 5) end as bigint) as score,
            case when rnd($s, oi, 102) < 0.1 then 'Great service' end as comment,
            delivered_at + interval 3 day as sent_at,
            delivered_at + interval 4 day + to_seconds(cast(rnd($s, oi, 103) * 86400 as bigint))
                as responded_at,
            oi
        from (select *, unnest(['n', 'c']) as t from syn.orders)
        where order_id is not null and delivered_at is not null
          and rnd($s, oi, case when t = 'n' then 104 else 105 end) < case when t = 'n' then 0.15 else 0.08 end
          and delivered_at + interval 5 day <= cast($end as timestamp) + interval 1 day
        """,
        p,
    ))
    con.execute(_bind(
        """
        create or replace table syn.reviews as
        select 'V' || cast(oi as varchar) as review_id, customer_id, order_id,
            'P' || lpad(cast(cast(floor(rnd($s, oi, 41) * 500) as bigint) as varchar), 4, '0') as product_id,
            cast(1 + floor(pow(rnd($s, oi, 110), 0.5) * 5) as bigint) as rating,
            'Review' as title, 'Text' as body, ' Site ' as source,
            delivered_at + interval 8 day as created_at,
            oi
        from syn.orders
        where order_id is not null and delivered_at is not null and rnd($s, oi, 111) < 0.1
          and delivered_at + interval 8 day <= cast($end as timestamp) + interval 1 day
        """,
        p,
    ))
    con.execute(_bind(
        """
        create or replace table syn.support_tickets as
        with base as (
            select o.*,
                coalesce(cast(o.delivered_at as date) > o.promised_delivery_date, false) as late,
                o.ordered_at + to_seconds(cast(86400 * (1 + rnd($s, oi, 120) * 6) as bigint)) as t_created,
                rnd($s, oi, 121) as u_type,
                rnd($s, oi, 122) as u_res
            from syn.orders o
            where o.order_id is not null
              and rnd($s, oi, 123) < case when coalesce(cast(o.delivered_at as date) > o.promised_delivery_date,
                                                        false) then 0.25 else 0.05 end
        )
        select 'T' || cast(oi as varchar) as ticket_id, customer_id, order_id,
            pick(rnd($s, oi, 124), ['email', 'chat', 'phone', 'web_form']) as channel,
            case when u_type < 0.45 then 'complaint' when u_type < 0.85 then 'Question' else 'request' end
                as ticket_type,
            case when late and rnd($s, oi, 125) < 0.6 then 'wismo'
                 when late then 'late_delivery'
                 else pick(rnd($s, oi, 126), ['damaged_item', 'wrong_item', 'return_refund', 'billing',
                                              'product_question', 'wismo', 'other']) end as category,
            pick(rnd($s, oi, 127), ['low', 'normal', 'normal', 'high']) as priority,
            case when u_res < 0.88 then 'solved' when u_res < 0.94 then 'pending' else 'open' end as status,
            t_created as created_at,
            case when u_res < 0.97 then t_created
                + to_seconds(cast(3600 * (0.2 + rnd($s, oi, 128) * 30) as bigint)) end as first_response_at,
            case when u_res < 0.88 then t_created
                + to_seconds(cast(3600 * (1 + rnd($s, oi, 129) * 120) as bigint)) end as resolved_at,
            cast(1 + floor(rnd($s, oi, 130) * 2.5) as bigint) as agent_replies,
            cast(case when rnd($s, oi, 131) < 0.12 then 1 else 0 end as bigint) as reopen_count,
            cast(case when rnd($s, oi, 132) < 0.3 then 1 + floor(rnd($s, oi, 133) * 5) end as bigint)
                as satisfaction_score,
            t_created + interval 5 day as updated_at,
            oi
        from base
        where t_created <= cast($end as timestamp) + interval 1 day
        """,
        p,
    ))


def _event_column(source: str) -> str:
    if source == "order_items":
        return "o.ordered_at"
    return "s." + (load_contract()[source].event_at or "created_at")


def _insert_load(
    con: duckdb.DuckDBPyConnection, source: str, where: str, load_id: int, loaded_at: str, file_name: str
) -> int:
    """Append the syn.<source> rows matching `where` to raw.<source> as one load."""
    src = load_contract()[source]
    cols = ", ".join(f's."{c}"' for c in src.column_names)
    join = "left join syn.orders o on s.order_id = o.order_id" if source == "order_items" else ""
    con.execute(
        f"""
        insert into raw."{source}" ({", ".join(f'"{c}"' for c in src.column_names)},
            _load_id, _source_file, _source_row, _loaded_at, _extra)
        select {cols}, {load_id}, '{source}/{file_name}',
            row_number() over (order by s.oi), cast('{loaded_at}' as timestamp), null
        from syn."{source}" s {join}
        where {where}
        """
    )
    return con.execute(f"select count(*) from raw.\"{source}\" where _load_id = {load_id}").fetchone()[0]


def build_raw(path: Path | str, customers: int = 300, seed: int = 7, hold_back_days: int = 0) -> dict[str, int]:
    """Create `path` with a filled raw schema; returns rows loaded per source.

    Load 1 holds everything up to END_DATE minus `hold_back_days`; load 2 adds new versions
    of some orders (status changes), a stale copy of others (older updated_at: must lose),
    and a re-sent copy of some messages (later open).
    """
    con = duckdb.connect(str(path))
    try:
        con.execute("set enable_progress_bar = false")
        ensure_schema(con)
        _synthesize(con, customers, seed)
        cutoff = f"cast('{END_DATE}' as date) + interval 1 day - interval {hold_back_days} day"
        counts = {}
        for n, source in enumerate(load_contract(), start=1):
            counts[source] = _insert_load(
                con, source, f"coalesce({_event_column(source)} < {cutoff}, true)", n,
                "2025-07-01 01:00:00", "export_1.csv",
            )
        # A second load of corrections, as a later daily file would bring.
        con.execute(
            f"""
            insert into raw.orders
            select * replace (
                'cancelled' as status,
                updated_at + interval 1 hour as updated_at,
                100 as _load_id,
                'orders/corrections.csv' as _source_file,
                cast('2025-07-01 02:00:00' as timestamp) as _loaded_at
            )
            from raw.orders
            where order_id is not null and hash({seed}, order_id) % 50 = 0 and ordered_at < {cutoff}
            union all
            select * replace (
                'placed' as status,
                ordered_at as updated_at,
                100 as _load_id,
                'orders/corrections.csv' as _source_file,
                cast('2025-07-01 02:00:00' as timestamp) as _loaded_at
            )
            from raw.orders
            where order_id is not null and hash({seed}, order_id) % 50 = 1 and ordered_at < {cutoff}
                and status = 'delivered'
            """
        )
        con.execute(
            f"""
            insert into raw.messages
            select * replace (
                coalesce(opened_at, sent_at + interval 1 day) as opened_at,
                101 as _load_id,
                'messages/resend.csv' as _source_file,
                cast('2025-07-01 02:00:00' as timestamp) as _loaded_at
            )
            from raw.messages
            where hash({seed}, message_id) % 40 = 0 and sent_at < {cutoff}
            """
        )
        if not hold_back_days:  # nothing left to load later: keep the file lean
            con.execute("drop schema syn cascade")
        return counts
    finally:
        con.close()


def load_held_back(path: Path | str, hold_back_days: int = 1) -> dict[str, int]:
    """Load the events `build_raw(..., hold_back_days)` kept back, as one new load per source."""
    con = duckdb.connect(str(path))
    try:
        cutoff = f"cast('{END_DATE}' as date) + interval 1 day - interval {hold_back_days} day"
        counts = {}
        for n, source in enumerate(load_contract(), start=201):
            counts[source] = _insert_load(
                con, source, f"{_event_column(source)} >= {cutoff}", n, "2025-07-02 01:00:00", "export_2.csv"
            )
        return counts
    finally:
        con.close()


def build_transaction_log(path: Path | str, cdnow_file: Path | str) -> int:
    """A raw warehouse holding only orders from a CDNOW-style transaction log (no order ids).

    The file is whitespace separated: customer id, sample id, date (YYYYMMDD), units, amount.
    Every other raw table stays empty, as when a shop exports nothing but its transactions.
    """
    con = duckdb.connect(str(path))
    try:
        ensure_schema(con)
        con.execute(
            f"""
            insert into raw.orders (customer_id, ordered_at, total, _load_id, _source_file, _source_row, _loaded_at)
            with lines as (
                select regexp_split_to_array(trim(line), '\\s+') as f, row_number() over () as n
                from read_csv('{cdnow_file}', columns = {{'line': 'VARCHAR'}}, delim = '|', header = false)
            )
            select f[1], strptime(f[3], '%Y%m%d'), cast(f[5] as decimal(18, 2)), 1,
                'orders/{Path(cdnow_file).name}', n, timestamp '2024-01-01 00:00:00'
            from lines
            """
        )
        return con.execute("select count(*) from raw.orders").fetchone()[0]
    finally:
        con.close()


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/warehouse.duckdb")
    target.parent.mkdir(parents=True, exist_ok=True)
    print(build_raw(target, customers=int(sys.argv[2]) if len(sys.argv) > 2 else 1000))


def _dbt_env(warehouse: Path) -> dict[str, str]:
    """dbt's environment for `warehouse`, named as the dbt steps name it (by file name, dbt
    started in its folder: `pipelines.defs.dbt.project.relative_warehouse`), so that the
    steps' parse cache holds here too."""
    from pipelines.defs.dbt.project import relative_warehouse

    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    env.update(
        RETAIN_WAREHOUSE=str(warehouse),
        DBT_PROFILES_DIR=str(ROOT),
        DBT_PROJECT_DIR=str(ROOT),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        **relative_warehouse(warehouse),
    )
    return env


def run_dbt(args: list[str], warehouse: Path, work: Path) -> subprocess.CompletedProcess:
    """Run dbt on the project against `warehouse`, with target/ and logs/ under `work`.

    Starts from the dbt steps' parse cache when there is one (about 1 s instead of 4-5 s of
    parsing); dbt checks the cache itself and parses again whatever it does not match.
    """
    from pipelines.defs.dbt.project import DBT_CWD_ENV

    target = work / "target"
    cache = ROOT / "target" / "partial_parse.duckdb.msgpack"
    if cache.exists() and not (target / "partial_parse.msgpack").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, target / "partial_parse.msgpack")
    env = _dbt_env(Path(warehouse))
    return subprocess.run(
        [DBT, *args, "--target-path", str(target), "--log-path", str(work / "logs")],
        cwd=env[DBT_CWD_ENV],
        env=env,
        capture_output=True,
        text=True,
    )


def dbt_results(work: Path) -> list[dict]:
    """The results of the last dbt command whose target/ is under `work`."""
    return json.loads((work / "target" / "run_results.json").read_text())["results"]
