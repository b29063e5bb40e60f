"""Measure the planted effects in generated files with plain DuckDB aggregates.

Used by the tests (the effects must be visible), by `bench/bench_generate.py` and for the
effects table in docs/generator.md. Everything reads the landing files through typed views
built from the data contract, the way any consumer would.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb

from pipelines.core.contract import SOURCE_NAMES, source
from pipelines.core.warehouse import scratch
from pipelines.generate import catalog as cat
from pipelines.generate import journeys
from pipelines.generate.writers import FORMATS, sql_string


def source_files(out: Path, name: str) -> tuple[list[Path], str]:
    """The generated files of one source under `out` and their format."""
    folder = Path(out) / name
    for fmt in FORMATS:
        files = sorted(folder.glob(f"{name}.{fmt}")) + sorted(folder.glob(f"{name}-[0-9][0-9][0-9][0-9].{fmt}"))
        if files:
            return files, fmt
    raise FileNotFoundError(f"no generated files for {name} in {folder}")


def reader_sql(out: Path, name: str, typed: bool = True) -> str:
    """A DuckDB table expression reading one source's files (typed from the contract, or all text)."""
    files, fmt = source_files(out, name)
    paths = "[" + ", ".join(sql_string(p) for p in files) + "]"
    src = source(name)
    kind = "VARCHAR"
    cols = "{" + ", ".join(f"'{c.name}': '{c.duckdb_type if typed else kind}'" for c in src.columns) + "}"
    if fmt == "parquet":
        return f"read_parquet({paths})"
    if fmt == "jsonl":
        return f"read_json({paths}, format = 'newline_delimited', columns = {cols})"
    return f"read_csv({paths}, header = true, columns = {cols}, auto_detect = false)"


