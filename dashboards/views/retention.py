"""Retention: do first-time buyers come back, how often, and how much revenue is repeat business."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, ui
from dashboards.data.connection import NO_ORDERS_NOTE

ctx, d = ui.start_page("Retention", "retention", NO_ORDERS_NOTE)
currency = ui.currency(ctx)

repeat = d["repeat"]
cols = st.columns(4)
with cols[0]:
    ui.tile("Repeat purchase rate", ui.pct(d["repeat_purchase_rate"]), None, repeat["repeat_purchase_rate"].dropna(),
            "Customers with at least two valid orders ÷ customers with at least one, at the end of the period.")
with cols[1]:
    ui.tile("Ordered again next month", ui.pct(d["ordered_again_next_month"]), None, None,
            "Share of the period's new customers who ordered again in the month after their first order.")
with cols[2]:
    ui.tile("Median days between orders", ui.number(d["median_days_between_orders"], 0, " days"), None, None,
            "Median gap between a customer's consecutive valid orders, for repeat orders placed in the period.")
with cols[3]:
    ui.tile("Repeat-order revenue", ui.pct(d["returning_revenue_share"]), None, None,
            "Share of the period's revenue from customers' second and later orders.")

st.subheader("Cohort retention")
st.caption(
    "Each row is the customers whose first valid order fell in that month; each cell the share of them who "
    "ordered in the n-th month after it. Read down a column to compare cohorts at the same age."
)
charts.show(charts.cohort_heatmap(d["cohorts"]), "No first-time customers in this period.")

left, right = st.columns(2)
with left:
    st.subheader("Repeat purchase rate")
    charts.show(charts.lines(repeat, "month", {"repeat_purchase_rate": "Repeat purchase rate"}, y_format="pct",
                             y_title="Customers with 2+ orders", hover_format="pct1"), "No orders in this period.")
with right:
    st.subheader("Days between orders")
    charts.show(charts.bars(d["gaps"], "days_between", {"orders": "Repeat orders"}, y_format="count",
                            y_title="Repeat orders", x_title="Days since the customer's previous order",
                            text_format="count"),
                "No repeat orders in this period.")

st.subheader("New vs returning revenue")
charts.show(
    charts.bars(d["revenue_split"], "month", {"new_revenue": "First orders", "returning_revenue": "Repeat orders"},
                stacked=True, y_format="money", y_title=f"Revenue ({currency})" if currency else "Revenue",
                colors=[charts.LIGHT_BLUE, charts.BLUE]),
    "No orders in this period.",
)
