"""The dashboard's one data-access module: every query the pages run lives here.

Every page reads the snapshot that the last successful pipeline run published
(`pipelines.publish`), read-only and with DuckDB's external access disabled, so SQL can reach
nothing but the snapshot's own tables. The live warehouse is opened (read-only, for the
duration of one read) only for what the snapshot must not hold: a customer's unmasked contact
details and the CRM files, for the roles allowed to see them (end of this module). A new snapshot has a new
path, which is the cache key of both the connection and every query result, so a published
run shows up on the next page load without a restart.

Every page has one function `<page>(con, filters) -> dict` that runs all of the page's
queries and returns small frames and numbers ready to draw. Pages call them through
`load(page, snapshot, filters)`, cached for `TTL_SECONDS` and run on a cursor of their own;
`bench/bench_dashboard.py` calls them directly, without the cache, to time each page's
server work. Order, delivery, survey and ticket measures are summed per month from the facts
(cheap, and the same code serves every filter); the returning-customer rate and the cohorts,
which need a pass over customers, come from `kpi_monthly` and `retention_cohorts` when
nobody is filtered out. Tests check every monthly number against `kpi_monthly`.

Safety: filter values reach SQL only as bound parameters (`$name`); the only identifiers in
SQL are this module's constants and values picked from allow-lists (`RFM_SEGMENTS`,
`RISK_TIERS`, the snapshot's own table list); CRM format names go to the export code, which
accepts only its own formats. The snapshot's contact data is masked when it is published
(`pipelines.core.privacy`) and masked again here (a no-op), also inside free-text comments.
Unmasked contact details (Customer 360 for the support role), the search by the beginning of
an email (support) and CRM files (the marketer role) are read from the warehouse, read-only,
on a connection opened for that one read, at the moment they are shown or downloaded, never
from the snapshot and never cached (`contact_details`, `search_emails`, `audited_export`);
the pages write each to the audit log. A whole email address is found in the snapshot through
its `email_sha256`.

Filters: the date range selects whole calendar months (UTC), like the KPI marts. Country and
segment (churn risk tier or RFM segment) select customers. Sales channel selects orders for
order measures (revenue, orders, AOV, delivery) and, for customer measures (repeat and
returning rates, cohorts, surveys, tickets, churn), the customers whose first valid order
came through that channel (`marts.customer_segments.acquisition_channel`).
"""

from __future__ import annotations

import contextlib
import json
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from pipelines.core.privacy import email_sha256, mask_email, mask_phone, mask_text  # shared with publishing

#: How long a query result stays cached; a new snapshot gets new cache keys at once anyway.
TTL_SECONDS = 600

RISK_TIERS = ("high", "medium", "low")
#: RFM segments as `marts.customer_segments` names them, best first.
RFM_SEGMENTS = (
    "Champions",
    "Loyal",
    "Promising",
    "New",
    "Needs attention",
    "At risk",
    "Hibernating",
    "Lost",
)
#: Segment filter values: "" (everyone), "risk:<tier>" or "rfm:<segment>".
SEGMENTS = ("", *(f"risk:{t}" for t in RISK_TIERS), *(f"rfm:{s}" for s in RFM_SEGMENTS))

#: Support ticket categories in the data contract, with labels for people.
TICKET_CATEGORIES = {
    "wismo": "Where is my order",
    "late_delivery": "Late delivery",
    "damaged_item": "Damaged item",
    "wrong_item": "Wrong item",
    "return_refund": "Return / refund",
    "billing": "Billing",
    "product_question": "Product question",
    "other": "Other",
}

#: What a page says when the snapshot has no orders mart (a run that failed before dbt).
NO_ORDERS_NOTE = "The published snapshot has no orders mart yet (marts.fct_orders). Run `retain run`."

#: Minimum reviews a product needs to be ranked among the lowest rated (fewer is noise).
MIN_REVIEWS_FOR_RANKING = 10


# --------------------------------------------------------------------------------------
# Filters


@dataclass(frozen=True)
class Filters:
    """What the sidebar selected. Dates are first days of months; `end` is inclusive."""

    start: date
    end: date
    countries: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    segment: str = ""

    @property
    def end_exclusive(self) -> date:
        """First day of the month after `end`."""
        return _add_months(self.end, 1)

    @property
    def months(self) -> int:
        """Number of months selected."""
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    def previous(self) -> Filters:
        """The same filters over the equally long period just before this one."""
        return replace(self, start=_add_months(self.start, -self.months), end=_add_months(self.start, -1))

    @property
    def selects_customers(self) -> bool:
        """True when country, channel or segment narrows the set of customers."""
        return bool(self.countries or self.channels or self.segment)

    def describe(self) -> str:
        """A short human description of the filters, for captions."""
        parts = [f"{self.start:%b %Y} – {self.end:%b %Y}"]
        if self.countries:
            parts.append(", ".join(self.countries))
        if self.channels:
            parts.append(", ".join(self.channels))
        if self.segment:
            parts.append(segment_label(self.segment))
        return " · ".join(parts)


def segment_label(segment: str) -> str:
    """`risk:high` → 'High churn risk', `rfm:Loyal` → 'RFM: Loyal', '' → 'All customers'."""
    kind, _, value = segment.partition(":")
    if kind == "risk":
        return f"{value.capitalize()} churn risk"
    if kind == "rfm":
        return f"RFM: {value}"
    return "All customers"


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_start(d: date) -> date:
    """First day of `d`'s month."""
    return date(d.year, d.month, 1)


# --------------------------------------------------------------------------------------
# Connection and query helpers


def snapshot_path() -> Path | None:
    """The published snapshot to read now, or None if no run has published one yet."""
    from pipelines.core.config import settings
    from pipelines.publish import current_snapshot

    return current_snapshot(settings().published)


