"""Queries of the Products page and of Customer 360's next-product block.

They read the published snapshot only: `marts.product_retention`, `marts.product_transitions`,
`marts.product_journey_rules`, `ml.product_recommendations` and `ml.recommendation_backtests`.
The marts already hold every rate and the minimum-support flag; nothing is recomputed here.
The journey marts cover the whole history, so the sidebar filters do not apply.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import streamlit as st

from dashboards.data.connection import TTL_SECONDS, has, query, snapshot_cursor

NO_PRODUCTS_NOTE = (
    "No product journey yet: the published snapshot has no order lines with products "
    "(marts.product_retention). Load `order_items` (or a platform export with line items) and run `retain run`. "
    "A transaction log such as CDNOW has no products."
)


def products(con: duckdb.DuckDBPyConnection) -> dict:
    """Everything the Products page draws, as small frames."""
    if not has(con, "marts.product_retention", "marts.product_transitions"):
        return {"available": False}
    retention = query(con, """
        select journey_level, journey_key, journey_name, category, first_buyers, observable_90d, repeat_rate_90d,
               observable_180d, repeat_rate_180d, median_days_to_second_order, avg_second_order_value,
               meets_min_support
        from marts.product_retention
        order by journey_level, repeat_rate_90d desc nulls last, first_buyers desc, journey_key
    """)
    if retention.empty:
        return {"available": False}
    rules = query(con, "select * from marts.product_journey_rules") if has(
        con, "marts.product_journey_rules") else pd.DataFrame()
    categories = query(con, """
        select from_key, to_key, customers, share, lift, meets_min_support
        from marts.product_transitions where journey_level = 'category'
    """)
    top_transitions = query(con, """
        select from_name, to_name, is_same, customers, from_customers, share, baseline_share, lift
        from marts.product_transitions
        where journey_level = 'product' and meets_min_support
        order by customers desc, lift desc, from_key, to_key
        limit 25
    """)
    out = {
        "available": True,
        "min_customers": int(rules.iloc[0]["min_customers"]) if not rules.empty else None,
        "overall": retention[retention["journey_level"] == "all"],
        "categories": retention[retention["journey_level"] == "category"].reset_index(drop=True),
        "products": retention[retention["journey_level"] == "product"].reset_index(drop=True),
        "category_transitions": categories,
        "top_transitions": top_transitions,
        "backtest": None,
        "recommended": None,
    }
    if has(con, "ml.recommendation_backtests"):
        out["backtest"] = query(con, """
            select cutoff_date, customers, hit_rate_at_3, baseline_hit_rate_at_3, ndcg_at_3, baseline_ndcg_at_3
            from ml.recommendation_backtests
            where run_id = (select arg_max(run_id, created_at) from ml.recommendation_backtests)
            order by cutoff_date
        """)
    if has(con, "ml.product_recommendations"):
        out["recommended"] = query(con, """
            select product_name, category, count(*) as customers,
                   count(*) filter (where reason_kind = 'next') as from_journeys,
                   count(*) filter (where reason_kind = 'rebuy') as rebuys,
                   count(*) filter (where reason_kind = 'popular') as popular_fill
            from ml.product_recommendations where rank = 1
            group by all order by customers desc limit 10
        """)
    return out


def customer_recommendations(con: duckdb.DuckDBPyConnection, customer_id: str) -> pd.DataFrame | None:
    """One customer's next products with the reason (None when the snapshot has no recommendations)."""
    if not has(con, "ml.product_recommendations"):
        return None
    return query(con, """
        select rank, product_name, category, reason
        from ml.product_recommendations where customer_id = $customer_id order by rank
    """, {"customer_id": customer_id})


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Loading…")
def load_products(snapshot: str) -> dict:
    """`products` on the snapshot, cached per snapshot."""
    with snapshot_cursor(snapshot) as cur:
        return products(cur)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_customer_recommendations(snapshot: str, customer_id: str) -> pd.DataFrame | None:
    """`customer_recommendations`, cached per customer."""
    with snapshot_cursor(snapshot) as cur:
        return customer_recommendations(cur, customer_id)
