"""Outreach: today's prioritised lists per play, who was held back and why, and CRM-ready downloads."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, signin, ui
from dashboards.data.downloads import audited_export, download_file_name, warehouse_export_support
from dashboards.lift_section import did_it_work


def words(value) -> str:
    """'personal_follow_up' → 'personal follow up'."""
    return str(value or "–").replace("_", " ")


ctx, d = ui.start_page("Outreach", "outreach",
                       "Outreach lists are not in the published snapshot yet (exports.outreach_lists): they appear "
                       "after a `retain run` that includes the outreach stage.", caption=None)
currency = ui.currency(ctx)
if d["run_id"] is None:
    ui.note("No outreach run has been recorded yet.")
    st.stop()

plays, suppressed = d["plays"], d["suppressed"]
if d.get("scores_missing"):
    ui.note(f"{d['scores_missing']}. The plays that need churn scores (risk tier, 12-month value) were skipped "
            "today; the plays below need none and ran as usual.")
st.caption(f"Lists of run {d['run_id']} for {d['as_of_date']:%Y-%m-%d} · each customer is in at most one play, "
           "the first that matches; suppression always wins.")
cols = st.columns(4)
with cols[0]:
    ui.tile("Customers to contact", ui.count(plays["customers"].sum()))
with cols[1]:
    ui.tile("Plays with customers", f"{(plays['customers'] > 0).sum()} of {len(plays)}")
with cols[2]:
    ui.tile("Held back", ui.count(d["suppressed_customers"]), None, None,
            "Customers who matched a play but must not be contacted: no consent, unsubscribed, no valid address, "
            "contacted recently, open ticket, test account or erasure requested. One customer can have several "
            "reasons; the chart counts reasons.")
with cols[3]:
    ui.tile("12-month value in lists", ui.money(plays["clv_12m"].sum(), currency), None, None,
            "Expected 12-month customer value (CLV) of the customers in today's lists.")

left, right = st.columns(2)
with left:
    by_play = plays.assign(play=plays["play"].map(ui.play_label))
    # all plays empty (a tiny shop, or a quiet day): a note, not an axis of zeros
    charts.show(charts.bars(by_play, "play", {"customers": "Customers"}, horizontal=True, y_format="count",
                            y_title="Customers", text_format="count", height=320, title="Customers per play")
                if by_play["customers"].sum() else None,
                "No customer qualifies for any play today.")
with right:
    if suppressed is None:
        ui.note("Suppressions are not in the snapshot (exports.suppressions).")
    else:
        by_reason = (suppressed.groupby("reason", as_index=False)["customers"].sum()
                     .sort_values("customers", ascending=False))
        by_reason["reason"] = by_reason["reason"].str.replace("_", " ").str.capitalize()
        charts.show(charts.bars(by_reason, "reason", {"customers": "Customers"}, horizontal=True, y_format="count",
                                y_title="Customers", colors=[charts.GREY], text_format="count", height=320,
                                title="Held back, by reason"),
                    "Nobody was suppressed in this run.")

did_it_work(ctx.snapshot)

st.subheader("Preview and download")
play = st.selectbox("Play", plays["play"].tolist(), format_func=ui.play_label, key="play", bind="query-params")
row = plays[plays["play"] == play].iloc[0]
rows = int(row["customers"])
st.caption(f"{ui.count(rows)} customers · channel: {words(row.get('channel'))} · action: {words(row.get('action'))}. "
           "First 50 by rank; emails and phones masked.")
preview = d["preview"]
part = preview[preview["play"] == play].drop(columns="play").fillna({"reasons": "", "email": "", "phone": ""})
if part.empty:
    ui.note("Nobody is in this play today.")
else:
    st.dataframe(
        part,
        hide_index=True,
        column_config={
            "rank": "Rank", "customer_id": "Customer", "email": "Email", "phone": "Phone", "risk_tier": "Risk",
            "churn_probability": st.column_config.ProgressColumn("Churn risk", format="percent", min_value=0,
                                                                 max_value=1),
            "clv_12m": st.column_config.NumberColumn("12-month value", format="%.2f"),
            "reasons": st.column_config.TextColumn("Reasons", width="large"),
        },
    )

who = signin.identity()
if not who.can_download:
    ui.note("CRM downloads hold customers' names, emails and phone numbers: they need the marketer role.")
    st.stop()
if rows == 0:
    st.stop()
# Files are rendered from the warehouse (unmasked contacts), for the run this page shows.
support = warehouse_export_support(ctx.snapshot)
usable = {name: spec for name, spec in support["formats"].items() if row.get("channel") in spec[1]}
if not support["formats"]:
    ui.note("CRM downloads need the outreach export code (pipelines/outreach).")
elif support["problem"]:
    ui.note(f"CRM downloads are not possible right now ({support['problem']}). Use `retain export`.")
elif not usable:
    ui.note(f"No CRM format carries {row.get('channel')} contacts.")
else:
    st.markdown("**Download for your CRM** — the same files `retain export` writes for this play. Every download "
                "is written to the audit log.")
    cols = st.columns(4)
    for i, (fmt, (title, _channels, max_rows)) in enumerate(usable.items()):
        with cols[i % 4]:
            name = download_file_name(play, fmt, rows, max_rows)
            st.download_button(
                title,
                data=audited_export(play, fmt, d["run_id"], name, signin.recorder("download")),
                file_name=name,
                mime="application/zip" if name.endswith(".zip") else "text/csv",
                key=f"download_{play}_{fmt}",
                on_click="ignore",
                icon=":material/download:",
                width="stretch",
            )