def register_views(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """Create one typed view per contract source (same name) over the files in `out`."""
    for name in SOURCE_NAMES:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {reader_sql(out, name)}")


def measure_effects(out: Path, end: date, horizon_days: int = 180) -> dict[str, dict[str, float]]:
    """Plain aggregates that show each planted effect; repurchase = a valid order within the horizon.

    Only events at least `horizon_days` before the end of the period count, so every event had
    the same time to be followed by a repurchase.
    """
    cutoff = end + timedelta(days=1) - timedelta(days=horizon_days)
    h = f"INTERVAL {horizon_days} DAY"
    guide = ", ".join(f"'{n}'" for n, g in zip(cat.CATEGORY_NAMES, cat.CATEGORY_GUIDE, strict=True) if g)
    with scratch() as con:
        con.execute("SET enable_progress_bar = false")
        register_views(con, out)
        con.execute("CREATE TEMP TABLE vo AS SELECT customer_id, ordered_at FROM orders "
                    "WHERE coalesce(status, 'placed') <> 'cancelled'")

        def repurchase(alias: str, ts: str) -> str:
            return (f"CASE WHEN EXISTS (SELECT 1 FROM vo WHERE vo.customer_id = {alias}.customer_id "
                    f"AND vo.ordered_at > {ts} AND vo.ordered_at <= {ts} + {h}) THEN 1.0 ELSE 0.0 END")

        def grouped(sql: str) -> dict[str, float]:
            return {str(k): float(v) for k, v, n in con.execute(sql).fetchall() if n}

        res: dict[str, dict[str, float]] = {}
        res["repurchase_after_complaint"] = grouped(f"""
            SELECT CASE WHEN resolved_at IS NULL THEN 'unresolved'
                        WHEN resolved_at - created_at <= INTERVAL 48 HOUR THEN 'fast' ELSE 'slow' END,
                   avg({repurchase('t', 't.created_at')}), count(*)
            FROM support_tickets t WHERE ticket_type = 'complaint' AND created_at < DATE '{cutoff}'
            GROUP BY 1""")
        res["complaints_by_resolution"] = grouped(f"""
            SELECT CASE WHEN resolved_at IS NULL THEN 'unresolved'
                        WHEN resolved_at - created_at <= INTERVAL 48 HOUR THEN 'fast' ELSE 'slow' END,
                   count(*), count(*)
            FROM support_tickets t WHERE ticket_type = 'complaint' AND created_at < DATE '{cutoff}'
            GROUP BY 1""")
        late = "CASE WHEN o.delivered_at::DATE > o.promised_delivery_date THEN 'late' ELSE 'on_time' END"
        res["wismo_rate"] = grouped(f"""
            SELECT {late}, avg(CASE WHEN EXISTS (SELECT 1 FROM support_tickets t WHERE t.order_id = o.order_id
                                AND t.category = 'wismo') THEN 1.0 ELSE 0.0 END), count(*)
            FROM orders o WHERE o.delivered_at IS NOT NULL AND o.promised_delivery_date IS NOT NULL
            GROUP BY 1""")
        res["late_delivery_complaint_rate"] = grouped(f"""
            SELECT {late}, avg(CASE WHEN EXISTS (SELECT 1 FROM support_tickets t WHERE t.order_id = o.order_id
                                AND t.category = 'late_delivery') THEN 1.0 ELSE 0.0 END), count(*)
            FROM orders o WHERE o.delivered_at IS NOT NULL AND o.promised_delivery_date IS NOT NULL
            GROUP BY 1""")
        res["late_rate_by_carrier"] = grouped("""
            SELECT carrier, avg(CASE WHEN delivered_at::DATE > promised_delivery_date THEN 1.0 ELSE 0.0 END),
                   count(*)
            FROM orders WHERE delivered_at IS NOT NULL AND carrier IS NOT NULL GROUP BY 1""")
        res["repurchase_after_nps"] = grouped(f"""
            SELECT CASE WHEN score <= 6 THEN 'detractor' WHEN score <= 8 THEN 'passive' ELSE 'promoter' END,
                   avg({repurchase('s', 's.responded_at')}), count(*)
            FROM survey_responses s WHERE survey_type = 'nps' AND responded_at < DATE '{cutoff}'
            GROUP BY 1""")
        res["nps_by_delivery"] = grouped(f"""
            SELECT {late}, avg(s.score), count(*)
            FROM survey_responses s JOIN orders o USING (order_id)
            WHERE s.survey_type = 'nps' AND o.promised_delivery_date IS NOT NULL GROUP BY 1""")
        res["nov_dec_volume_ratio"] = grouped("""
            WITH d AS (SELECT year(ordered_at) y, month(ordered_at) >= 11 peak, count(*) n FROM vo GROUP BY ALL)
            SELECT y::VARCHAR, (sum(n) FILTER (WHERE peak) / 61.0) / (sum(n) / 365.0), count(*)
            FROM d GROUP BY y HAVING count(*) = 2 AND min(y) > (SELECT min(year(ordered_at)) FROM vo)
            ORDER BY y""")
        msg_orders = f"""
            SELECT o.order_id, o.customer_id, o.delivered_at,
                   EXISTS (SELECT 1 FROM messages m WHERE m.order_id = o.order_id
                           AND m.message_type = '{{t}}') AS got
            FROM orders o JOIN order_items i ON i.order_id = o.order_id AND i.line_number = 1
            WHERE o.delivered_at < DATE '{cutoff}' AND o.sales_channel <> 'marketplace' {{extra}}"""
        res["repurchase_after_how_to_guide"] = grouped(f"""
            SELECT CASE WHEN got THEN 'guide' ELSE 'no_guide' END, avg({repurchase('x', 'x.delivered_at')}),
                   count(*)
            FROM ({msg_orders.format(t='how_to_guide', extra=f"AND i.category IN ({guide})")}) x GROUP BY 1""")
        res["repurchase_after_thank_you_first_order"] = grouped(f"""
            SELECT CASE WHEN got THEN 'thank_you' ELSE 'none' END, avg({repurchase('x', 'x.delivered_at')}),
                   count(*)
            FROM ({msg_orders.format(t='thank_you', extra='''AND o.ordered_at = (SELECT min(ordered_at)
                  FROM vo WHERE vo.customer_id = o.customer_id)''')}) x GROUP BY 1""")
        marketing = ", ".join(sql_string(t) for t in cat.MARKETING_TYPES)  # seeds/message_types.csv
        res["unsubscribe_rate_by_monthly_marketing"] = grouped(f"""
            WITH cm AS (
                SELECT customer_id, date_trunc('month', sent_at) m, count(*) n,
                       max(CASE WHEN unsubscribed_at IS NOT NULL THEN 1.0 ELSE 0.0 END) unsub
                FROM messages
                WHERE message_type IN ({marketing})
                GROUP BY ALL)
            SELECT CASE WHEN n <= 3 THEN '1-3' WHEN n <= 5 THEN '4-5' ELSE '6+' END, avg(unsub), count(*)
            FROM cm GROUP BY 1""")
        res["engagement"] = grouped(f"""
            SELECT channel || ' ' || CASE WHEN message_type IN ({marketing}) THEN 'marketing' ELSE 'service' END || ' '
                   || metric, avg(v), count(*)
            FROM messages,
                 (VALUES ('delivered'), ('opened'), ('clicked')) AS t(metric),
                 LATERAL (SELECT CASE metric WHEN 'delivered' THEN (delivered_at IS NOT NULL)
                                             WHEN 'opened' THEN (opened_at IS NOT NULL)
                                             ELSE (clicked_at IS NOT NULL) END::INT AS v)
            WHERE direction = 'outbound' AND channel IN ('email', 'sms', 'push')
            GROUP BY 1 ORDER BY 1""")
        res["messages_per_customer"] = grouped("""
            SELECT message_type, count(*) / (SELECT count(*) FROM customers), count(*) FROM messages GROUP BY 1""")
        res["orders"] = grouped("""
            SELECT 'cancelled_share', avg(CASE WHEN status = 'cancelled' THEN 1.0 ELSE 0.0 END), count(*)
            FROM orders
            UNION ALL SELECT 'returned_share', avg(CASE WHEN status = 'returned' THEN 1.0 ELSE 0.0 END), count(*)
            FROM orders WHERE status <> 'cancelled'
            UNION ALL SELECT 'late_share', avg(CASE WHEN delivered_at::DATE > promised_delivery_date
                                                THEN 1.0 ELSE 0.0 END), count(*)
            FROM orders WHERE delivered_at IS NOT NULL AND promised_delivery_date IS NOT NULL
            UNION ALL SELECT 'mean_total', avg(total), count(*) FROM orders WHERE status <> 'cancelled'
            UNION ALL SELECT 'orders_per_buyer', count(*) / count(DISTINCT customer_id), count(*) FROM vo
            UNION ALL SELECT 'repeat_buyer_share', avg(CASE WHEN n > 1 THEN 1.0 ELSE 0.0 END), count(*)
            FROM (SELECT customer_id, count(*) n FROM vo GROUP BY 1)""")
        res["spend"] = grouped("""
            WITH r AS (SELECT customer_id, total, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at) k
                       FROM orders WHERE status <> 'cancelled'),
                 c AS (SELECT customer_id, any_value(total) FILTER (WHERE k = 1) first_total,
                              avg(total) FILTER (WHERE k > 1) later_mean FROM r GROUP BY 1 HAVING count(*) > 1)
            SELECT 'corr_first_vs_later_order_value', corr(first_total, later_mean), count(*) FROM c""")
        res.update(_journey_effects(con, grouped, cutoff_90=end + timedelta(days=1) - timedelta(days=90)))
        res["customers"] = grouped("""
            SELECT 'email_missing_or_invalid', avg(CASE WHEN email IS NULL OR NOT regexp_full_match(email,
                   '[^@\\s]+@[^@\\s]+\\.[^@\\s]+') THEN 1.0 ELSE 0.0 END), count(*) FROM customers
            UNION ALL SELECT 'test_accounts', avg(CASE WHEN is_test_account THEN 1.0 ELSE 0.0 END), count(*)
            FROM customers
            UNION ALL SELECT 'erasure_requests', avg((erasure_requested_at IS NOT NULL)::INT), count(*) FROM customers
            UNION ALL SELECT 'email_subscribed', avg((email_marketing_consent = 'subscribed')::INT), count(*)
            FROM customers
            UNION ALL SELECT 'email_unsubscribed', avg((email_marketing_consent = 'unsubscribed')::INT), count(*)
            FROM customers""")
    return res


def _journey_effects(con: duckdb.DuckDBPyConnection, grouped, cutoff_90: date) -> dict[str, dict[str, float]]:
    """The planted product journeys (pipelines/generate/journeys.py), from the files alone.

    `next_product_share`: for each planted pair, the share of orders right after an order with
    the trigger that hold the partner (`<trigger> -> <partner>`) and the share of all repeat
    orders that hold it (`any -> <partner>`). `repeat_90d_by_first_category`: repeat within 90
    days by the category of the first order's first line (first orders 90+ days before the end).
    """
    con.execute("""
        CREATE OR REPLACE TEMP TABLE seq AS
        SELECT o.customer_id, o.ordered_at, i.product_name, i.category, i.line_number,
               dense_rank() OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at, o.order_id) AS k
        FROM orders o JOIN order_items i USING (order_id)
        WHERE coalesce(o.status, 'placed') <> 'cancelled'""")
    res: dict[str, dict[str, float]] = {}
    shares = []
    for trigger, partner in journeys.AFFINITIES:
        t, p = sql_string(trigger), sql_string(partner)
        shares.append(f"""
            SELECT {sql_string(trigger + ' -> ' + partner)}, avg(has::INT), count(*) FROM (
                SELECT bool_or(b.product_name = {p}) AS has
                FROM (SELECT DISTINCT customer_id, k FROM seq WHERE product_name = {t}) a
                JOIN seq b ON b.customer_id = a.customer_id AND b.k = a.k + 1
                GROUP BY a.customer_id, a.k)
            UNION ALL
            SELECT {sql_string('any -> ' + partner)}, avg(has::INT), count(*) FROM (
                SELECT bool_or(product_name = {p}) AS has FROM seq WHERE k > 1 GROUP BY customer_id, k)""")
    res["next_product_share"] = grouped(" UNION ALL ".join(shares))
    res["repeat_90d_by_first_category"] = grouped(f"""
        SELECT f.category, avg(CASE WHEN EXISTS (SELECT 1 FROM seq s WHERE s.customer_id = f.customer_id
                                    AND s.k = 2 AND s.ordered_at <= f.ordered_at + INTERVAL 90 DAY)
                               THEN 1.0 ELSE 0.0 END), count(*)
        FROM seq f WHERE f.k = 1 AND f.line_number = 1 AND f.ordered_at < DATE '{cutoff_90}'
        GROUP BY f.category""")
    return res
