"""Filtered KPIs: sums of the additive KPI columns over the cells the filters select.

`marts.kpi_monthly_cells` holds, per month × customer country × channel × RFM segment, the
numerators and denominators of `marts.kpi_monthly` (orders, revenue, on-time deliveries and
deliveries with a promise, promoters / detractors / NPS answers, complaints / resolved ones,
...). A filtered KPI is `sum(numerator) / sum(denominator)` over the selected cells, and over
all cells it is `kpi_monthly`'s value (dbt test `assert_kpi_cells_reconcile_with_kpi_monthly`).
The churn risk tier is scored after dbt runs, so it is not a cell key: a risk-tier filter sums
the same columns over the selected customers' rows of `marts.kpi_customer_monthly`, the mart
the cells are summed from.

`channel` means the order's sales channel for order and delivery measures and the customer's
acquisition channel for customer measures (repeat rate, surveys, reviews, tickets), exactly
as the sidebar's channel filter does. What cannot be summed from cells (distinct customers
over months or channels, medians) is in `dashboards.data.per_customer`.

`KPIS` is the one place that turns the sums into KPI values; every page reads it.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from dashboards.data.connection import has, query
from dashboards.data.filters import (
    RFM_SEGMENTS,
    RISK_TIERS,
    Filters,
    add_months,
    connection_memo,
    filter_params,
    selected_customers,
)
from dashboards.data.frames import in_months, on_spine, ratio, series_ratio

CELLS = "marts.kpi_monthly_cells"
CUSTOMER_MONTHS = "marts.kpi_customer_monthly"

#: The additive columns of the cells (see models/marts/kpi_monthly_cells.yml).
SUM_COLUMNS = (
    "orders", "revenue", "first_orders", "new_customer_revenue", "returning_customer_revenue",
    "delivered_orders", "returned_orders", "promised_deliveries", "on_time_deliveries",
    "new_customers", "second_orders",
    "nps_responses", "promoters", "detractors", "csat_responses", "satisfied_csat_responses",
    "reviews_count", "review_rating_sum",
    "tickets", "complaints", "resolved_complaints", "first_contact_resolutions", "wismo_tickets",
    "reopened_tickets",
)

#: KPI name → (numerator, denominator, scale): value = scale × sum(numerator) ÷ sum(denominator),
#: as defined in models/marts/kpi_monthly.yml. NPS's numerator is promoters − detractors.
KPIS: dict[str, tuple[str, str, float]] = {
    "avg_order_value": ("revenue", "orders", 1.0),
    "on_time_delivery_rate": ("on_time_deliveries", "promised_deliveries", 1.0),
    "return_rate": ("returned_orders", "delivered_orders", 1.0),
    "nps": ("promoters - detractors", "nps_responses", 100.0),
    "csat": ("satisfied_csat_responses", "csat_responses", 100.0),
    "avg_review_rating": ("review_rating_sum", "reviews_count", 1.0),
    "complaint_resolution_rate": ("resolved_complaints", "complaints", 1.0),
    "first_contact_resolution_rate": ("first_contact_resolutions", "resolved_complaints", 1.0),
    "reopen_rate": ("reopened_tickets", "tickets", 1.0),
    "wismo_per_100_orders": ("wismo_tickets", "orders", 100.0),
}


def _numerator(sums, name: str):
    if name == "promoters - detractors":
        return sums["promoters"] - sums["detractors"]
    return sums[name]


def kpi_values(sums: pd.Series | dict) -> dict[str, float | None]:
    """Every KPI of `KPIS` from one set of sums (a period's), None where the denominator is 0."""
    return {name: ratio(_numerator(sums, num), sums[den], scale) for name, (num, den, scale) in KPIS.items()}


def kpi_series(sums: pd.DataFrame, names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """`sums` (one row per month) with a column per KPI of `KPIS` (or of `names`), NaN where the denominator is 0."""
    out = sums.copy()
    for name in names or tuple(KPIS):
        num, den, scale = KPIS[name]
        out[name] = series_ratio(_numerator(sums, num), sums[den], scale)
    return out


def cells_available(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the snapshot has the KPI cells (every snapshot published since the mart exists)."""
    return has(con, CELLS, CUSTOMER_MONTHS)


def _source(con: duckdb.DuckDBPyConnection, f: Filters) -> tuple[str, str]:
    """(table, SQL predicate) of the rows the filters select: cells, or the customer months of a
    risk tier's customers."""
    kind, _, value = f.segment.partition(":")
    channel = ["list_contains($channels, channel)"] if f.channels else []
    if kind == "risk" and value in RISK_TIERS:
        customers = selected_customers(con, f, use_channel=False)
        return CUSTOMER_MONTHS, " and ".join([f"customer_id in ({customers})", *channel])
    conditions = list(channel)
    if f.countries:
        conditions.append("list_contains($countries, country)")
    if kind == "rfm" and value in RFM_SEGMENTS:
        conditions.append("rfm_segment = $segment")
    return CELLS, " and ".join(conditions) or "true"


def monthly_sums(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per month of all time (months with any selected cell), every column of `SUM_COLUMNS`
    summed over the cells the country, channel and segment filters select. Memoised per
    connection and filters: a page asks for it several times."""
    memo = connection_memo(con)
    key = ("monthly_sums", f.countries, f.channels, f.segment)
    if key in memo:
        return memo[key]
    if not cells_available(con):
        df = pd.DataFrame(columns=["month", *SUM_COLUMNS])
    else:
        table, where = _source(con, f)
        sums = ", ".join(f"coalesce(sum({c}), 0)::double as {c}" for c in SUM_COLUMNS)
        df = query(con, f"select month, {sums} from {table} where {where} group by month order by month",
                   filter_params(f))
    df["month"] = pd.to_datetime(df["month"])
    memo[key] = df
    return df


def sums_on_spine(con: duckdb.DuckDBPyConnection, f: Filters, start: date, end: date) -> pd.DataFrame:
    """`monthly_sums` for the months `start`..`end` (inclusive), every month present, 0 where nothing happened."""
    df = in_months(monthly_sums(con, f), start, add_months(end, 1))
    return on_spine(df, start, end, SUM_COLUMNS)


def period_sums(con: duckdb.DuckDBPyConnection, f: Filters, start: date, end_excl: date) -> pd.Series:
    """Every column of `SUM_COLUMNS` summed over the months from `start` to before `end_excl`."""
    df = in_months(monthly_sums(con, f), start, end_excl)
    return df[list(SUM_COLUMNS)].sum().reindex(list(SUM_COLUMNS), fill_value=0)


def repeat_purchase_monthly(con: duckdb.DuckDBPyConnection, f: Filters, start: date, end: date) -> pd.DataFrame:
    """repeat_purchase_rate at the end of each month: customers with ≥ 2 valid orders ÷ with ≥ 1, to date.

    Both counts are cumulative sums of cells (a customer's first and second orders are counted
    once, on their acquisition channel), so the rate is exact for any filter.
    """
    sums = monthly_sums(con, f)
    df = sums[sums["month"] <= pd.Timestamp(end)][["month", "new_customers", "second_orders"]]
    df = df[(df["new_customers"] > 0) | (df["second_orders"] > 0)]
    if df.empty:
        return on_spine(pd.DataFrame(columns=["month", "repeat_purchase_rate"]), start, end)
    df = df.set_index("month").reindex(pd.date_range(df["month"].min(), pd.Timestamp(end), freq="MS"), fill_value=0)
    df["customers"] = df["new_customers"].cumsum()
    df["repeat_customers"] = df["second_orders"].cumsum()
    df["repeat_purchase_rate"] = series_ratio(df["repeat_customers"], df["customers"])
    df = df.rename_axis("month").reset_index()
    return on_spine(df[["month", "customers", "repeat_customers", "repeat_purchase_rate"]], start, end)


def repeat_purchase_at(repeat: pd.DataFrame, month: date) -> float | None:
    """The repeat purchase rate at the end of `month` from `repeat_purchase_monthly`'s frame."""
    value = repeat.set_index("month")["repeat_purchase_rate"].get(pd.Timestamp(month))
    return None if value is None or pd.isna(value) else float(value)

