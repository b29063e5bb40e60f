"""The KPIs that are not sums of cells, computed exactly from the marts' per-order, per-ticket
and per-customer rows for the selected customers: written once, here.

- returning_customer_rate (monthly, and over a period and the one before): distinct customers
  who ordered in two consecutive periods. A customer can order in several channels and months,
  so counts per cell do not add up. Unfiltered monthly values are read from `marts.kpi_monthly`.
- cohort retention: distinct active customers per first-order month (`marts.retention_cohorts`
  when nobody is filtered out).
- medians: days between orders, hours to first response and to resolution (a median of a
  union is not a function of the parts' medians).

Everything additive (orders, revenue, rates of counts) is in `dashboards.data.kpis`.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from dashboards.data.connection import has, query, table_columns
from dashboards.data.filters import (
    Filters,
    acquired_scope,
    add_months,
    customer_scope,
    filter_params,
    order_scope,
    orders_table,
)
from dashboards.data.frames import nan_to_none, ratio, series_ratio


def cohort_retention(con: duckdb.DuckDBPyConnection, f: Filters, use_mart: bool | None = None) -> pd.DataFrame:
    """Retention by first-order month (cohorts starting in the period) and months since.

    With no customer filter the mart `marts.retention_cohorts` holds exactly this and is read
    (`use_mart=None` decides so); otherwise it is computed from the orders of the selected
    customers, with the mart's definition. Months in which nobody of a cohort ordered are
    left out here (the mart lists them with 0).
    """
    if use_mart is None:
        use_mart = not f.selects_customers and has(con, "marts.retention_cohorts")
    p = filter_params(f)
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
        use_mart = not f.selects_customers and "returning_customer_rate" in table_columns(con, "marts.kpi_monthly")
    if use_mart:
        df = query(
            con,
            "select month, returning_customer_rate from marts.kpi_monthly where month >= $m_from and month < $m_to",
            {"m_from": start, "m_to": end_excl},
        )
        df = df.assign(month=pd.to_datetime(df["month"])).set_index("month").reindex(months)
        return df.rename_axis("month").reset_index()
    p = {**filter_params(f), "m_from": add_months(start, -1), "m_to": end_excl}
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
    df["returning_customer_rate"] = series_ratio(df["returning_customers"], df["previous_customers"])
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
    df = query(con, sql, filter_params(f)).iloc[0]
    return {
        "current": ratio(df["returning_now"], df["base_now"]),
        "previous": ratio(df["returning_before"], df["base_before"]),
    }




def median_days_between_orders(con: duckdb.DuckDBPyConnection, f: Filters) -> float | None:
    """Median `days_since_previous_order` of the repeat orders placed in the period (selected channels)."""
    value = query(
        con,
        f"""
        select quantile_cont(days_since_previous_order, 0.5) as median_days
        from {orders_table(con, f)} o
        where o.is_repeat_order and o.ordered_at >= $start and o.ordered_at < $end_excl and {order_scope(con, f)}
        """,
        filter_params(f),
    ).iloc[0]["median_days"]
    return nan_to_none(value)


#: The ticket medians, over complaints (as kpi_monthly defines them) or over every ticket (per category).
_TICKET_MEDIANS = (
    "quantile_cont(hours_to_first_response, 0.5) {only} as median_hours_first_response, "
    "quantile_cont(hours_to_resolution, 0.5) {only} as median_hours_resolution"
)


def ticket_medians(con: duckdb.DuckDBPyConnection, f: Filters, by: str | None = None,
                   complaints_only: bool = True) -> pd.DataFrame:
    """Median hours to first response and to resolution of the tickets created in the period by the
    selected customers: of complaints (`complaints_only`, the KPIs) or of every ticket, for the
    whole period or per `by` ('month' or 'category'; per category also the ticket count)."""
    if not has(con, "marts.fct_support_tickets"):
        return pd.DataFrame()
    medians = _TICKET_MEDIANS.format(only="filter (where is_complaint)" if complaints_only else "")
    group = {"month": "created_month as month", "category": "category"}.get(by or "")
    select = f"{group}, {medians}" if group else medians
    extra = ", count(*) as tickets" if by == "category" else ""
    order = " group by 1 order by tickets desc" if by == "category" else " group by 1 order by 1" if group else ""
    return query(
        con,
        f"""
        select {select}{extra}
        from marts.fct_support_tickets
        where created_at >= $start and created_at < $end_excl and {customer_scope(con, f)}
        {order}
        """,
        filter_params(f),
    )
