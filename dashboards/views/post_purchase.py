"""Post-purchase experience: delivery, WISMO, messages, satisfaction and reviews, and what drives repurchase."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, ui
from dashboards.data.connection import NO_ORDERS_NOTE
from dashboards.data.post_purchase import message_funnel

ctx, d = ui.start_page("Post-purchase experience", "post_purchase", NO_ORDERS_NOTE)
f = ctx.filters

delivery, wismo, sat, period = d["delivery"], d["wismo"], d["satisfaction"], d["period"]
cols = st.columns(4)
with cols[0]:
    ui.tile("On-time delivery", ui.pct(period["on_time_delivery_rate"]), None, delivery["on_time_delivery_rate"],
            "Orders delivered on or before the promised date ÷ orders delivered with a promised date.")
with cols[1]:
    ui.tile("WISMO per 100 orders", ui.number(period["wismo_per_100_orders"], 2), None, wismo["wismo_per_100_orders"],
            "'Where is my order?' tickets per 100 valid orders (monthly average).", lower_is_better=True)
with cols[2]:
    ui.tile("NPS", ui.number(period["nps"], 1), None, sat["nps"], "% promoters (9–10) − % detractors (0–6).")
with cols[3]:
    ui.tile("Average review rating", ui.number(period["avg_review_rating"], 2, " ★"), None,
            sat["avg_review_rating"], "Mean star rating of reviews written.")

st.subheader("Delivery")
left, right = st.columns(2)
with left:
    charts.show(charts.lines(delivery, "month", {"on_time_delivery_rate": "On-time delivery rate"}, y_format="pct",
                             y_title="Delivered on time", title="On-time delivery rate", hover_format="pct1"),
                "No deliveries in this period.")
with right:
    charts.show(charts.bars(d["delays"], "days_late", {"orders": "Late orders"}, y_format="count",
                            y_title="Late orders", x_title="Days late", colors=[charts.ORANGE], text_format="count",
                            title="How late are late deliveries?"),
                "No late deliveries in this period.")
charts.show(charts.bars(wismo, "month", {"wismo_per_100_orders": "WISMO tickets per 100 orders"},
                        y_format="number", y_title="Tickets per 100 orders", colors=[charts.RED], height=280,
                        title="'Where is my order?' tickets per 100 orders"),
            "No WISMO tickets in this period.")

st.subheader("Messages: sent → delivered → opened → clicked")
funnel = d["funnel"]
if funnel is None:
    ui.note("Message engagement is not available yet (marts.message_engagement_monthly).")
elif funnel.empty:
    ui.note("No messages sent in this period.")
else:
    if f.selects_customers:
        st.caption("Message engagement is aggregated by the warehouse per month, channel and type; "
                   "only the period filter applies here.")
    channels = sorted(funnel["channel"].unique())
    left, right = st.columns([2, 3])
    with left:
        pick = st.segmented_control("Channel", ["all", *channels], default="all", key="funnel_channel",
                                    format_func=lambda c: "All channels" if c == "all" else c.capitalize())
        stages, by_type = message_funnel(funnel, None if pick in (None, "all") else pick)
        charts.show(charts.funnel(stages), "No messages on this channel.")
    with right:
        st.dataframe(
            by_type.sort_values("sent", ascending=False)[
                ["message_type", "sent", "delivered", "open_rate", "click_rate", "unsubscribe_rate"]],
            hide_index=True,
            column_config={
                "message_type": "Message type",
                "sent": st.column_config.NumberColumn("Sent", format="localized"),
                "delivered": st.column_config.NumberColumn("Delivered", format="localized"),
                "open_rate": st.column_config.NumberColumn("Open rate", format="percent"),
                "click_rate": st.column_config.NumberColumn("Click rate", format="percent"),
                "unsubscribe_rate": st.column_config.NumberColumn("Unsubscribe rate", format="percent"),
            },
        )

st.subheader("Satisfaction and reviews")
left, right = st.columns(2)
with left:
    charts.show(charts.lines(sat, "month", {"nps": "NPS", "csat": "CSAT (%)"}, y_format="score", y_title="Score",
                             colors=[charts.TEAL, charts.ORANGE], title="NPS and CSAT by month"),
                "No survey answers in this period.")
with right:
    ratings = d["ratings"]
    if ratings is not None and not ratings.empty:
        ratings = ratings.assign(stars=ratings["rating"].astype(int).map(lambda r: "★" * r))
    charts.show(charts.bars(ratings, "stars", {"reviews": "Reviews"}, y_format="count", y_title="Reviews",
                            x_title="Rating", colors=[charts.YELLOW], text_format="count",
                            title="Review ratings")
                if ratings is not None else None, "No reviews in this period.")

left, right = st.columns(2)
with left:
    st.markdown("**Lowest-rated products**")
    low = d["lowest_products"]
    if ui.is_empty(low):
        ui.note("Too few reviews in this selection to rank products.")
    else:
        st.caption(f"Products with at least {int(low['min_reviews'].iloc[0])} reviews in the selection, worst first.")
        low = low.drop(columns="min_reviews")
        st.dataframe(low, hide_index=True, column_config={
            "product": "Product", "category": "Category",
            "reviews": st.column_config.NumberColumn("Reviews", format="localized"),
            "avg_rating": st.column_config.NumberColumn("Avg rating", format="%.2f ★"),
            "low_rating_share": st.column_config.NumberColumn("1–2 ★ share", format="percent"),
        })
with right:
    st.markdown("**Recent detractor comments and low reviews**")
    neg = d["negative_feedback"]
    if ui.is_empty(neg):
        ui.note("No detractor comments or low reviews in this selection.")
    else:
        neg = neg.assign(feedback_type=neg["feedback_type"].str.upper().replace({"REVIEW": "Review"}))
        st.dataframe(neg, hide_index=True, height=300, column_config={
            "submitted_at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD"),
            "feedback_type": "Source", "score": "Score",
            "comment": st.column_config.TextColumn("Comment", width="large"),
            "customer_id": "Customer",
        })

st.subheader("What brings customers back")
st.caption("Share who ordered again within 90 days, by their post-purchase experience "
           "(whole customer base, all time; the filters don't apply).")
drivers = d["drivers"]
if not drivers:
    # the marts exist but are empty when the data has no deliveries, NPS answers or messages yet
    ui.note("Nothing to compare yet: these views need delivery dates, NPS answers or post-purchase messages "
            "(an orders export alone has none of them).")
else:
    cols = st.columns([1, 1, 2])
    titles = {"delivery": "Delivery", "nps_band": "NPS answer", "message_exposure": "Post-purchase messages"}
    for col, key in zip(cols, ("delivery", "nps_band", "message_exposure"), strict=True):
        with col:
            st.markdown(f"**{titles[key]}**")
            table = drivers.get(key)
            if table is None:
                ui.note("Not available yet.")
            elif key == "message_exposure":
                wide = table.pivot_table(index="group", columns="series", values="repurchase_rate_90d").reset_index()
                wide = wide.sort_values("Received", ascending=False) if "Received" in wide else wide
                charts.show(charts.bars(wide, "group", {c: c for c in ("Received", "Not received") if c in wide},
                                        horizontal=True, y_format="pct", colors=[charts.TEAL, charts.GREY],
                                        height=420, y_title="Repurchased within 90 days"),
                            "No post-purchase messages in the data.")
            else:
                charts.show(charts.bars(table, "group", {"repurchase_rate_90d": "Repurchased within 90 days"},
                                        y_format="pct", text_format="pct1", height=280,
                                        colors=[charts.TEAL if key == "delivery" else charts.BLUE],
                                        y_title="Repurchased within 90 days"))
