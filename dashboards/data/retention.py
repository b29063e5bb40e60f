"""The Retention page: cohorts, repeat purchase rate, days between orders, new vs repeat revenue."""

from __future__ import annotations

import duckdb

from dashboards.data.connection import has, query
from dashboards.data.filters import Filters, filter_params, order_scope, orders_table
from dashboards.data.frames import ratio
from dashboards.data.kpis import period_sums, repeat_purchase_at, repeat_purchase_monthly, sums_on_spine
from dashboards.data.per_customer import cohort_retention, median_days_between_orders


def retention(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Cohort retention, repeat purchase rate over time, days between orders, new vs returning revenue."""
    if not has(con, "marts.fct_orders"):
        return {"available": False}
    p = filter_params(f)
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
    sums = sums_on_spine(con, f, f.start, f.end)
    revenue = sums.rename(columns={"new_customer_revenue": "new_revenue",
                                   "returning_customer_revenue": "returning_revenue"})
    period = period_sums(con, f, f.start, f.end_exclusive)
    month_1 = cohorts[cohorts["months_since_first_order"] == 1]
    return {
        "available": True,
        "cohorts": cohorts,
        "repeat": repeat,
        "gaps": gaps.drop(columns="sort_key"),
        "median_days_between_orders": median_days_between_orders(con, f),
        "revenue_split": revenue[["month", "new_revenue", "returning_revenue"]],
        # the tiles: repeat rate at the period's end, month-1 retention of the period's cohorts,
        # share of revenue from repeat orders
        "repeat_purchase_rate": repeat_purchase_at(repeat, f.end),
        "ordered_again_next_month": ratio(month_1["active_customers"].sum(), month_1["cohort_size"].sum()),
        "returning_revenue_share": ratio(period["returning_customer_revenue"],
                                         period["new_customer_revenue"] + period["returning_customer_revenue"]),
    }