def run_status() -> dict:
    """The recorded run status (`last_run`, `last_success`) for the freshness banner."""
    from pipelines.core.config import settings
    from pipelines.publish import read_run_status

    return read_run_status(settings().published)


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open a snapshot read-only with external access (files, network, extensions) disabled."""
    from pipelines.core.warehouse import open_snapshot

    return open_snapshot(path)


@st.cache_resource(max_entries=4, show_spinner=False)
def _shared_connection(path: str) -> duckdb.DuckDBPyConnection:
    # One connection per snapshot path; queries run on cursors of it (one per query, since
    # Streamlit serves sessions from several threads and a DuckDB connection is not shared).
    return connect(path)


_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def query(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame:
    """Run `sql` with named `$parameters` bound from `params` and return a DataFrame.

    Only the parameters the statement uses are passed (DuckDB rejects extra ones), so page
    functions can keep one dict of filter values for all their queries. `con` is used by one
    thread at a time: the cached loaders below give every call its own cursor.
    """
    used = set(_PARAM.findall(sql))
    bound = {k: v for k, v in (params or {}).items() if k in used}
    return con.execute(sql, bound).df()


#: Per connection: {"schema.table": frozenset of its columns}. A snapshot never changes, so
#: its catalogue is read once per connection instead of before every query.
_CATALOGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _catalog(con: duckdb.DuckDBPyConnection) -> dict[str, frozenset[str]]:
    catalog = _CATALOGS.get(con)
    if catalog is None:
        rows = query(
            con,
            "select table_schema || '.' || table_name as name, list(column_name) as columns "
            "from information_schema.columns group by 1",
        )
        catalog = {name: frozenset(cols) for name, cols in zip(rows["name"], rows["columns"], strict=True)}
        _CATALOGS[con] = catalog
    return catalog


def tables(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """`schema.table` names present in the snapshot (a run before a stage existed lacks some)."""
    return frozenset(_catalog(con))


def _has(con: duckdb.DuckDBPyConnection, *names: str) -> bool:
    present = _catalog(con)
    return all(n in present for n in names)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> frozenset[str]:
    return _catalog(con).get(table, frozenset())


def mask_email_value(email: str) -> str:
    """The Python twin of `mask_email`, for values already in memory."""
    return re.sub(r"^(.)[^@]*@", "\\1•••@", email)


def _params(f: Filters) -> dict:
    """Bound values for the filter placeholders used across the page queries."""
    prev = f.previous()
    kind, _, value = f.segment.partition(":")
    return {
        "start": f.start,
        "end_excl": f.end_exclusive,
        "prev_start": prev.start,
        "prev_prev_start": prev.previous().start,
        "countries": list(f.countries),
        "channels": list(f.channels),
        "segment": value,
    }


#: Per connection: which filter each selected-customers temp table currently holds.
_SCOPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _selected_customers(con: duckdb.DuckDBPyConnection, f: Filters, use_channel: bool) -> str | None:
    """A subquery of the customer_ids that country, segment and (with `use_channel`) acquisition
    channel select, or None when they select everyone.

    The customers of a country and segment are put in a temp table once per connection and
    filter (it joins two 1M-row tables) and reused by every query of a page; the channel is a
    filter on that table's `acquisition_channel`.
    """
    by_channel = use_channel and bool(f.channels)
    if not (f.countries or f.segment or by_channel):
        return None
    conditions = ["true"]
    if f.countries:
        conditions.append("list_contains($countries, s.country)")
    kind, _, value = f.segment.partition(":")
    join = ""
    if kind == "rfm" and value in RFM_SEGMENTS:
        conditions.append("s.rfm_segment = $segment")
    elif kind == "risk" and value in RISK_TIERS:
        join = " join ml.churn_scores r on r.customer_id = s.customer_id"
        conditions.append("r.risk_tier = $segment")
    name, key = "_selected_customers", ("customers", f.countries, f.segment)
    held = _SCOPES.setdefault(con, {})
    if held.get(name) != key:
        query(
            con,
            f"create or replace temp table {name} as select s.customer_id, s.acquisition_channel "
            f"from marts.customer_segments s{join} where {' and '.join(conditions)}",
            _params(f),
        )
        held[name] = key
    if by_channel:
        return f"select customer_id from {name} where list_contains($channels, acquisition_channel)"
    return f"select customer_id from {name}"


def customer_scope(con: duckdb.DuckDBPyConnection, f: Filters, column: str = "customer_id",
                   use_channel: bool = True) -> str:
    """SQL predicate on `column` keeping the customers that country, channel and segment select.

    'true' when nothing narrows the customers, so unfiltered queries stay plain scans.
    `use_channel=False` leaves the channel out (order queries filter the order's own channel).
    The filter values themselves never appear in the SQL text: they are bound parameters of
    the temp table's query.
    """
    selected = _selected_customers(con, f, use_channel)
    return "true" if selected is None else f"{column} in ({selected})"


#: The columns of marts.fct_orders the page queries read (the narrow copy keeps only these).
_ORDER_COLUMNS = (
    "customer_id", "ordered_at", "order_month", "is_valid", "total", "sales_channel", "customer_order_number",
    "is_repeat_order", "previous_order_at", "days_since_previous_order", "promised_delivery_date", "delivered_at",
    "delivered_month", "is_delivered_on_time", "delivery_delay_days",
)


def orders_table(con: duckdb.DuckDBPyConnection, f: Filters) -> str:
    """The orders to read: `marts.fct_orders`, or a temp table with the orders of the customers
    that country and segment select, built once per connection and filter.

    With a narrow selection every later query of the page scans that small table instead of
    probing two million orders against the selected customers again.
    """
    if not (f.countries or f.segment):
        return "marts.fct_orders"
    name, key = "_selected_orders", (f.countries, f.segment)
    held = _SCOPES.setdefault(con, {})
    if held.get(name) != key:
        selected = _selected_customers(con, f, use_channel=False)
        columns = ", ".join(c for c in _ORDER_COLUMNS if c in _columns(con, "marts.fct_orders"))
        query(con, f"create or replace temp table {name} as select {columns} from marts.fct_orders "
                   f"where customer_id in ({selected})", _params(f))
        held[name] = key
    return name


def order_scope(con: duckdb.DuckDBPyConnection, f: Filters, alias: str = "o") -> str:
    """SQL predicate on an alias of `orders_table(con, f)`: valid orders placed in the selected channels."""
    parts = [f"{alias}.is_valid"]
    if f.channels:
        parts.append(f"list_contains($channels, {alias}.sales_channel)")
    return " and ".join(parts)


def acquired_scope(con: duckdb.DuckDBPyConnection, f: Filters, alias: str = "o") -> str:
    """SQL predicate on an alias of `orders_table(con, f)` for customer measures: valid orders of
    customers whose first valid order came through the selected channels (all orders of them)."""
    if not f.channels:
        return f"{alias}.is_valid"
    return f"{alias}.is_valid and {customer_scope(con, f, f'{alias}.customer_id')}"


def month_spine(start: date, end: date) -> pd.DataFrame:
    """One row per month from `start` to `end` inclusive (column `month`, datetime64)."""
    return pd.DataFrame({"month": pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="MS")})


def _on_spine(df: pd.DataFrame, start: date, end: date, fill_zero: tuple[str, ...] = ()) -> pd.DataFrame:
    spine = month_spine(start, end)
    if df.empty:
        out = spine
        for col in df.columns:
            if col != "month":
                out[col] = np.nan
    else:
        df = df.assign(month=pd.to_datetime(df["month"]))
        out = spine.merge(df, on="month", how="left")
    for col in fill_zero:
        if col in out:
            out[col] = out[col].fillna(0)
    return out


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    if denominator is None or pd.isna(denominator) or denominator == 0:
        return None
    return float(numerator) / float(denominator) * scale


def _series_ratio(num: pd.Series, den: pd.Series, scale: float = 1.0) -> pd.Series:
    return (num.astype(float) / den.astype(float).where(den != 0)) * scale


# --------------------------------------------------------------------------------------
# Options for the filters


def filter_options(con: duckdb.DuckDBPyConnection) -> dict:
    """Allowed filter values from the snapshot: months with data, countries, channels, segments."""
    out = {"months": [], "countries": [], "channels": [], "segments": [""], "currency": None}
    if not _has(con, "marts.fct_orders"):
        return out
    bounds = query(
        con,
        "select min(ordered_at)::date as first, max(ordered_at)::date as last from marts.fct_orders where is_valid",
    )
    first, last = bounds.iloc[0]["first"], bounds.iloc[0]["last"]
    if pd.notna(first):
        out["months"] = [m.date() for m in month_spine(month_start(first), month_start(last))["month"]]
    if "sales_channel" in _columns(con, "marts.fct_orders"):
        out["channels"] = query(
            con, "select distinct sales_channel from marts.fct_orders where sales_channel is not null order by 1"
        )["sales_channel"].tolist()
    if "currency" in _columns(con, "marts.fct_orders"):
        cur = query(
            con,
            "select currency, count(*) as n from marts.fct_orders where currency is not null "
            "group by 1 order by n desc",
        )
        out["currency"] = cur["currency"].tolist()
    if _has(con, "marts.customer_segments"):
        out["countries"] = query(
            con, "select distinct country from marts.customer_segments where country is not null order by 1"
        )["country"].tolist()
        present = set(query(con, "select distinct rfm_segment from marts.customer_segments")["rfm_segment"])
        out["segments"] += [f"rfm:{s}" for s in RFM_SEGMENTS if s in present]
    if _has(con, "ml.churn_scores"):
        out["segments"] = ["", *(f"risk:{t}" for t in RISK_TIERS), *out["segments"][1:]]
    return out


# --------------------------------------------------------------------------------------
# Shared KPI building blocks (the definitions of models/marts/kpi_monthly.yml, per month)


def order_month_stats(con, f: Filters) -> pd.DataFrame:
    """One pass over the valid orders of all time, per month of `ordered_at`: orders, revenue, first
    and repeat orders and their revenue, and the first and second orders behind the repeat rate.

    Order measures count the orders placed in the selected channels; `acquired_*` count the
    first and second orders of customers acquired through them. Cached per connection and
    filters: a page asks for it several times.
    """
    memo = _SCOPES.setdefault(con, {})
    key = ("order_month_stats", f)
    if key in memo:
        return memo[key]
    in_channel = "list_contains($channels, o.sales_channel)" if f.channels else "true"
    acquired = customer_scope(con, f, "o.customer_id") if f.channels else "true"
    df = query(
        con,
        f"""
        select o.order_month as month,
               count(*) filter (where {in_channel}) as orders,
               coalesce(sum(o.total) filter (where {in_channel}), 0)::double as revenue,
               count(*) filter (where {in_channel} and not o.is_repeat_order) as first_orders,
               coalesce(sum(o.total) filter (where {in_channel} and not o.is_repeat_order), 0)::double
                   as new_revenue,
               coalesce(sum(o.total) filter (where {in_channel} and o.is_repeat_order), 0)::double
                   as returning_revenue,
               count(*) filter (where {acquired} and o.customer_order_number = 1) as acquired_first_orders,
               count(*) filter (where {acquired} and o.customer_order_number = 2) as acquired_second_orders
        from {orders_table(con, f)} o
        where o.is_valid
        group by 1 order by 1
        """,
        _params(f),
    )
    df["month"] = pd.to_datetime(df["month"])
    memo[key] = df
    return df


def _months(df: pd.DataFrame, start: date, end_excl: date) -> pd.DataFrame:
    return df[(df["month"] >= pd.Timestamp(start)) & (df["month"] < pd.Timestamp(end_excl))]


def monthly_orders(con, f: Filters, start: date, end_excl: date) -> pd.DataFrame:
    """Per month of `ordered_at`: orders, revenue, first orders, and revenue of first and repeat orders."""
    cols = ["month", "orders", "revenue", "first_orders", "new_revenue", "returning_revenue"]
    df = _months(order_month_stats(con, f), start, end_excl)[cols]
    return df[df["orders"] > 0].reset_index(drop=True)


def monthly_delivery(con, f: Filters, start: date, end_excl: date) -> pd.DataFrame:
    """Per month of `delivered_at`: delivered orders with a promise, on time, late, mean delay of late ones."""
    return query(
        con,
        f"""
        select o.delivered_month as month,
               count(*) as delivered,
               count(*) filter (where o.is_delivered_on_time) as on_time,
               count(*) filter (where not o.is_delivered_on_time) as late,
               avg(o.delivery_delay_days) filter (where not o.is_delivered_on_time)::double as avg_delay_days_late
        from {orders_table(con, f)} o
        where o.delivered_month >= $m_from and o.delivered_month < $m_to
          and o.promised_delivery_date is not null and {order_scope(con, f)}
        group by 1 order by 1
        """,
        {**_params(f), "m_from": start, "m_to": end_excl},
    )


def monthly_feedback(con, f: Filters, start: date, end_excl: date) -> pd.DataFrame:
    """Per month: NPS responses, promoters, detractors; CSAT responses and satisfied; reviews and rating sum."""
    if not _has(con, "marts.fct_feedback"):
        return pd.DataFrame()
    return query(
        con,
        f"""
        select submitted_month as month,
               count(*) filter (where feedback_type = 'nps') as nps_responses,
               count(*) filter (where feedback_type = 'nps' and score >= 9) as promoters,
               count(*) filter (where feedback_type = 'nps' and score <= 6) as detractors,
               count(*) filter (where feedback_type = 'csat') as csat_responses,
               count(*) filter (where feedback_type = 'csat' and score >= 4) as csat_satisfied,
               count(*) filter (where feedback_type = 'review') as reviews,
               coalesce(sum(score) filter (where feedback_type = 'review'), 0) as rating_sum
        from marts.fct_feedback
        where submitted_month >= $m_from and submitted_month < $m_to and {customer_scope(con, f)}
        group by 1 order by 1
        """,
        {**_params(f), "m_from": start, "m_to": end_excl},
    )


def monthly_tickets(con, f: Filters, start: date, end_excl: date) -> pd.DataFrame:
    """Per month of `created_at`: tickets, complaints, resolved complaints, WISMO tickets, FCR parts."""
    if not _has(con, "marts.fct_support_tickets"):
        return pd.DataFrame()
    return query(
        con,
        f"""
        select created_month as month,
               count(*) as tickets,
               count(*) filter (where is_complaint) as complaints,
               count(*) filter (where is_complaint and resolved_at is not null) as complaints_resolved,
               count(*) filter (where is_complaint and resolved_at is not null and is_first_contact_resolution)
                   as complaints_fcr,
               count(*) filter (where category = 'wismo') as wismo_tickets,
               count(*) filter (where reopen_count > 0) as reopened,
               quantile_cont(hours_to_first_response, 0.5) filter (where is_complaint) as median_hours_first_response,
               quantile_cont(hours_to_resolution, 0.5) filter (where is_complaint) as median_hours_resolution
        from marts.fct_support_tickets
        where created_month >= $m_from and created_month < $m_to and {customer_scope(con, f)}
        group by 1 order by 1
        """,
        {**_params(f), "m_from": start, "m_to": end_excl},
    )


def repeat_purchase_monthly(con, f: Filters, start: date, end: date) -> pd.DataFrame:
    """repeat_purchase_rate at the end of each month: customers with ≥ 2 valid orders ÷ with ≥ 1, to date."""
    stats = order_month_stats(con, f)
    df = stats[stats["month"] <= pd.Timestamp(end)][["month", "acquired_first_orders", "acquired_second_orders"]]
    df = df[(df["acquired_first_orders"] > 0) | (df["acquired_second_orders"] > 0)]
    if df.empty:
        return _on_spine(pd.DataFrame(columns=["month", "repeat_purchase_rate"]), start, end)
    df = df.set_index("month").reindex(pd.date_range(df["month"].min(), pd.Timestamp(end), freq="MS"), fill_value=0)
    df["customers"] = df["acquired_first_orders"].cumsum()
    df["repeat_customers"] = df["acquired_second_orders"].cumsum()
    df["repeat_purchase_rate"] = _series_ratio(df["repeat_customers"], df["customers"])
    df = df.rename_axis("month").reset_index()
    return _on_spine(df[["month", "customers", "repeat_customers", "repeat_purchase_rate"]], start, end)


def returning_monthly(con, f: Filters, start: date, end_excl: date, use_mart: bool | None = None) -> pd.DataFrame:
    """returning_customer_rate per month: ordered in m−1 and m ÷ ordered in m−1.

    Everyone selected: read from `marts.kpi_monthly`, where the KPI is defined (`use_mart=None`
    decides so). Otherwise from the orders: without a channel filter in one pass (a customer
    ordered in m−1 and m exactly when their first order in m has its previous valid order,
    `previous_order_at`, in m−1; the customers ordering in a month are its orders without an
    earlier one that month); a channel filter changes which orders count, so then it pairs
    distinct (customer, month) rows.
    """
    months = pd.date_range(pd.Timestamp(start), pd.Timestamp(end_excl), freq="MS", inclusive="left")
    if use_mart is None:
        use_mart = not f.selects_customers and "returning_customer_rate" in _columns(con, "marts.kpi_monthly")
    if use_mart:
        df = query(
            con,
            "select month, returning_customer_rate from marts.kpi_monthly where month >= $m_from and month < $m_to",
            {"m_from": start, "m_to": end_excl},
        )
        df = df.assign(month=pd.to_datetime(df["month"])).set_index("month").reindex(months)
        return df.rename_axis("month").reset_index()
    p = {**_params(f), "m_from": _add_months(start, -1), "m_to": end_excl}
    if not f.channels:
        df = query(
            con,
            f"""
            select o.order_month as month,
                   count(*) filter (where o.previous_order_at is null or o.previous_order_at < o.order_month)
                       as customers_ordering,
                   count(*) filter (where o.is_repeat_order and o.previous_order_at < o.order_month
                                      and o.previous_order_at >= o.order_month - interval 1 month)
                       as returning_customers
            from {orders_table(con, f)} o
            where o.order_month >= $m_from and o.order_month < $m_to and {order_scope(con, f)}
            group by 1
            """,
            p,
        )
        df = df.assign(month=pd.to_datetime(df["month"])).set_index("month").reindex(
            pd.date_range(pd.Timestamp(p["m_from"]), pd.Timestamp(end_excl), freq="MS", inclusive="left"),
            fill_value=0,
        )
        df["previous_customers"] = df["customers_ordering"].shift(1)
        df = df.iloc[1:].rename_axis("month").reset_index()
    else:
        df = query(
            con,
            f"""
            with active as (
                select distinct o.customer_id, o.order_month as month
                from {orders_table(con, f)} o
                where o.order_month >= $m_from and o.order_month < $m_to and {order_scope(con, f)}
            )
            select (prev.month + interval 1 month)::date as month,
                   count(*) as previous_customers,
                   count(cur.customer_id) as returning_customers
            from active prev
            left join active cur
                on cur.customer_id = prev.customer_id and cur.month = (prev.month + interval 1 month)::date
            group by 1 order by 1
            """,
            p,
        )
    df = (df.assign(month=pd.to_datetime(df["month"])).set_index("month")
          [["previous_customers", "returning_customers"]].reindex(months, fill_value=0)
          .rename_axis("month").reset_index())
    df["returning_customer_rate"] = _series_ratio(df["returning_customers"], df["previous_customers"])
    return df


def returning_periods(con, f: Filters) -> dict:
    """returning_customer_rate for the period and the one before, generalised from months to periods.

    Share of the customers who ordered in the previous period that ordered again in this one;
    with a one-month range it is exactly the monthly KPI. Computed like `returning_monthly`.
    """
    if not f.channels:
        # one pass, as in `returning_monthly`: the first order of a customer in a period whose
        # previous order fell in the period before
        sql = f"""
        select count(*) filter (where o.ordered_at >= $start and o.is_repeat_order
                                  and o.previous_order_at < $start and o.previous_order_at >= $prev_start)
                   as returning_now,
               count(*) filter (where o.ordered_at >= $prev_start and o.ordered_at < $start
                                  and (o.previous_order_at is null or o.previous_order_at < $prev_start))
                   as base_now,
               count(*) filter (where o.ordered_at < $start and o.ordered_at >= $prev_start and o.is_repeat_order
                                  and o.previous_order_at < $prev_start and o.previous_order_at >= $prev_prev_start)
                   as returning_before,
               count(*) filter (where o.ordered_at < $prev_start
                                  and (o.previous_order_at is null or o.previous_order_at < $prev_prev_start))
                   as base_before
        from {orders_table(con, f)} o
        where o.ordered_at >= $prev_prev_start and o.ordered_at < $end_excl and {order_scope(con, f)}
        """
    else:
        sql = f"""
        with per_customer as (
            select o.customer_id,
                   bool_or(o.ordered_at >= $start) as in_current,
                   bool_or(o.ordered_at >= $prev_start and o.ordered_at < $start) as in_previous,
                   bool_or(o.ordered_at < $prev_start) as in_before
            from {orders_table(con, f)} o
            where o.ordered_at >= $prev_prev_start and o.ordered_at < $end_excl and {order_scope(con, f)}
            group by 1
        )
        select count(*) filter (where in_previous and in_current) as returning_now,
               count(*) filter (where in_previous) as base_now,
               count(*) filter (where in_before and in_previous) as returning_before,
               count(*) filter (where in_before) as base_before
        from per_customer
        """
    df = query(con, sql, _params(f)).iloc[0]
    return {
        "current": _ratio(df["returning_now"], df["base_now"]),
        "previous": _ratio(df["returning_before"], df["base_before"]),
    }


# --------------------------------------------------------------------------------------
# Pages


def _period_sum(df: pd.DataFrame, start: date, end_excl: date) -> pd.Series:
    if df.empty:
        return pd.Series(dtype=float)
    months = pd.to_datetime(df["month"])
    return df[(months >= pd.Timestamp(start)) & (months < pd.Timestamp(end_excl))].drop(columns="month").sum()


def _kpi_values(orders: pd.Series, delivery: pd.Series, feedback: pd.Series, tickets: pd.Series) -> dict:
    def get(s: pd.Series, key: str) -> float:
        return float(s.get(key, 0) or 0)

    return {
        "revenue": get(orders, "revenue") if not orders.empty else None,
        "orders": get(orders, "orders") if not orders.empty else None,
        "avg_order_value": _ratio(get(orders, "revenue"), get(orders, "orders")),
        "on_time_delivery_rate": _ratio(get(delivery, "on_time"), get(delivery, "delivered")),
        "nps": _ratio(get(feedback, "promoters") - get(feedback, "detractors"), get(feedback, "nps_responses"), 100),
        "csat": _ratio(get(feedback, "csat_satisfied"), get(feedback, "csat_responses"), 100),
        "complaint_resolution_rate": _ratio(get(tickets, "complaints_resolved"), get(tickets, "complaints")),
    }


def overview(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """KPI tiles for the period and the previous one, monthly trends, and the imported data sources."""
    if not _has(con, "marts.fct_orders"):
        return {"available": False}
    prev = f.previous()
    orders = _on_spine(monthly_orders(con, f, prev.start, f.end_exclusive), prev.start, f.end, ("orders", "revenue"))
    delivery = _on_spine(monthly_delivery(con, f, prev.start, f.end_exclusive), prev.start, f.end)
    feedback = _on_spine(monthly_feedback(con, f, prev.start, f.end_exclusive), prev.start, f.end)
    tickets = _on_spine(monthly_tickets(con, f, prev.start, f.end_exclusive), prev.start, f.end)
    repeat = repeat_purchase_monthly(con, f, prev.start, f.end)
    returning = returning_periods(con, f)

    current = _kpi_values(*(_period_sum(d, f.start, f.end_exclusive) for d in (orders, delivery, feedback, tickets)))
    previous = _kpi_values(*(_period_sum(d, prev.start, f.start) for d in (orders, delivery, feedback, tickets)))
    repeat_at = repeat.set_index("month")["repeat_purchase_rate"]
    current["repeat_purchase_rate"] = _nan_to_none(repeat_at.get(pd.Timestamp(f.end)))
    previous["repeat_purchase_rate"] = _nan_to_none(repeat_at.get(pd.Timestamp(prev.end)))
    current["returning_customer_rate"] = returning["current"]
    previous["returning_customer_rate"] = returning["previous"]

    trend = orders[["month", "orders", "revenue"]].copy()
    trend["avg_order_value"] = _series_ratio(trend["revenue"], trend["orders"])
    trend["on_time_delivery_rate"] = _series_ratio(delivery.get("on_time"), delivery.get("delivered"))
    if "nps_responses" in feedback:
        trend["nps"] = _series_ratio(feedback["promoters"] - feedback["detractors"], feedback["nps_responses"], 100)
        trend["csat"] = _series_ratio(feedback["csat_satisfied"], feedback["csat_responses"], 100)
    if "complaints" in tickets:
        trend["complaint_resolution_rate"] = _series_ratio(tickets["complaints_resolved"], tickets["complaints"])
    trend["repeat_purchase_rate"] = repeat["repeat_purchase_rate"].to_numpy()
    ret = returning_monthly(con, f, f.start, f.end_exclusive)
    trend = trend.merge(
        ret.assign(month=pd.to_datetime(ret["month"]))[["month", "returning_customer_rate"]], on="month", how="left"
    )
    trend = trend[trend["month"] >= pd.Timestamp(f.start)].reset_index(drop=True)
    return {"available": True, "current": current, "previous": previous, "trend": trend,
            "sources": data_sources(con)}


def _nan_to_none(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def cohort_retention(con: duckdb.DuckDBPyConnection, f: Filters, use_mart: bool | None = None) -> pd.DataFrame:
    """Retention by first-order month (cohorts starting in the period) and months since.

    With no customer filter the mart `marts.retention_cohorts` holds exactly this and is read
    (`use_mart=None` decides so); otherwise it is computed from the orders of the selected
    customers, with the mart's definition. Months in which nobody of a cohort ordered are
    left out here (the mart lists them with 0).
    """
    if use_mart is None:
        use_mart = not f.selects_customers and _has(con, "marts.retention_cohorts")
    p = _params(f)
    if use_mart:
        return query(
            con,
            """
            select cohort_month, months_since_first_order, cohort_size, active_customers, retention_rate
            from marts.retention_cohorts
            where cohort_month >= $start and cohort_month < $end_excl
            order by 1, 2
            """,
            p,
        )
    return query(
        con,
        f"""
        with active as (
            select distinct o.customer_id, o.order_month as month
            from {orders_table(con, f)} o
            where o.is_valid and {acquired_scope(con, f)}
        ),
        firsts as (select customer_id, min(month) as cohort_month from active group by 1),
        counts as (
            select f.cohort_month, date_diff('month', f.cohort_month, a.month) as months_since_first_order,
                   count(*) as active_customers
            from firsts f join active a using (customer_id)
            where f.cohort_month >= $start and f.cohort_month < $end_excl
            group by 1, 2
        )
        select cohort_month, months_since_first_order,
               max(active_customers) filter (where months_since_first_order = 0)
                   over (partition by cohort_month) as cohort_size,
               active_customers,
               active_customers / cohort_size as retention_rate
        from counts order by 1, 2
        """,
        p,
    )


def retention(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Cohort retention, repeat purchase rate over time, days between orders, new vs returning revenue."""
    if not _has(con, "marts.fct_orders"):
        return {"available": False}
    p = _params(f)
    cohorts = cohort_retention(con, f)
    repeat = repeat_purchase_monthly(con, f, f.start, f.end)
    gaps = query(
        con,
        f"""
        select case
                 when days_since_previous_order <= 7 then '0–7'
                 when days_since_previous_order <= 14 then '8–14'
                 when days_since_previous_order <= 30 then '15–30'
                 when days_since_previous_order <= 60 then '31–60'
                 when days_since_previous_order <= 90 then '61–90'
                 when days_since_previous_order <= 180 then '91–180'
                 when days_since_previous_order <= 365 then '181–365'
                 else 'over 365' end as days_between,
               min(days_since_previous_order) as sort_key,
               count(*) as orders
        from {orders_table(con, f)} o
        where o.is_repeat_order and o.days_since_previous_order is not null
          and o.ordered_at >= $start and o.ordered_at < $end_excl and {order_scope(con, f)}
        group by 1 order by 2
        """,
        p,
    )
    median_gap = query(
        con,
        f"""
        select quantile_cont(days_since_previous_order, 0.5) as median_days
        from {orders_table(con, f)} o
        where o.is_repeat_order and o.ordered_at >= $start and o.ordered_at < $end_excl and {order_scope(con, f)}
        """,
        p,
    ).iloc[0]["median_days"]
    revenue = _on_spine(monthly_orders(con, f, f.start, f.end_exclusive), f.start, f.end, ("orders", "revenue"))
    return {
        "available": True,
        "cohorts": cohorts,
        "repeat": repeat,
        "gaps": gaps.drop(columns="sort_key"),
        "median_days_between_orders": _nan_to_none(median_gap),
        "revenue_split": revenue[["month", "new_revenue", "returning_revenue"]].fillna(0),
    }


def post_purchase(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Delivery, WISMO, message funnel, NPS/CSAT, reviews, lowest-rated products, recent detractors."""
    if not _has(con, "marts.fct_orders"):
        return {"available": False}
    p = _params(f)
    delivery = _on_spine(monthly_delivery(con, f, f.start, f.end_exclusive), f.start, f.end)
    delivery["on_time_delivery_rate"] = _series_ratio(delivery["on_time"], delivery["delivered"])
    delays = query(
        con,
        f"""
        select case when delivery_delay_days >= 8 then '8+' else delivery_delay_days::varchar end as days_late,
               least(delivery_delay_days, 8) as sort_key, count(*) as orders
        from {orders_table(con, f)} o
        where not o.is_delivered_on_time and o.delivery_delay_days > 0
          and o.delivered_at >= $start and o.delivered_at < $end_excl and {order_scope(con, f)}
        group by 1, 2 order by 2
        """,
        p,
    ).drop(columns="sort_key")
    orders = _on_spine(monthly_orders(con, f, f.start, f.end_exclusive), f.start, f.end, ("orders",))
    tickets = _on_spine(monthly_tickets(con, f, f.start, f.end_exclusive), f.start, f.end)
    wismo = orders[["month", "orders"]].copy()
    wismo["wismo_per_100_orders"] = (
        _series_ratio(tickets["wismo_tickets"], orders["orders"], 100) if "wismo_tickets" in tickets else np.nan
    )

    out = {"available": True, "delivery": delivery, "delays": delays, "wismo": wismo}
    out["funnel"] = None
    if _has(con, "marts.message_engagement_monthly"):
        out["funnel"] = query(
            con,
            """
            select channel, message_type, sum(sent) as sent, sum(delivered) as delivered,
                   sum(opened) as opened, sum(clicked) as clicked, sum(unsubscribed) as unsubscribed
            from marts.message_engagement_monthly
            where month >= $start and month < $end_excl
            group by 1, 2 order by sent desc
            """,
            p,
        )
    feedback = _on_spine(monthly_feedback(con, f, f.start, f.end_exclusive), f.start, f.end)
    if "nps_responses" in feedback:
        feedback["nps"] = _series_ratio(feedback["promoters"] - feedback["detractors"], feedback["nps_responses"], 100)
        feedback["csat"] = _series_ratio(feedback["csat_satisfied"], feedback["csat_responses"], 100)
        feedback["avg_review_rating"] = _series_ratio(feedback["rating_sum"], feedback["reviews"])
    out["satisfaction"] = feedback
    out["ratings"] = out["lowest_products"] = out["negative_feedback"] = None
    if _has(con, "marts.fct_feedback"):
        out["ratings"] = query(
            con,
            f"""
            select score as rating, count(*) as reviews from marts.fct_feedback
            where feedback_type = 'review' and submitted_at >= $start and submitted_at < $end_excl
              and {customer_scope(con, f)}
            group by 1 order by 1
            """,
            p,
        )
        out["negative_feedback"] = query(
            con,
            f"""
            select submitted_at, feedback_type, score, {mask_text("comment")} as comment, customer_id
            from marts.fct_feedback
            where sentiment = 'negative' and comment is not null and trim(comment) <> ''
              and submitted_at >= $start and submitted_at < $end_excl and {customer_scope(con, f)}
            order by submitted_at desc limit 25
            """,
            p,
        )
    if _has(con, "marts.fct_feedback", "marts.product_ratings"):
        out["lowest_products"] = query(
            con,
            f"""
            with rated as (
                select product_id, count(*) as reviews, avg(score) as avg_rating,
                       count(*) filter (where score <= 2) / count(*) as low_rating_share
                from marts.fct_feedback
                where feedback_type = 'review' and product_id is not null
                  and submitted_at >= $start and submitted_at < $end_excl and {customer_scope(con, f)}
                group by 1
            ),
            -- Rank products with enough reviews to mean something: MIN_REVIEWS_FOR_RANKING, or
            -- fewer (down to 3) when the selection is small, the upper quartile of review counts.
            threshold as (
                select greatest(3, least($min_reviews, quantile_disc(reviews, 0.75))) as min_reviews from rated
            )
            select coalesce(p.product_name, r.product_id) as product, p.category, r.reviews, r.avg_rating,
                   r.low_rating_share, t.min_reviews
            from rated r cross join threshold t left join marts.product_ratings p using (product_id)
            where r.reviews >= t.min_reviews
            order by r.avg_rating, r.reviews desc limit 10
            """,
            {**p, "min_reviews": MIN_REVIEWS_FOR_RANKING},
        )
    out["drivers"] = repurchase_drivers(con)
    return out


#: Message types of the post-purchase journey (the rest are marketing or service messages).
POST_PURCHASE_MESSAGES = (
    "order_confirmation", "shipping_update", "out_for_delivery", "delivered", "thank_you", "how_to_guide",
    "product_care", "review_request", "survey_invite", "cross_sell",
)

def message_type_label(message_type: str) -> str:
    """'shipping_update' → 'Shipping update'; 'delivered' → 'Delivery notice' (not the funnel step)."""
    if message_type == "delivered":
        return "Delivery notice"
    return str(message_type).replace("_", " ").capitalize()


#: Cross-domain marts: 90-day repurchase by a post-purchase experience (key → table).
DRIVER_MARTS = {
    "delivery": "marts.repurchase_by_delivery",
    "nps_band": "marts.repurchase_by_nps_band",
    "message_exposure": "marts.repurchase_by_message_exposure",
}


def repurchase_drivers(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """90-day repurchase rate by delivery punctuality, NPS band and message exposure (whole base).

    Each frame has a `group` label column (and `series` for message exposure: sent or not),
    `base` (orders or answers), `repurchased_90d` and `repurchase_rate_90d`.
    """
    out: dict[str, pd.DataFrame] = {}
    present = tables(con)
    if DRIVER_MARTS["delivery"] in present:
        out["delivery"] = query(
            con,
            """
            select case delivery_outcome when 'on_time' then 'On time' when 'late' then 'Late'
                        else delivery_outcome end as "group",
                   orders as base, repurchased_90d, repurchase_rate_90d
            from marts.repurchase_by_delivery order by delivery_outcome desc
            """,
        )
    if DRIVER_MARTS["nps_band"] in present:
        out["nps_band"] = query(
            con,
            """
            select upper(left(nps_band, 1)) || substr(nps_band, 2) || 's' as "group",
                   responses as base, repurchased_90d, repurchase_rate_90d
            from marts.repurchase_by_nps_band order by band_order
            """,
        )
    if DRIVER_MARTS["message_exposure"] in present:
        out["message_exposure"] = query(
            con,
            """
            select message_type as "group", message_type,
                   case exposure when 'sent' then 'Received' else 'Not received' end as series,
                   orders as base, repurchased_90d, repurchase_rate_90d
            from marts.repurchase_by_message_exposure
            order by message_type, exposure desc
            """,
        )
    if "message_exposure" in out:
        out["message_exposure"]["group"] = out["message_exposure"]["group"].map(message_type_label)
    return {k: v for k, v in out.items() if not v.empty and v["base"].sum() > 0}


def support(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Ticket volume by category, response and resolution times, FCR, reopen rate, complaint recovery."""
    if not _has(con, "marts.fct_support_tickets"):
        return {"available": False}
    p = _params(f)
    by_category = query(
        con,
        f"""
        select created_month as month, category, ticket_type, count(*) as tickets
        from marts.fct_support_tickets
        where created_at >= $start and created_at < $end_excl and {customer_scope(con, f)}
        group by 1, 2, 3 order by 1
        """,
        p,
    )
    by_category["category"] = by_category["category"].map(TICKET_CATEGORIES).fillna(by_category["category"])
    monthly = _on_spine(monthly_tickets(con, f, f.start, f.end_exclusive), f.start, f.end)
    if "complaints" in monthly:
        monthly["complaint_resolution_rate"] = _series_ratio(monthly["complaints_resolved"], monthly["complaints"])
        monthly["first_contact_resolution_rate"] = _series_ratio(
            monthly["complaints_fcr"], monthly["complaints_resolved"]
        )
        monthly["reopen_rate"] = _series_ratio(monthly["reopened"], monthly["tickets"])
    period = query(
        con,
        f"""
        select count(*) as tickets,
               count(*) filter (where is_complaint) as complaints,
               count(*) filter (where is_complaint and resolved_at is not null) / count(*) filter (where is_complaint)
                   as complaint_resolution_rate,
               quantile_cont(hours_to_first_response, 0.5) filter (where is_complaint) as median_hours_first_response,
               quantile_cont(hours_to_resolution, 0.5) filter (where is_complaint) as median_hours_resolution,
               count(*) filter (where is_complaint and is_first_contact_resolution)
                   / count(*) filter (where is_complaint and resolved_at is not null) as first_contact_resolution_rate,
               count(*) filter (where reopen_count > 0) / count(*) as reopen_rate
        from marts.fct_support_tickets
        where created_at >= $start and created_at < $end_excl and {customer_scope(con, f)}
        """,
        p,
    ).iloc[0].to_dict()
    times = query(
        con,
        f"""
        select category,
               quantile_cont(hours_to_first_response, 0.5) as median_hours_first_response,
               quantile_cont(hours_to_resolution, 0.5) as median_hours_resolution,
               count(*) as tickets
        from marts.fct_support_tickets
        where created_at >= $start and created_at < $end_excl and {customer_scope(con, f)}
        group by 1 order by tickets desc
        """,
        p,
    )
    times["category"] = times["category"].map(TICKET_CATEGORIES).fillna(times["category"])
    recovery = None
    if _has(con, "marts.complaint_recovery"):
        order = "outcome_order" if "outcome_order" in _columns(con, "marts.complaint_recovery") else "outcome"
        recovery = query(
            con,
            "select outcome, customers, repurchased_90d, repurchase_rate_90d "  # noqa: S608 - fixed column
            f"from marts.complaint_recovery order by {order}",
        )
    return {
        "available": True,
        "by_category": by_category,
        "monthly": monthly,
        "period": {k: _nan_to_none(v) for k, v in period.items()},
        "times": times,
        "recovery": recovery,
    }


#: A reason's driver is its text up to the first comma with its numbers as N, so "no order for 210
#: days, 2.3x their usual gap" and "no order for 95 days" count as one: "no order for N days".


def churn_status(con: duckdb.DuckDBPyConnection) -> dict:
    """The last training and scoring outcome (`ml.churn_status`: trained/skipped and why), or {}."""
    if not _has(con, "ml.churn_status"):
        return {}
    rows = query(con, "select * from ml.churn_status limit 1")
    return {} if rows.empty else {k: (None if not isinstance(v, str) and pd.isna(v) else v)
                                  for k, v in rows.iloc[0].to_dict().items()}


def scores_missing_note(status: dict) -> str | None:
    """'Not enough history yet: …' when the last scoring step was skipped, else None."""
    if status.get("scoring") != "skipped":
        return None
    reason = str(status.get("scoring_reason") or "no churn model yet")
    return reason[:1].upper() + reason[1:]


def churn(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Score distribution, tiers over time, top drivers, model quality and calibration, CLV × risk."""
    if not _has(con, "ml.churn_scores"):
        return {"available": False}
    skipped = scores_missing_note(churn_status(con))
    if skipped:
        return {"available": False, "missing": (
            f"{skipped}. Churn risk and 12-month value appear here after a run with enough order "
            "history; the other pages work already.")}
    p = _params(f)
    scope = customer_scope(con, f)
    summary = query(
        con,
        f"""
        select count(*) as customers,
               count(*) filter (where risk_tier = 'high') as high_risk,
               count(*) filter (where risk_tier = 'medium') as medium_risk,
               avg(churn_probability) as avg_churn_probability,
               sum(clv_12m) filter (where risk_tier = 'high') as clv_at_risk,
               sum(clv_12m) as clv_total,
               max(as_of_date) as as_of_date,
               max(model_version) as model_version
        from ml.churn_scores where {scope}
        """,
        p,
    ).iloc[0].to_dict()
    distribution = query(
        con,
        f"""
        select least(floor(churn_probability * 20), 19) / 20 as bucket, risk_tier, count(*) as customers
        from ml.churn_scores where {scope}
        group by 1, 2 order by 1
        """,
        p,
    )
    history = None
    if _has(con, "ml.churn_scores_history"):
        history = query(
            con,
            f"""
            select as_of_date, risk_tier, count(*) as customers
            from ml.churn_scores_history where {scope}
            group by 1, 2 order by 1
            """,
            p,
        )
    drivers = query(
        con,
        f"""
        with reasons as (
            select unnest([reason_1, reason_2, reason_3]) as reason
            from ml.churn_scores where risk_tier in ('high', 'medium') and {scope}
        ),
        -- the same text repeats a lot: count each text once, then take the numbers out
        texts as (
            select reason, count(*) as customers from reasons
            where reason is not null and reason <> '' group by 1
        )
        select trim(split_part(regexp_replace(reason, '[0-9][0-9.,]*', 'N', 'g'), ',', 1)) as driver,
               arg_max(reason, customers) as example, sum(customers) as customers
        from texts
        group by 1 order by customers desc limit 10
        """,
        p,
    )
    matrix = query(
        con,
        f"""
        with banded as (
            select risk_tier,
                   case when clv_12m is null then 'unknown'
                        when clv_12m < 50 then 'under 50'
                        when clv_12m < 150 then '50–150'
                        when clv_12m < 400 then '150–400'
                        else '400+' end as clv_band,
                   clv_12m
            from ml.churn_scores where {scope}
        )
        select risk_tier, clv_band, count(*) as customers, coalesce(sum(clv_12m), 0) as clv_12m
        from banded group by 1, 2
        """,
        p,
    )
    return {
        "available": True,
        "summary": {k: (v if isinstance(v, str) else _nan_to_none(v) if not isinstance(v, date) else v)
                    for k, v in summary.items()},
        "distribution": distribution,
        "history": history,
        "drivers": drivers,
        "matrix": matrix,
        "model": model_quality(con),
    }


def model_quality(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The current model's run: metrics against baselines and its calibration table (or None)."""
    if not _has(con, "ml.model_runs"):
        return None
    cols = _columns(con, "ml.model_runs")
    order = "promoted desc, trained_at desc" if "promoted" in cols else "trained_at desc"
    runs = query(con, f"select * from ml.model_runs order by {order} limit 1")  # noqa: S608 - fixed columns
    if runs.empty:
        return None
    row = runs.iloc[0].to_dict()
    metrics = row.get("metrics")
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    return {"run": {k: v for k, v in row.items() if k != "metrics"}, "metrics": metrics or {}}


def data_sources(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """Per platform and source: rows, matched to a shop customer, kept unmatched, match rate.

    From `marts.identity_match_rates`; None when no platform file was imported (only
    retain's own contract files, platform `retain`, or no table at all).
    """
    if not _has(con, "marts.identity_match_rates"):
        return None
    rates = query(con, """
        select platform, source_name, rows_count, matched_count, unmatched_count, match_rate
        from marts.identity_match_rates order by platform = 'retain', platform, source_name
    """)
    if rates.empty or (rates["platform"] == "retain").all():
        return None
    return rates


PLATFORM_LABELS = {
    "shopify": "Shopify", "woocommerce": "WooCommerce", "klaviyo": "Klaviyo", "zendesk": "Zendesk",
    "gorgias": "Gorgias", "judgeme": "Judge.me", "yotpo": "Yotpo", "trustpilot": "Trustpilot",
    "okendo": "Okendo", "delighted": "Delighted", "retain": "Your own files (retain format)",
}
SOURCE_LABELS = {
    "orders": "Orders", "messages": "Messages", "survey_responses": "Survey answers", "reviews": "Reviews",
    "support_tickets": "Support tickets",
}


def data_sources_table(rates: pd.DataFrame) -> pd.DataFrame:
    """`data_sources` with the column and value names a marketing manager reads."""
    return pd.DataFrame({
        "Platform": rates["platform"].map(lambda p: PLATFORM_LABELS.get(p, str(p).replace("_", " ").title())),
        "Data": rates["source_name"].map(lambda s: SOURCE_LABELS.get(s, str(s).replace("_", " ").capitalize())),
        "Rows": rates["rows_count"].astype(int),
        "Matched to a shop customer": rates["matched_count"].astype(int),
        "Kept as unmatched": rates["unmatched_count"].astype(int),
        "Match rate": rates["match_rate"].astype(float),
    })


def outreach(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """The latest outreach run: plays with counts, suppressions by reason and a preview of each play."""
    if not _has(con, "exports.outreach_lists"):
        return {"available": False}
    if _has(con, "exports.runs"):
        latest = query(
            con,
            "select run_id, created_at, as_of_date, plays_json from exports.runs "
            "order by created_at desc, run_id desc limit 1",
        )
    else:
        latest = query(
            con,
            "select run_id, max(created_at) as created_at, max(as_of_date) as as_of_date, null as plays_json "
            "from exports.outreach_lists group by 1 order by 2 desc, 1 desc limit 1",
        )
    if latest.empty:
        return {"available": True, "run_id": None}
    run = latest.iloc[0].to_dict()
    run_id = run["run_id"]
    listed = query(
        con,
        """
        select play, count(*) as customers, avg(churn_probability) as avg_churn_probability,
               coalesce(sum(clv_12m), 0) as clv_12m
        from exports.outreach_lists where run_id = $run_id
        group by 1
        """,
        {"run_id": run_id},
    )
    # Plays in playbook order, also those nobody qualified for (from the run's own record).
    defined = pd.DataFrame(json.loads(run["plays_json"])) if run.get("plays_json") else pd.DataFrame()
    if not defined.empty and "name" in defined:
        keep = [c for c in ("name", "priority", "channel", "action") if c in defined]
        plays = defined[keep].rename(columns={"name": "play"}).merge(listed, on="play", how="outer")
    else:
        plays = listed.merge(
            query(con, "select play, min(priority) as priority, any_value(channel) as channel, "
                       "any_value(action) as action from exports.outreach_lists where run_id = $run_id group by 1",
                  {"run_id": run_id}),
            on="play",
        )
    plays["customers"] = plays["customers"].fillna(0).astype(int)
    plays["clv_12m"] = plays["clv_12m"].fillna(0.0)
    plays = plays.sort_values("priority" if "priority" in plays else "play").reset_index(drop=True)
    suppressed = None
    if _has(con, "exports.suppressions"):
        suppressed = query(
            con,
            """
            select play, reason, count(*) as customers
            from exports.suppressions where run_id = $run_id
            group by 1, 2 order by customers desc
            """,
            {"run_id": run_id},
        )
    suppressed_customers = None
    if suppressed is not None:
        suppressed_customers = int(query(
            con, "select count(distinct customer_id) as n from exports.suppressions where run_id = $run_id",
            {"run_id": run_id},
        ).iloc[0]["n"])
    contact = _has(con, "marts.dim_customers")
    order_col = "l.rank" if "rank" in _columns(con, "exports.outreach_lists") else "l.priority"
    preview = query(
        con,
        f"""
        with top as (
            select l.play, {order_col} as rank, l.customer_id, l.risk_tier, l.churn_probability, l.clv_12m,
                   l.reasons
            from exports.outreach_lists l
            where l.run_id = $run_id
            qualify row_number() over (partition by l.play order by {order_col}, l.customer_id) <= 50
        )
        select top.play, top.rank, top.customer_id,
               {mask_email("c.email") if contact else "null"} as email,
               {mask_phone("c.phone") if contact else "null"} as phone,
               top.risk_tier, top.churn_probability, top.clv_12m, top.reasons
        from top
        {"left join marts.dim_customers c on c.customer_id = top.customer_id" if contact else ""}
        order by top.play, top.rank, top.customer_id
        """,
        {"run_id": run_id},
    )
    return {
        "available": True,
        "run_id": run_id,
        "created_at": run["created_at"],
        "as_of_date": run.get("as_of_date"),
        "plays": plays,
        "suppressed": suppressed,
        "suppressed_customers": suppressed_customers,
        "preview": preview,
        "scores_missing": scores_missing_note(churn_status(con)),
    }


#: Columns of a search result.
SEARCH_COLUMNS = ["customer_id", "email", "country", "orders_count"]


def looks_like_email(text: str) -> bool:
    """Whether `text` could be a whole email address (something@domain), for the exact email search."""
    local, at, domain = (text or "").strip().partition("@")
    return bool(local and at and domain and " " not in text.strip())


def find_customers(con: duckdb.DuckDBPyConnection, text: str, limit: int = 20) -> pd.DataFrame:
    """Customers whose id equals `text`, or whose email is exactly `text` (case and spaces around it ignored).

    The snapshot holds no plain emails: an email is matched through `email_sha256`, the hash
    of the trimmed, lower-cased address, computed the same way from what was typed. Emails in
    the result are the snapshot's, masked. The beginning of an email is searched in the
    warehouse instead, for the support role only (`search_emails`).
    """
    text = (text or "").strip()
    if not text or not _has(con, "marts.dim_customers"):
        return pd.DataFrame(columns=SEARCH_COLUMNS)
    by_email = looks_like_email(text) and "email_sha256" in _columns(con, "marts.dim_customers")
    return query(
        con,
        f"""
        select customer_id, {mask_email("email")} as email, country, orders_count
        from marts.dim_customers
        where customer_id = $text {f"or email_sha256 = {email_sha256('$text')}" if by_email else ""}
        order by customer_id = $text desc, customer_id
        limit $limit
        """,
        {"text": text, "limit": limit},
    )


def customer_360(con: duckdb.DuckDBPyConnection, customer_id: str) -> dict:
    """One customer's profile, churn score with reasons, and event timeline, contact details masked.

    Unmasked contact details are never read from the snapshot: see `contact_details`.
    """
    if not _has(con, "marts.dim_customers"):
        return {"available": False}
    email, phone = mask_email("email"), mask_phone("phone")
    first, last = "left(first_name, 1) || '.'", "left(last_name, 1) || '.'"
    profile = query(
        con,
        f"""
        select * replace ({email} as email, {phone} as phone, {first} as first_name, {last} as last_name)
        from marts.dim_customers where customer_id = $customer_id
        """,
        {"customer_id": customer_id},
    )
    if profile.empty:
        return {"available": True, "found": False}
    out = {"available": True, "found": True, "profile": profile.iloc[0].to_dict(), "score": None, "timeline": None}
    if _has(con, "ml.churn_scores"):
        score = query(
            con, "select * from ml.churn_scores where customer_id = $customer_id", {"customer_id": customer_id}
        )
        out["score"] = None if score.empty else score.iloc[0].to_dict()
    if _has(con, "marts.customer_segments"):
        seg = query(
            con, "select * from marts.customer_segments where customer_id = $customer_id", {"customer_id": customer_id}
        )
        out["segment"] = None if seg.empty else seg.iloc[0].to_dict()
    if _has(con, "marts.fct_customer_events"):
        detail = mask_text("detail")
        out["timeline"] = query(
            con,
            f"""
            select event_at, event_type, channel, title, {detail} as detail, amount, score, order_id
            from marts.fct_customer_events where customer_id = $customer_id
            order by event_at desc
            """,
            {"customer_id": customer_id},
        )
    return out


#: Page name → its data function, for `load` and the benchmark.
PAGES: dict[str, Callable[[duckdb.DuckDBPyConnection, Filters], dict]] = {
    "overview": overview,
    "retention": retention,
    "post_purchase": post_purchase,
    "support": support,
    "churn": churn,
    "outreach": outreach,
}


@contextlib.contextmanager
def _cursor(snapshot: str):
    # Streamlit runs sessions in threads: each call gets its own cursor (its own temp tables).
    with _shared_connection(snapshot).cursor() as cur:
        yield cur


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Loading…", max_entries=256)
def load(page: str, snapshot: str, filters: Filters) -> dict:
    """`PAGES[page](con, filters)` on the snapshot at `snapshot`, cached per snapshot and filters."""
    with _cursor(snapshot) as cur:
        return PAGES[page](cur, filters)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_options(snapshot: str) -> dict:
    """`filter_options` for the snapshot, cached."""
    with _cursor(snapshot) as cur:
        return filter_options(cur)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_churn_status(snapshot: str) -> dict:
    """`churn_status` of the snapshot, cached."""
    with _cursor(snapshot) as cur:
        return churn_status(cur)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_snapshot_info(snapshot: str) -> dict:
    """The snapshot's own record (`meta.snapshot`: published_at, run_id, tables)."""
    with _cursor(snapshot) as con:
        if not _has(con, "meta.snapshot"):
            return {}
        info = query(con, "select info from meta.snapshot limit 1")
    if info.empty:
        return {}
    value = info.iloc[0]["info"]
    return json.loads(value) if isinstance(value, str) else dict(value)


@st.cache_data(ttl=60, show_spinner=False)
def load_search(snapshot: str, text: str) -> pd.DataFrame:
    """`find_customers` (exact id or exact email, in the snapshot), cached briefly."""
    with _cursor(snapshot) as cur:
        return find_customers(cur, text)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_customer(snapshot: str, customer_id: str) -> dict:
    """`customer_360` (masked), cached per customer."""
    with _cursor(snapshot) as cur:
        return customer_360(cur, customer_id)


# --------------------------------------------------------------------------------------
# Model run metrics (the JSON document `ml.train` logs in ml.model_runs.metrics)

#: Evaluations in the metrics document, in display order, with labels (others are left out).
MODEL_EVALUATIONS = {
    "model": "Churn model",
    "logistic_regression": "Baseline: logistic regression",
    "bgnbd_1_minus_p_alive": "Baseline: BG/NBD 1 − P(alive)",
    "bgnbd_p_no_purchase": "Baseline: BG/NBD P(no purchase)",
    "recency_rule": "Baseline: recency rule",
}
#: Metrics shown, in order, with labels.
MODEL_METRICS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "lift_top_decile": "Top-decile lift",
    "capture_top_decile": "Top-decile capture",
    "brier": "Brier score",
    "log_loss": "Log loss",
    "ece": "Calibration error",
}


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per evaluation (the churn model, then each baseline), one column per metric."""
    rows = []
    for key, label in MODEL_EVALUATIONS.items():
        ev = metrics.get(key)
        if not isinstance(ev, dict):
            continue
        row = {"Model": label}
        for metric, name in MODEL_METRICS.items():
            value = ev.get(metric)
            row[name] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_table(metrics: dict) -> pd.DataFrame:
    """The churn model's calibration on held-out data: mean predicted vs observed churn per bin."""
    table = (metrics.get("model") or {}).get("calibration") if isinstance(metrics, dict) else None
    if not table:
        return pd.DataFrame(columns=["predicted", "observed", "customers"])
    df = pd.DataFrame(table).rename(columns={"mean_predicted": "predicted", "observed_rate": "observed"})
    if "customers" in df:
        df = df[df["customers"] > 0]
    return df.dropna(subset=["predicted", "observed"]).reset_index(drop=True)


def driver_importance(metrics: dict) -> pd.DataFrame:
    """How much each driver group matters to the model: ROC AUC lost when it is shuffled."""
    groups = metrics.get("driver_importance") if isinstance(metrics, dict) else None
    if not isinstance(groups, dict) or not groups:
        return pd.DataFrame(columns=["driver", "auc_drop"])
    df = pd.DataFrame({"driver": list(groups), "auc_drop": [float(v) for v in groups.values()]})
    df["driver"] = df["driver"].str.replace("_", " ").str.capitalize()
    return df.sort_values("auc_drop", ascending=False).head(10).reset_index(drop=True)


# --------------------------------------------------------------------------------------
# CRM downloads through the same code as `retain export`

def export_support(con: duckdb.DuckDBPyConnection) -> dict:
    """Which CRM formats the outreach export code offers, and whether it can run on `con`.

    Returns `formats` ({name: (title, channels, max rows per file)}) and `problem`: None when
    the export's source query binds against the database (checked by running it with no rows),
    else the first line of the error (e.g. a table or column it does not have).
    `formats` is empty when the export code is not installed.
    """
    support = export_support_formats()
    if not support["formats"]:
        return support
    from pipelines.outreach import formats
    from pipelines.outreach.normalize import install_macros

    with con.cursor() as cur:
        try:
            install_macros(cur)
            cur.execute(f"select * from ({formats.EXPORT_SOURCE_SQL}) limit 0", {"run_id": "", "play": None})
        except duckdb.Error as exc:
            support["problem"] = str(exc).strip().splitlines()[0]
    return support


def render_download(con: duckdb.DuckDBPyConnection, play: str, fmt: str, run_id: str | None = None) -> bytes:
    """One play's export in one CRM format, as `retain export` writes it: CSV bytes, or a ZIP of the parts.

    Calls `pipelines.outreach.exporter.render_export` on a cursor of the read-only snapshot
    (it only needs temporary tables and macros, which a read-only connection allows).
    """
    import io
    import zipfile

    from pipelines.outreach.exporter import render_export

    with con.cursor() as cur:
        files = render_export(cur, play, fmt, run_id=run_id)
    if len(files) == 1:
        return next(iter(files.values()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def download_file_name(play: str, fmt: str, rows: int, max_rows_per_file: int | None) -> str:
    """The download's file name: `<play>-<format>.csv`, or `.zip` when the format splits it into parts."""
    split = bool(max_rows_per_file) and rows > max_rows_per_file
    return f"{play}-{fmt}.{'zip' if split else 'csv'}"


# --------------------------------------------------------------------------------------
# Contact details and CRM files: read from the warehouse at the moment they are shown
#
# The snapshot is for everyone who may open the dashboard, so contact data in it is masked
# (or will be). Unmasked values are read from the live warehouse, read-only, only when a
# user whose role allows it asks for them, and never cached: each call opens a connection,
# reads, and closes it again, so a pipeline run is not kept from writing for longer than
# the read takes.

class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be read now (missing, or a pipeline run holds its write lock)."""


@contextlib.contextmanager
def warehouse_connection():
    """A short-lived read-only connection to RETAIN_WAREHOUSE, external access disabled."""
    from pipelines.core.config import settings

    path = settings().warehouse
    if not path.exists():
        raise WarehouseUnavailable(f"there is no warehouse at {path}: run `retain run` first")
    from pipelines.core.warehouse import WarehouseBusy
    from pipelines.core.warehouse import connect as open_warehouse

    try:
        con = open_warehouse(path, read_only=True, external_access=False, lock_wait=0)
    except (duckdb.Error, WarehouseBusy) as exc:
        raise WarehouseUnavailable(
            "the warehouse is busy (a pipeline run is writing to it); try again when the run has finished"
        ) from exc
    try:
        yield con
    finally:
        con.close()


#: What Customer 360 reveals, from marts.dim_customers.
CONTACT_FIELDS = ("email", "phone", "first_name", "last_name")


def contact_details(customer_id: str) -> dict | None:
    """One customer's unmasked contact fields from the warehouse (None if the customer is not there)."""
    with warehouse_connection() as con:
        present = set(_columns(con, "marts.dim_customers"))
        if not present:
            raise WarehouseUnavailable("the warehouse has no marts.dim_customers yet: run `retain run`")
        fields = [f for f in CONTACT_FIELDS if f in present]
        row = query(con, f"select {', '.join(fields)} from marts.dim_customers where customer_id = $customer_id",
                    {"customer_id": customer_id})
    return None if row.empty else row.iloc[0].to_dict()


def search_emails(prefix: str, limit: int = 20) -> pd.DataFrame:
    """Customers whose email in the warehouse starts with `prefix` (case-insensitive), emails masked.

    For the support role only: it tells which addresses exist, so the page writes each search
    to the audit log. The snapshot cannot answer it (its emails are masked), so this reads
    the warehouse on a connection of its own, closed again as soon as the rows are read.
    """
    prefix = (prefix or "").strip()
    if not prefix:
        return pd.DataFrame(columns=SEARCH_COLUMNS)
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with warehouse_connection() as con:
        present = _columns(con, "marts.dim_customers")
        if "email" not in present:
            raise WarehouseUnavailable("the warehouse has no marts.dim_customers yet: run `retain run`")
        extra = ", ".join(f"{c}" if c in present else f"null as {c}" for c in ("country", "orders_count"))
        return query(
            con,
            f"""
            select customer_id, {mask_email("email")} as email, {extra}
            from marts.dim_customers
            where lower(email) like lower($pattern) escape '\\'
            order by customer_id
            limit $limit
            """,
            {"pattern": pattern, "limit": limit},
        )


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def _warehouse_export_support(snapshot: str) -> dict:
    # Per snapshot: the warehouse's tables change only in a run, which publishes a new one. A
    # busy or missing warehouse raises, and an exception is not cached: the next load asks again.
    with warehouse_connection() as con:
        return export_support(con)


def warehouse_export_support(snapshot: str | Path | None = None) -> dict:
    """`export_support` on the warehouse, where the CRM files are rendered from (problem: why not now).

    With `snapshot` (the page's) a successful check is cached for it, so the Outreach page does
    not open the warehouse on every rerun; without it the warehouse is asked now.
    """
    try:
        if snapshot is not None:
            return _warehouse_export_support(str(snapshot))
        with warehouse_connection() as con:
            return export_support(con)
    except WarehouseUnavailable as exc:
        support = export_support_formats()
        return {**support, "problem": str(exc)}


def export_support_formats() -> dict:
    """The CRM formats the export code offers, without checking a connection."""
    try:
        from pipelines.outreach import formats
        from pipelines.outreach.normalize import install_macros  # noqa: F401 - export_support needs it
    except ImportError:
        return {"formats": {}, "problem": None}
    return {
        "formats": {
            name: (f.title, tuple(f.channels), f.max_rows_per_file) for name, f in formats.EXPORT_FORMATS.items()
        },
        "problem": None,
    }


def count_rows(content: bytes, file_name: str) -> int:
    """Customers in a rendered download: data rows of the CSV, or of every CSV inside the ZIP."""
    import csv
    import io
    import zipfile

    def rows(csv_bytes: bytes) -> int:
        return max(sum(1 for _ in csv.reader(io.StringIO(csv_bytes.decode("utf-8-sig"), newline=""))) - 1, 0)

    if file_name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            return sum(rows(z.read(name)) for name in z.namelist() if name.endswith(".csv"))
    return rows(content)


def audited_export(play: str, fmt: str, run_id: str | None, file_name: str,
                   audit: Callable[[dict], None]) -> Callable[[], bytes]:
    """A zero-argument function for `st.download_button`: renders the CRM file from the warehouse when clicked.

    The file is `retain export`'s for the run the snapshot shows (same code, same bytes), with
    the warehouse's unmasked contacts; `audit` receives {play, format, run_id, file_name, rows}
    before the bytes are handed over (if it raises, nothing is downloaded).
    """

    def render() -> bytes:
        with warehouse_connection() as con:
            content = render_download(con, play, fmt, run_id)
        audit({"play": play, "format": fmt, "run_id": run_id, "file_name": file_name,
               "rows": count_rows(content, file_name)})
        return content

    return render
