"""The dashboard's filtered KPIs (`dashboards.data.kpis`, `dashboards.data.per_customer`) against
independent SQL over the marts' per-order, per-ticket, per-answer and per-customer rows.

For each filter combination (none; one country; one channel; one RFM segment; one risk tier;
country + channel + segment; a month range; a combination that selects nothing) every KPI a
page shows is recomputed here from `marts.fct_orders`, `marts.fct_feedback`,
`marts.fct_support_tickets`, `marts.customer_segments` and `ml.churn_scores`, written out in
this file, and must equal the dashboard's number. The definitions are kpi_monthly's
(models/marts/kpi_monthly.yml); the filter meanings are the sidebar's: country and segment
select customers, channel selects orders for order measures and the acquisition channel for
customer measures.

Runs on the shared pipeline run (`pipeline` fixture), or on the data folder in
RETAIN_DASHBOARD_TEST_DATA_DIR (a folder that already holds a published run).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from dashboards.data.connection import connect, query
from dashboards.data.filters import Filters, add_months, filter_options
from dashboards.data.kpis import SUM_COLUMNS, monthly_sums, period_sums
from dashboards.data.overview import overview
from dashboards.data.post_purchase import post_purchase
from dashboards.data.retention import retention
from dashboards.data.support import support

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def con(request):
    from pipelines.publish import current_snapshot

    reuse = os.environ.get("RETAIN_DASHBOARD_TEST_DATA_DIR")
    data_dir = Path(reuse).resolve() if reuse else request.getfixturevalue("pipeline").data_dir
    snapshot = current_snapshot(data_dir / "published")
    assert snapshot is not None
    c = connect(snapshot)
    yield c
    c.close()


@pytest.fixture(scope="module")
def options(con) -> dict:
    return filter_options(con)


def _filters(options: dict) -> dict[str, Filters]:
    months = options["months"]
    start, end = months[max(0, len(months) - 12)], months[-1]
    country, channel = options["countries"][0], options["channels"][0]
    rfm = next(s for s in options["segments"] if s.startswith("rfm:"))
    risk = next((s for s in options["segments"] if s.startswith("risk:")), None)
    out = {
        "none": Filters(start, end),
        "one country": Filters(start, end, countries=(country,)),
        "one channel": Filters(start, end, channels=(channel,)),
        "one RFM segment": Filters(start, end, segment=rfm),
        "country + channel + segment": Filters(start, end, countries=(country,), channels=(channel,), segment=rfm),
        "a month range": Filters(months[len(months) // 3], months[len(months) // 2]),
        # a country nobody lives in: every KPI empty, every count 0
        "selects nothing": Filters(start, end, countries=("ZZ",)),
    }
    if risk:
        out["one risk tier"] = Filters(start, end, segment=risk)
        out["country + channel + risk tier"] = Filters(start, end, countries=(country,), channels=(channel,),
                                                       segment=risk)
    return out


FILTER_NAMES = ("none", "one country", "one channel", "one RFM segment", "one risk tier",
                "country + channel + segment", "country + channel + risk tier", "a month range", "selects nothing")


def _selected(f: Filters) -> str:
    """The selected customers, written independently of the dashboard: country and segment."""
    kind, _, value = f.segment.partition(":")
    where = ["true"]
    if f.countries:
        where.append("s.country in (select unnest($countries))")
    if kind == "rfm":
        where.append("s.rfm_segment = $segment")
    join = "join ml.churn_scores r on r.customer_id = s.customer_id" if kind == "risk" else ""
    if kind == "risk":
        where.append("r.risk_tier = $segment")
    return (f"select s.customer_id, s.acquisition_channel from marts.customer_segments s {join} "
            f"where {' and '.join(where)}")


def _acquired(f: Filters) -> str:
    """Customers for customer measures: selected, and acquired through a selected channel."""
    channel = "and acquisition_channel in (select unnest($channels))" if f.channels else ""
    return f"select customer_id from ({_selected(f)}) where true {channel}"


def _in_channel(f: Filters, column: str = "o.sales_channel") -> str:
    return f"{column} in (select unnest($channels))" if f.channels else "true"


def _expected(con, f: Filters) -> dict:
    """Every period KPI of the pages, from the marts' rows."""
    prev = f.previous()
    p = {"start": f.start, "end_excl": f.end_exclusive, "prev_start": prev.start,
         "countries": list(f.countries), "channels": list(f.channels), "segment": f.segment.partition(":")[2]}
    sel, acq = _selected(f), _acquired(f)

    def one(sql: str) -> dict:
        used = {k: v for k, v in p.items() if f"${k}" in sql}
        return {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
                for k, v in con.execute(sql, used).df().iloc[0].to_dict().items()}

    out = one(f"""
        select count(*) as orders, coalesce(sum(total), 0) as revenue, sum(total) / nullif(count(*), 0) as aov,
               coalesce(sum(total) filter (where customer_order_number > 1), 0) / nullif(sum(total), 0) as repeat_share
        from marts.fct_orders o
        where is_valid and ordered_at >= $start and ordered_at < $end_excl
          and customer_id in (select customer_id from ({sel})) and {_in_channel(f)}
    """)
    out |= one(f"""
        select count(*) filter (where is_delivered_on_time)::double / nullif(count(*), 0) as on_time
        from marts.fct_orders o
        where is_valid and delivered_at >= $start and delivered_at < $end_excl and promised_delivery_date is not null
          and customer_id in (select customer_id from ({sel})) and {_in_channel(f)}
    """)
    out |= one(f"""
        select 100.0 * (count(*) filter (where feedback_type = 'nps' and score >= 9)
                        - count(*) filter (where feedback_type = 'nps' and score <= 6))
                   / nullif(count(*) filter (where feedback_type = 'nps'), 0) as nps,
               100.0 * count(*) filter (where feedback_type = 'csat' and score >= 4)
                   / nullif(count(*) filter (where feedback_type = 'csat'), 0) as csat,
               avg(score) filter (where feedback_type = 'review') as rating
        from marts.fct_feedback
        where submitted_at >= $start and submitted_at < $end_excl and customer_id in ({acq})
    """)
    out |= one(f"""
        select count(*) as tickets, count(*) filter (where is_complaint) as complaints,
               count(*) filter (where is_complaint and resolved_at is not null)::double
                   / nullif(count(*) filter (where is_complaint), 0) as resolved,
               count(*) filter (where is_complaint and agent_replies = 1 and reopen_count = 0
                                  and resolved_at is not null)::double
                   / nullif(count(*) filter (where is_complaint and resolved_at is not null), 0) as fcr,
               count(*) filter (where reopen_count > 0)::double / nullif(count(*), 0) as reopened,
               median(hours_to_first_response) filter (where is_complaint) as first_response,
               median(hours_to_resolution) filter (where is_complaint) as resolution
        from marts.fct_support_tickets
        where created_at >= $start and created_at < $end_excl and customer_id in ({acq})
    """)
    out |= one(f"""
        with counts as (
            select customer_id, count(*) as n from marts.fct_orders
            where is_valid and ordered_at < $end_excl and customer_id in ({acq}) group by 1
        )
        select count(*) filter (where n >= 2)::double / nullif(count(*), 0) as repeat_rate from counts
    """)
    out |= one(f"""
        with active as (
            select customer_id,
                   bool_or(ordered_at >= $start) as now,
                   bool_or(ordered_at < $start) as before
            from marts.fct_orders o
            where is_valid and ordered_at >= $prev_start and ordered_at < $end_excl
              and customer_id in (select customer_id from ({sel})) and {_in_channel(f)}
            group by 1
        )
        select count(*) filter (where now and before)::double / nullif(count(*) filter (where before), 0)
                   as returning_rate
        from active
    """)
    out |= one(f"""
        select median(days_since_previous_order) as days_between
        from marts.fct_orders o
        where is_valid and customer_order_number > 1 and ordered_at >= $start and ordered_at < $end_excl
          and customer_id in (select customer_id from ({sel})) and {_in_channel(f)}
    """)
    # WISMO per 100 orders: the mean over the months with orders of the monthly values
    out |= one(f"""
        with months as (
            select order_month as month, count(*) as orders from marts.fct_orders o
            where is_valid and ordered_at >= $start and ordered_at < $end_excl
              and customer_id in (select customer_id from ({sel})) and {_in_channel(f)}
            group by 1
        ),
        wismo as (
            select created_month as month, count(*) filter (where category = 'wismo') as tickets
            from marts.fct_support_tickets
            where created_at >= $start and created_at < $end_excl and customer_id in ({acq})
            group by 1
        )
        select avg(100.0 * coalesce(w.tickets, 0) / m.orders) as wismo from months m left join wismo w using (month)
    """)
    return out


