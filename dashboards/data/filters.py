"""The filter model (`Filters`), its bound SQL parameters and scopes, and the filter options.

The date range selects whole calendar months (UTC), like the KPI marts. Country and segment
(churn risk tier or RFM segment) select customers. Sales channel selects orders for order
measures (revenue, orders, AOV, delivery) and, for customer measures (repeat and returning
rates, cohorts, surveys, tickets, churn), the customers whose first valid order came through
that channel (`marts.customer_segments.acquisition_channel`). The KPI cells of
`marts.kpi_monthly_cells` carry the same two meanings in their one `channel` column.

Filter values reach SQL only as bound parameters (`filter_params`); the only identifiers in
SQL are constants and values picked from the allow-lists `RFM_SEGMENTS` and `RISK_TIERS`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from datetime import date

import duckdb
import pandas as pd

from dashboards.data.connection import has, query, table_columns
from dashboards.data.frames import month_spine

#: Churn risk tiers of `ml.churn_scores`, highest first.
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
        return add_months(self.end, 1)

    @property
    def months(self) -> int:
        """Number of months selected."""
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    def previous(self) -> Filters:
        """The same filters over the equally long period just before this one."""
        return replace(self, start=add_months(self.start, -self.months), end=add_months(self.start, -1))

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


def add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_start(d: date) -> date:
    """First day of `d`'s month."""
    return date(d.year, d.month, 1)


def filter_params(f: Filters) -> dict:
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


def connection_memo(con: duckdb.DuckDBPyConnection) -> dict:
    """A dict kept per connection for results a page asks for more than once (temp tables' filters, sums)."""
    return _SCOPES.setdefault(con, {})


def selected_customers(con: duckdb.DuckDBPyConnection, f: Filters, use_channel: bool) -> str | None:
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
    held = connection_memo(con)
    if held.get(name) != key:
        query(
            con,
            f"create or replace temp table {name} as select s.customer_id, s.acquisition_channel "
            f"from marts.customer_segments s{join} where {' and '.join(conditions)}",
            filter_params(f),
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
    selected = selected_customers(con, f, use_channel)
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
    held = connection_memo(con)
    if held.get(name) != key:
        selected = selected_customers(con, f, use_channel=False)
        columns = ", ".join(c for c in _ORDER_COLUMNS if c in table_columns(con, "marts.fct_orders"))
        query(con, f"create or replace temp table {name} as select {columns} from marts.fct_orders "
                   f"where customer_id in ({selected})", filter_params(f))
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

# --------------------------------------------------------------------------------------
# Options for the filters


def filter_options(con: duckdb.DuckDBPyConnection) -> dict:
    """Allowed filter values from the snapshot: months with data, countries, channels, segments."""
    out = {"months": [], "countries": [], "channels": [], "segments": [""], "currency": None}
    if not has(con, "marts.fct_orders"):
        return out
    bounds = query(
        con,
        "select min(ordered_at)::date as first, max(ordered_at)::date as last from marts.fct_orders where is_valid",
    )
    first, last = bounds.iloc[0]["first"], bounds.iloc[0]["last"]
    if pd.notna(first):
        out["months"] = [m.date() for m in month_spine(month_start(first), month_start(last))["month"]]
    if "sales_channel" in table_columns(con, "marts.fct_orders"):
        out["channels"] = query(
            con, "select distinct sales_channel from marts.fct_orders where sales_channel is not null order by 1"
        )["sales_channel"].tolist()
    if "currency" in table_columns(con, "marts.fct_orders"):
        cur = query(
            con,
            "select currency, count(*) as n from marts.fct_orders where currency is not null "
            "group by 1 order by n desc",
        )
        out["currency"] = cur["currency"].tolist()
    if has(con, "marts.customer_segments"):
        out["countries"] = query(
            con, "select distinct country from marts.customer_segments where country is not null order by 1"
        )["country"].tolist()
        present = set(query(con, "select distinct rfm_segment from marts.customer_segments")["rfm_segment"])
        out["segments"] += [f"rfm:{s}" for s in RFM_SEGMENTS if s in present]
    if has(con, "ml.churn_scores"):
        out["segments"] = ["", *(f"risk:{t}" for t in RISK_TIERS), *out["segments"][1:]]
    return out

