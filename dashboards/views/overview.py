"""Overview: the headline KPIs for the period, their change and their monthly trend."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, filters, ui
from dashboards.data.connection import NO_ORDERS_NOTE
from dashboards.data.overview import data_sources_table

ctx = filters.context()
f = ctx.filters
currency = ui.currency(ctx)
ctx, d = ui.start_page(
    "Overview", "overview", NO_ORDERS_NOTE,
    caption=f"{f.describe()} · changes against {f.previous().start:%b %Y} – {f.previous().end:%b %Y}",
)

cur, prev, trend = d["current"], d["previous"], d["trend"]

TILES = [
    # key, label, formatter, delta kind, help
    ("revenue", "Revenue", lambda v: ui.money(v, currency), "relative",
     "Sum of order totals of valid (not cancelled) orders placed in the period."),
    ("orders", "Orders", ui.count, "relative", "Valid orders placed in the period."),
    ("avg_order_value", "Average order value", lambda v: ui.money(v, currency), "relative",
     "Revenue ÷ orders."),
    ("repeat_purchase_rate", "Repeat purchase rate", ui.pct, "points",
     "Of all customers with a valid order by the end of the period, the share with at least two."),
    ("returning_customer_rate", "Returning customers", ui.pct, "points",
     "Of the customers who ordered in the previous period, the share who ordered again in this one."),
    ("nps", "NPS", lambda v: ui.number(v, 1), "score",
     "Net Promoter Score: % promoters (9–10) − % detractors (0–6) among NPS answers in the period."),
    ("csat", "CSAT", lambda v: ui.number(v, 1, "%"), "score",
     "Share of CSAT answers scoring 4 or 5, in %."),
    ("on_time_delivery_rate", "On-time delivery", ui.pct, "points",
     "Orders delivered in the period on or before the promised date ÷ orders delivered with a promise."),
    ("complaint_resolution_rate", "Complaint resolution", ui.pct, "points",
     "Complaints opened in the period that have been resolved."),
]

rows = [TILES[:5], TILES[5:]]
for row in rows:
    cols = st.columns(5)
    for col, (key, label, fmt, kind, help_text) in zip(cols, row, strict=False):
        with col:
            series = trend.get(key)
            ui.tile(label, fmt(cur.get(key)), ui.delta(cur.get(key), prev.get(key), kind), series, help_text)

st.subheader("Monthly trend")
left, right = st.columns(2)
with left:
    charts.show(charts.bars(trend, "month", {"revenue": "Revenue"}, y_format="money",
                            y_title=f"Revenue ({currency})" if currency else "Revenue", title="Revenue per month"),
                "No orders in this period.")
with right:
    charts.show(
        charts.lines(trend, "month", {"repeat_purchase_rate": "Repeat purchase rate",
                                      "returning_customer_rate": "Returning customer rate",
                                      "on_time_delivery_rate": "On-time delivery"},
                     y_format="pct", y_title="Share", title="Repeat, returning and on-time rates"),
        "No orders in this period.",
    )
left, right = st.columns(2)
with left:
    charts.show(charts.lines(trend, "month", {"nps": "NPS", "csat": "CSAT (%)"}, y_format="score",
                             y_title="Score", colors=[charts.TEAL, charts.ORANGE], title="NPS and CSAT"),
                "No survey answers in this period.")
with right:
    charts.show(charts.lines(trend, "month", {"complaint_resolution_rate": "Complaint resolution rate"},
                             y_format="pct", y_title="Share", colors=[charts.RED],
                             title="Complaints resolved"),
                "No complaints in this period.")

sources = d.get("sources")
if sources is not None:
    st.subheader("Data sources")
    st.caption("The platform files this data comes from, and how many of their rows belong to a customer your "
               "shop knows (same email, phone or customer id). Unmatched rows are kept and counted under their "
               "own customer, never dropped. Not filtered.")
    st.dataframe(data_sources_table(sources), hide_index=True, column_config={
        # a neutral colour: red would read as "bad" even at 100 %
        "Match rate": st.column_config.ProgressColumn(
            format="percent", min_value=0.0, max_value=1.0, color=charts.BLUE,
            help="Rows matched to a shop customer ÷ rows. A helpdesk, review or survey tool's rate is often "
                 "below 100 %: some of the people in it never bought, or used another email."),
        **{c: st.column_config.NumberColumn(format="localized")
           for c in ("Rows", "Matched to a shop customer", "Kept as unmatched")},
    })