def _same(mine, expected, what: str) -> None:
    if expected is None:
        assert mine is None or (isinstance(mine, float) and math.isnan(mine)), f"{what}: {mine} instead of nothing"
    else:
        assert mine is not None and mine == pytest.approx(expected, rel=1e-9, abs=1e-9), f"{what}: {mine} ≠ {expected}"


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_every_filtered_kpi_equals_the_marts(con, options, name):
    f = _filters(options).get(name)
    if f is None:
        pytest.skip("no churn scores in this run, so no risk tiers to filter by")
    want = _expected(con, f)
    o, r = overview(con, f)["current"], retention(con, f)
    pp, s = post_purchase(con, f)["period"], support(con, f)["period"]
    for what, mine, expected in (
        ("orders", o["orders"], want["orders"]),
        ("revenue", o["revenue"], want["revenue"]),
        ("avg_order_value", o["avg_order_value"], want["aov"]),
        ("on_time_delivery_rate", o["on_time_delivery_rate"], want["on_time"]),
        ("on_time_delivery_rate (post-purchase)", pp["on_time_delivery_rate"], want["on_time"]),
        ("nps", o["nps"], want["nps"]),
        ("nps (post-purchase)", pp["nps"], want["nps"]),
        ("csat", o["csat"], want["csat"]),
        ("avg_review_rating", pp["avg_review_rating"], want["rating"]),
        ("wismo_per_100_orders", pp["wismo_per_100_orders"], want["wismo"]),
        ("complaint_resolution_rate", o["complaint_resolution_rate"], want["resolved"]),
        ("complaint_resolution_rate (support)", s["complaint_resolution_rate"], want["resolved"]),
        ("complaints", s["complaints"], want["complaints"]),
        ("tickets", s["tickets"], want["tickets"]),
        ("first_contact_resolution_rate", s["first_contact_resolution_rate"], want["fcr"]),
        ("reopen_rate", s["reopen_rate"], want["reopened"]),
        ("median_hours_first_response", s["median_hours_first_response"], want["first_response"]),
        ("median_hours_resolution", s["median_hours_resolution"], want["resolution"]),
        ("repeat_purchase_rate", o["repeat_purchase_rate"], want["repeat_rate"]),
        ("repeat_purchase_rate (retention)", r["repeat_purchase_rate"], want["repeat_rate"]),
        ("returning_customer_rate", o["returning_customer_rate"], want["returning_rate"]),
        ("median_days_between_orders", r["median_days_between_orders"], want["days_between"]),
        ("returning_revenue_share", r["returning_revenue_share"], want["repeat_share"]),
    ):
        _same(mine, expected, f"{name}: {what}")
    if name == "selects nothing":
        assert o["orders"] == 0 and s["tickets"] == 0


