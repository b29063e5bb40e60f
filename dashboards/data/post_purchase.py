"""The Post-purchase page: delivery, WISMO, message funnel, NPS/CSAT, reviews, lowest-rated
products, recent negative feedback, and the 90-day repurchase drivers."""

from __future__ import annotations

import duckdb
import pandas as pd

from dashboards.data.connection import has, query, tables
from dashboards.data.filters import Filters, customer_scope, filter_params, order_scope, orders_table
from dashboards.data.kpis import kpi_series, kpi_values, period_sums, sums_on_spine
from pipelines.core.privacy import mask_text

#: Minimum reviews a product needs to be ranked among the lowest rated (fewer is noise).
MIN_REVIEWS_FOR_RANKING = 10


def post_purchase(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Delivery, WISMO, message funnel, NPS/CSAT, reviews, lowest-rated products, recent detractors."""
    if not has(con, "marts.fct_orders"):
        return {"available": False}
    p = filter_params(f)
    sums = sums_on_spine(con, f, f.start, f.end)
    series = kpi_series(sums, ("on_time_delivery_rate", "wismo_per_100_orders", "nps", "csat", "avg_review_rating"))
    delivery = series.rename(columns={"promised_deliveries": "delivered", "on_time_deliveries": "on_time"})[
        ["month", "delivered", "on_time", "on_time_delivery_rate"]]
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
    wismo = series[["month", "orders", "wismo_per_100_orders"]]
    out = {"available": True, "delivery": delivery, "delays": delays, "wismo": wismo}
    out["funnel"] = None
    if has(con, "marts.message_engagement_monthly"):
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
    out["satisfaction"] = series.rename(columns={
        "satisfied_csat_responses": "csat_satisfied", "reviews_count": "reviews", "review_rating_sum": "rating_sum",
    })[["month", "nps_responses", "promoters", "detractors", "csat_responses", "csat_satisfied", "reviews",
        "rating_sum", "nps", "csat", "avg_review_rating"]]
    # the tiles: the period's KPIs from the period's sums (WISMO: the mean of the monthly values)
    period = kpi_values(period_sums(con, f, f.start, f.end_exclusive))
    monthly_wismo = wismo["wismo_per_100_orders"]
    out["period"] = {
        "on_time_delivery_rate": period["on_time_delivery_rate"],
        "wismo_per_100_orders": float(monthly_wismo.mean()) if monthly_wismo.notna().any() else None,
        "nps": period["nps"],
        "avg_review_rating": period["avg_review_rating"],
    }
    out["ratings"] = out["lowest_products"] = out["negative_feedback"] = None
    if has(con, "marts.fct_feedback"):
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
    if has(con, "marts.fct_feedback", "marts.product_ratings"):
        out["lowest_products"] = query(
            con,
            f"""
            with rated as (
                select product_id, count(*) as reviews, avg(score) as avg_rating,
                       count(*) filter (where sentiment = 'negative') / count(*) as low_rating_share
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



def message_type_label(message_type: str) -> str:
    """'shipping_update' → 'Shipping update'; 'delivered' → 'Delivery notice' (not the funnel step)."""
    if message_type == "delivered":
        return "Delivery notice"
    return str(message_type).replace("_", " ").capitalize()


def message_funnel(funnel: pd.DataFrame, channel: str | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """The message funnel of one channel (None: all): stage totals (Sent, Delivered, Opened, Clicked)
    and per message type the counts with open, click and unsubscribe rates (÷ delivered)."""
    part = funnel if channel is None else funnel[funnel["channel"] == channel]
    stages = {s.capitalize(): float(part[s].sum()) for s in ("sent", "delivered", "opened", "clicked")}
    by_type = part.groupby("message_type", as_index=False)[["sent", "delivered", "opened", "clicked",
                                                              "unsubscribed"]].sum()
    delivered = by_type["delivered"].where(by_type["delivered"] > 0)
    by_type["open_rate"] = by_type["opened"] / delivered
    by_type["click_rate"] = by_type["clicked"] / delivered
    by_type["unsubscribe_rate"] = by_type["unsubscribed"] / delivered
    by_type["message_type"] = by_type["message_type"].map(message_type_label)
    return stages, by_type


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
        # the post-purchase journey only (marketing messages have their own story): the
        # message_types seed says which types belong to it
        journey = (
            "where message_type in (select message_type from marts.message_types where in_post_purchase_journey)"
            if "marts.message_types" in present else ""
        )
        out["message_exposure"] = query(
            con,
            f"""
            select message_type as "group", message_type,
                   case exposure when 'sent' then 'Received' else 'Not received' end as series,
                   orders as base, repurchased_90d, repurchase_rate_90d
            from marts.repurchase_by_message_exposure
            {journey}
            order by message_type, exposure desc
            """,
        )
    if "message_exposure" in out:
        out["message_exposure"]["group"] = out["message_exposure"]["group"].map(message_type_label)
    return {k: v for k, v in out.items() if not v.empty and v["base"].sum() > 0}

