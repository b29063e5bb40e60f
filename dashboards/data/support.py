"""The Support page: ticket volume by category, response and resolution times, first-contact
resolution, reopen rate and complaint recovery."""

from __future__ import annotations

import duckdb
import pandas as pd

from dashboards.data.connection import has, query, table_columns
from dashboards.data.filters import Filters, customer_scope, filter_params
from dashboards.data.frames import nan_to_none
from dashboards.data.kpis import kpi_series, kpi_values, period_sums, sums_on_spine
from dashboards.data.per_customer import ticket_medians


def ticket_category_labels(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Category → label for people, in the seed's order (`marts.ticket_categories`, from seeds/)."""
    if not has(con, "marts.ticket_categories"):
        return {}
    rows = con.execute("select category, label from marts.ticket_categories").fetchall()
    return dict(rows)


def support(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Ticket volume by category, response and resolution times, FCR, reopen rate, complaint recovery."""
    if not has(con, "marts.fct_support_tickets"):
        return {"available": False}
    p = filter_params(f)
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
    labels = ticket_category_labels(con)
    by_category["category"] = by_category["category"].map(labels).fillna(by_category["category"])
    sums = sums_on_spine(con, f, f.start, f.end)
    monthly = kpi_series(sums, ("complaint_resolution_rate", "first_contact_resolution_rate", "reopen_rate"))
    monthly = monthly.rename(columns={
        "resolved_complaints": "complaints_resolved", "first_contact_resolutions": "complaints_fcr",
        "reopened_tickets": "reopened",
    })[["month", "tickets", "complaints", "complaints_resolved", "complaints_fcr", "wismo_tickets", "reopened",
        "complaint_resolution_rate", "first_contact_resolution_rate", "reopen_rate"]]
    medians = ticket_medians(con, f, by="month")
    medians = medians.assign(month=pd.to_datetime(medians["month"]))
    monthly = monthly.merge(medians, on="month", how="left")
    sums = period_sums(con, f, f.start, f.end_exclusive)
    kpis = kpi_values(sums)
    period = {
        "tickets": sums["tickets"],
        "complaints": sums["complaints"],
        **{k: kpis[k] for k in ("complaint_resolution_rate", "first_contact_resolution_rate", "reopen_rate")},
        **ticket_medians(con, f).iloc[0].to_dict(),
    }
    times = ticket_medians(con, f, by="category", complaints_only=False)
    times["category"] = times["category"].map(labels).fillna(times["category"])
    recovery = None
    if has(con, "marts.complaint_recovery"):
        order = "outcome_order" if "outcome_order" in table_columns(con, "marts.complaint_recovery") else "outcome"
        recovery = query(
            con,
            "select outcome, customers, repurchased_90d, repurchase_rate_90d "  # noqa: S608 - fixed column
            f"from marts.complaint_recovery order by {order}",
        )
    return {
        "available": True,
        "by_category": by_category,
        "category_order": list(labels.values()),
        "monthly": monthly,
        "period": {k: nan_to_none(v) for k, v in period.items()},
        "times": times,
        "recovery": recovery,
    }


#: A reason's driver is its text up to the first comma with its numbers as N, so "no order for 210
#: days, 2.3x their usual gap" and "no order for 95 days" count as one: "no order for N days".