def test_cells_add_up_to_the_unfiltered_sums(con, options):
    """Additivity: the cells of each country, summed, are the unfiltered cells (every column, every month)."""
    months = options["months"]
    everyone = Filters(months[0], months[-1])
    total = period_sums(con, everyone, everyone.start, everyone.end_exclusive)
    by_country = sum(period_sums(con, Filters(everyone.start, everyone.end, countries=(c,)),
                                 everyone.start, everyone.end_exclusive) for c in options["countries"])
    unknown = query(con, f"select {', '.join(f'coalesce(sum({c}), 0)::double as {c}' for c in SUM_COLUMNS)} "
                         "from marts.kpi_monthly_cells where country is null").iloc[0]
    for column in SUM_COLUMNS:
        assert by_country[column] + unknown[column] == pytest.approx(total[column]), column
    assert total["orders"] > 0


def test_unfiltered_sums_are_kpi_monthly(con):
    """Summed over all cells, every month's counts are kpi_monthly's (the unfiltered truth)."""
    months = filter_options(con)["months"]
    sums = monthly_sums(con, Filters(months[0], months[-1]))
    kpi = query(con, "select * from marts.kpi_monthly")
    kpi["month"] = kpi["month"].astype("datetime64[ns]")
    both = kpi.merge(sums.assign(month=sums["month"].astype("datetime64[ns]")), on="month", how="left",
                     suffixes=("", "_cells")).fillna({c + "_cells": 0 for c in SUM_COLUMNS})
    for mart, cells in (("orders", "orders_cells"), ("revenue", "revenue_cells"),
                        ("new_customers", "new_customers_cells"), ("delivered_orders", "delivered_orders_cells"),
                        ("nps_responses", "nps_responses_cells"), ("csat_responses", "csat_responses_cells"),
                        ("reviews_count", "reviews_count_cells"), ("complaints", "complaints_cells"),
                        ("wismo_tickets", "wismo_tickets_cells")):
        assert (both[mart].astype(float) - both[cells].astype(float)).abs().max() < 1e-6, mart
    # and a month range's period sums are the months' sums
    start = add_months(months[-1], -2)
    three = period_sums(con, Filters(start, months[-1]), start, add_months(months[-1], 1))
    assert three["orders"] == pytest.approx(float(kpi[kpi["month"] >= start.isoformat()]["orders"].sum()))
