"""Outreach: today's prioritised lists per play, who was held back and why, and CRM-ready downloads."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data, filters, ui

ctx = filters.context()
currency = (ctx.options.get("currency") or [None])[0]

st.title("Outreach")
d = data.load("outreach", ctx.snapshot, ctx.filters)
if not d["available"]:
    ui.note("Outreach lists are not in the published snapshot yet (exports.outreach_lists): they appear after a "
            "`retain run` that includes the outreach stage.")
    st.stop()
if d["run_id"] is None:
    ui.note("The last outreach run produced no lists.")
    st.stop()

plays, suppressed = d["plays"], d["suppressed"]
st.caption(f"Lists from run {d['run_id']} · created {d['created_at']:%Y-%m-%d %H:%M} UTC · "
           "each customer is in at most one play; suppression always wins.")
cols = st.columns(4)
with cols[0]:
    ui.tile("Customers to contact", ui.count(plays["customers"].sum()))
with cols[1]:
    ui.tile("Plays with customers", ui.count(plays["play"].nunique()))
with cols[2]:
    ui.tile("Suppressed", ui.count(suppressed["customers"].sum() if suppressed is not None else None), None, None,
            "Eligible customers held back: no consent, unsubscribed, no valid address, contacted recently, "
            "open ticket, test account or erasure requested.")
with cols[3]:
    ui.tile("12-month value in lists", ui.money(plays["clv_12m"].sum(), currency))

left, right = st.columns(2)
with left:
    st.subheader("Plays")
    by_play = plays.groupby("play", as_index=False, sort=False)["customers"].sum()
    by_play["play"] = by_play["play"].str.replace("_", " ").str.capitalize()
    charts.show(charts.bars(by_play, "play", {"customers": "Customers"}, horizontal=True, y_format="count",
                            y_title="Customers", text_format="count", height=320),
                "No customer qualifies for any play today.")
with right:
    st.subheader("Suppressed, by reason")
    if suppressed is None:
        ui.note("Suppressions are not in the snapshot (exports.suppressions).")
    else:
        by_reason = suppressed.groupby("reason", as_index=False)["customers"].sum().sort_values("customers",
                                                                                              ascending=False)
        by_reason["reason"] = by_reason["reason"].str.replace("_", " ").str.capitalize()
        charts.show(charts.bars(by_reason, "reason", {"customers": "Customers"}, horizontal=True, y_format="count",
                                y_title="Customers", colors=[charts.GREY], text_format="count", height=320),
                    "Nobody was suppressed in this run.")

st.subheader("Preview and download")
play_names = plays["play"].drop_duplicates().tolist()
play = st.selectbox("Play", play_names, format_func=lambda p: p.replace("_", " ").capitalize(), key="outreach_play")
row = plays[plays["play"] == play].iloc[0]
st.caption(f"{ui.count(plays.loc[plays['play'] == play, 'customers'].sum())} customers · channel "
           f"{row['channel']} · action: {row['action']}. Top 50 by priority; emails and phones masked.")
preview = d["preview"]
st.dataframe(
    preview[preview["play"] == play].drop(columns="play"),
    hide_index=True,
    column_config={
        "priority": "Priority", "customer_id": "Customer", "email": "Email", "phone": "Phone",
        "channel": "Channel", "action": "Action",
        "churn_probability": st.column_config.ProgressColumn("Churn risk", format="percent", min_value=0, max_value=1),
        "clv_12m": st.column_config.NumberColumn("12-month value", format="%.2f"),
        "reasons": st.column_config.TextColumn("Reasons", width="large"),
    },
)

exporter = data.exporter()
if exporter is None:
    ui.note("CRM downloads need the export module (pipelines/outreach), which this installation lacks.")
else:
    st.markdown("**Download for your CRM** — the same files `retain export` writes for this play.")
    cols = st.columns(4)
    for i, fmt in enumerate(exporter.formats):
        with cols[i % 4]:
            st.download_button(
                exporter.labels.get(fmt, fmt),
                data=data.export_callable(ctx.snapshot, play, fmt),
                file_name=ui.download_name("retain", play, fmt) + exporter.extension(play, fmt),
                mime=exporter.mime(play, fmt),
                key=f"download_{play}_{fmt}",
                on_click="ignore",
                icon=":material/download:",
                width="stretch",
            )
