"""The Overview page: KPI tiles for the period and the one before, monthly trends, imported data sources."""

from __future__ import annotations

import duckdb
import pandas as pd

from dashboards.data.connection import has, query
from dashboards.data.filters import Filters
from dashboards.data.kpis import (
    kpi_series,
    kpi_values,
    period_sums,
    repeat_purchase_at,
    repeat_purchase_monthly,
    sums_on_spine,
)
from dashboards.data.per_customer import returning_monthly, returning_periods

#: The KPIs of the tiles and the trend lines, in the order `kpis.KPIS` defines them.
TILE_KPIS = ("avg_order_value", "on_time_delivery_rate", "nps", "csat", "complaint_resolution_rate")


def overview(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """KPI tiles for the period and the previous one, monthly trends, and the imported data sources."""
    if not has(con, "marts.fct_orders"):
        return {"available": False}
    prev = f.previous()
    returning = returning_periods(con, f)
    current, previous = {}, {}
    for values, start, end_excl in ((current, f.start, f.end_exclusive), (previous, prev.start, f.start)):
        sums = period_sums(con, f, start, end_excl)
        kpis = kpi_values(sums)
        values.update({"revenue": float(sums["revenue"]), "orders": float(sums["orders"])})
        values.update({k: kpis[k] for k in TILE_KPIS})
    repeat = repeat_purchase_monthly(con, f, prev.start, f.end)
    current["repeat_purchase_rate"] = repeat_purchase_at(repeat, f.end)
    previous["repeat_purchase_rate"] = repeat_purchase_at(repeat, prev.end)
    current["returning_customer_rate"] = returning["current"]
    previous["returning_customer_rate"] = returning["previous"]

    sums = sums_on_spine(con, f, f.start, f.end)
    trend = kpi_series(sums, TILE_KPIS)[["month", "orders", "revenue", *TILE_KPIS]]
    repeat = repeat[repeat["month"] >= pd.Timestamp(f.start)]
    trend["repeat_purchase_rate"] = repeat["repeat_purchase_rate"].to_numpy()
    ret = returning_monthly(con, f, f.start, f.end_exclusive)
    trend = trend.merge(
        ret.assign(month=pd.to_datetime(ret["month"]))[["month", "returning_customer_rate"]], on="month", how="left"
    )
    return {"available": True, "current": current, "previous": previous, "trend": trend.reset_index(drop=True),
            "sources": data_sources(con)}


def data_sources(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """Per platform and source: rows, matched to a shop customer, kept unmatched, match rate.

    From `marts.identity_match_rates`; None when no platform file was imported (only
    retain's own contract files, platform `retain`, or no table at all).
    """
    if not has(con, "marts.identity_match_rates"):
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

