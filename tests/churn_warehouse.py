"""A synthetic shop warehouse for the churn tests and benchmarks, built directly in DuckDB.

It writes the tables the churn model reads, with the names and column types the dbt
models produce (`marts.fct_orders` and the `staging.stg_*` tables, whose columns come from
the data contract), so the `ml` library can be tested without running ingestion and dbt.

The simulation is vectorised over customers and loops over months only. Customers buy at
a personal Poisson rate until they churn; the monthly churn hazard rises after a late
delivery, an unresolved complaint or a detractor NPS, so the usual churn drivers are
present and learnable. Churned customers also stop opening emails.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from pipelines.contract import source

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


def _ts(days: np.ndarray, start: date) -> pd.Series:
    """Fractional days since `start` as timestamps (seconds precision)."""
    base = np.datetime64(start, "s")
    return pd.Series(base + (np.asarray(days) * 86400).astype("int64").astype("timedelta64[s]"))


def build_warehouse(
    con,
    customers: int = 3000,
    seed: int = 1,
    start: date = date(2022, 1, 1),
    months: int = 36,
    extras: bool = True,
    message_share: float = 1.0,
) -> date:
    """Fill a DuckDB connection with a simulated shop; returns the last day with data.

    `extras=False` writes orders only (a plain transaction log). `message_share` is the
    share of subscribed customers mailed each month (lower it for big benchmarks).
    """
    rng = np.random.default_rng(seed)
    n = customers
    create_tables(con, extras)
    horizon_days = months * 30
    end_day = start + timedelta(days=horizon_days - 1)

    ids = np.array([f"C{i:07d}" for i in range(n)])
    signup = rng.uniform(0, horizon_days - 45, n)
    rate = rng.gamma(1.6, 0.45, n)  # orders per 30 days while active
    base_hazard = rng.beta(1.2, 18.0, n)  # monthly churn probability at a good experience
    channel = rng.choice(["web", "app", "marketplace", "pos", "phone"], n, p=[0.5, 0.25, 0.15, 0.05, 0.05])
    country = rng.choice(["DE", "FR", "GB", "NL", "US"], n, p=[0.4, 0.2, 0.15, 0.1, 0.15])
    consent = rng.choice(["subscribed", "unsubscribed", "never_subscribed"], n, p=[0.65, 0.15, 0.2])
    churned_at = np.full(n, np.inf)

    orders, tickets, surveys, reviews, returns, messages = [], [], [], [], [], []
    for m in range(months):
        lo, hi = m * 30.0, (m + 1) * 30.0
        alive = (signup < hi) & (churned_at > lo)
        window_start = np.maximum(signup, lo)
        exposure = np.where(alive, (hi - window_start) / 30.0, 0.0)
        count = rng.poisson(rate * exposure)
        first = (signup >= lo) & (signup < hi)
        count = count + first
        cust = np.repeat(np.arange(n), count)
        when = window_start[cust] + rng.uniform(0, 1, len(cust)) * (hi - window_start[cust])
        # the first order of a customer is at signup
        is_first = np.zeros(len(cust), bool)
        starts = np.cumsum(count) - count
        is_first[starts[first & (count > 0)]] = True
        when[is_first] = signup[cust[is_first]]
        k = len(cust)
        late = rng.random(k) < np.where(channel[cust] == "marketplace", 0.25, 0.1)
        delay = np.where(late, rng.integers(1, 12, k), 0)
        cancelled = rng.random(k) < 0.03
        discount_share = np.where(rng.random(k) < 0.3, rng.uniform(0.05, 0.3, k), 0.0)
        total = np.round(rng.gamma(2.0, 30.0, k) + 5, 2)
        order_ids = np.char.add(f"O{m:03d}-", np.arange(k).astype(str))
        promised = np.floor(when) + 4
        delivered = promised + delay - rng.uniform(0, 1, k)
        orders.append(pd.DataFrame({
            "order_id": order_ids,
            "customer_id": ids[cust],
            "ordered_at": _ts(when, start),
            "status": np.where(cancelled, "cancelled", "delivered"),
            "is_valid": ~cancelled,
            "total": total,
            "discount": np.round(total * discount_share, 2),
            "sales_channel": channel[cust],
            "promised_delivery_date": _ts(promised, start).dt.date,
            "delivered_at": _ts(delivered, start).where(~cancelled),
            "is_delivered_on_time": np.where(cancelled, None, ~late),
            "delivery_delay_days": np.where(cancelled, None, delay),
        }))
        ok = ~cancelled
        bad_experience = np.zeros(n)
        if extras:
            # tickets: late orders lead to WISMO questions and complaints
            wismo = ok & late & (rng.random(k) < 0.5)
            complaint = ok & late & (rng.random(k) < 0.35) | ok & (rng.random(k) < 0.01)
            resolved_fast = rng.random(k) < 0.6
            t_idx = np.flatnonzero(wismo | complaint)
            t_created = promised[t_idx] + rng.uniform(0.5, 3, len(t_idx))
            t_complaint = complaint[t_idx]
            hours = np.where(resolved_fast[t_idx], rng.uniform(1, 48, len(t_idx)), rng.uniform(200, 1500, len(t_idx)))
            resolved = t_created + hours / 24
            tickets.append(pd.DataFrame({
                "ticket_id": np.char.add(f"T{m:03d}-", t_idx.astype(str)),
                "customer_id": ids[cust[t_idx]],
                "order_id": order_ids[t_idx],
                "channel": "email",
                "ticket_type": np.where(t_complaint, "complaint", "question"),
                "category": np.where(t_complaint, "late_delivery", "wismo"),
                "status": "solved",
                "created_at": _ts(t_created, start),
                "resolved_at": _ts(resolved, start),
            }))
            slow = t_complaint & ~resolved_fast[t_idx]
            np.add.at(bad_experience, cust[t_idx[slow]], 0.22)
            np.add.at(bad_experience, cust[np.flatnonzero(ok & late)], 0.05)
            # NPS and CSAT after delivery, worse after a late one
            s_idx = np.flatnonzero(ok & (rng.random(k) < 0.3))
            nps = np.clip(np.round(rng.normal(np.where(late[s_idx], 4.5, 8.3), 1.8)), 0, 10).astype(int)
            survey_at = delivered[s_idx] + rng.uniform(1, 5, len(s_idx))
            csat = np.clip(np.round((nps + 1) / 2.2), 1, 5).astype(int)
            surveys.append(pd.DataFrame({
                "response_id": np.char.add(f"S{m:03d}-", s_idx.astype(str)),
                "customer_id": ids[cust[s_idx]],
                "order_id": order_ids[s_idx],
                "survey_type": np.where(rng.random(len(s_idx)) < 0.6, "nps", "csat"),
                "score": nps,
                "responded_at": _ts(survey_at, start),
            }))
            surveys[-1].loc[surveys[-1]["survey_type"] == "csat", "score"] = csat[surveys[-1]["survey_type"] == "csat"]
            np.add.at(bad_experience, cust[s_idx[nps <= 4]], 0.08)
            r_idx = np.flatnonzero(ok & (rng.random(k) < 0.12))
            rating = np.clip(np.round(rng.normal(np.where(late[r_idx], 2.8, 4.3), 0.9)), 1, 5).astype(int)
            reviews.append(pd.DataFrame({
                "review_id": np.char.add(f"R{m:03d}-", r_idx.astype(str)),
                "customer_id": ids[cust[r_idx]],
                "order_id": order_ids[r_idx],
                "product_id": "P1",
                "rating": rating,
                "created_at": _ts(delivered[r_idx] + rng.uniform(2, 10, len(r_idx)), start),
            }))
            ret_idx = np.flatnonzero(ok & (rng.random(k) < 0.07))
            returns.append(pd.DataFrame({
                "return_id": np.char.add(f"X{m:03d}-", ret_idx.astype(str)),
                "order_id": order_ids[ret_idx],
                "requested_at": _ts(delivered[ret_idx] + rng.uniform(1, 14, len(ret_idx)), start),
                "reason": "size_fit",
                "status": "refunded",
            }))
            # a monthly newsletter to subscribed customers who signed up; churned ones rarely open
            mailed = np.flatnonzero((signup < lo) & (consent == "subscribed") & (rng.random(n) < message_share))
            gone = churned_at[mailed] <= lo
            sent = lo + rng.uniform(0, 3, len(mailed))
            opened = rng.random(len(mailed)) < np.where(gone, 0.05, 0.45)
            clicked = opened & (rng.random(len(mailed)) < 0.35)
            unsub = rng.random(len(mailed)) < np.where(gone, 0.03, 0.004)
            messages.append(pd.DataFrame({
                "message_id": np.char.add(f"M{m:03d}-", mailed.astype(str)),
                "customer_id": ids[mailed],
                "channel": "email",
                "direction": "outbound",
                "message_type": "newsletter",
                "sent_at": _ts(sent, start),
                "opened_at": _ts(sent + 0.3, start).where(opened),
                "clicked_at": _ts(sent + 0.31, start).where(clicked),
                "unsubscribed_at": _ts(sent + 0.32, start).where(unsub),
            }))
        hazard = np.clip(base_hazard + bad_experience, 0, 0.95)
        newly = alive & (churned_at == np.inf) & (rng.random(n) < hazard)
        churned_at[newly] = hi

    insert(con, "marts.fct_orders", pd.concat(orders, ignore_index=True))
    if extras:
        insert(con, "staging.stg_shop__customers", pd.DataFrame({
            "customer_id": ids,
            "email": np.char.add(ids, "@example.com"),
            "country": country,
            "created_at": _ts(signup, start),
            "email_marketing_consent": consent,
            "sms_marketing_consent": "never_subscribed",
            "is_test_account": False,
            "updated_at": _ts(signup, start),
        }))
        for table, parts in [
            ("stg_helpdesk__support_tickets", tickets),
            ("stg_surveys__survey_responses", surveys),
            ("stg_reviews__reviews", reviews),
            ("stg_shop__returns", returns),
            ("stg_messaging__messages", messages),
        ]:
            insert(con, f"staging.{table}", pd.concat(parts, ignore_index=True))
        # events are simulated past the last day for tickets/surveys; keep the data window tidy
        end_ts = f"timestamp '{end_day + timedelta(days=1)}'"
        con.execute(f"delete from staging.stg_helpdesk__support_tickets where created_at >= {end_ts}")
        con.execute(f"update staging.stg_helpdesk__support_tickets set resolved_at = null, status = 'open' "
                    f"where resolved_at >= {end_ts}")
        for table, col in [("stg_surveys__survey_responses", "responded_at"), ("stg_reviews__reviews", "created_at"),
                           ("stg_shop__returns", "requested_at")]:
            con.execute(f"delete from staging.{table} where {col} >= {end_ts}")
    con.execute(f"update marts.fct_orders set delivered_at = null, status = 'shipped', is_delivered_on_time = null, "
                f"delivery_delay_days = null where delivered_at >= timestamp '{end_day + timedelta(days=1)}'")
    return end_day
