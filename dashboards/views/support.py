"""Support & complaints: what customers contact us about, how fast we answer, and whether fixing it wins them back."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, ui

ctx, d = ui.start_page("Support & complaints", "support",
                       "Support tickets are not in the published snapshot yet (marts.fct_support_tickets).")

p, monthly = d["period"], d["monthly"]
cols = st.columns(5)
with cols[0]:
    ui.tile("Complaints", ui.count(p.get("complaints")), None, monthly.get("complaints"),
            "Tickets of type complaint opened in the period.", lower_is_better=True, chart_type="bar")
with cols[1]:
    ui.tile("Resolved", ui.pct(p.get("complaint_resolution_rate")), None,
            monthly.get("complaint_resolution_rate"), "Share of the complaints opened in the period that are resolved.")
with cols[2]:
    ui.tile("First response", ui.number(p.get("median_hours_first_response"), 1, " h"), None,
            monthly.get("median_hours_first_response"),
            "Median hours from a complaint to the first agent reply.",
            lower_is_better=True)
with cols[3]:
    ui.tile("Time to resolve", ui.number(p.get("median_hours_resolution"), 1, " h"), None,
            monthly.get("median_hours_resolution"), "Median hours from a complaint to its resolution.",
            lower_is_better=True)
with cols[4]:
    ui.tile("Fixed first time", ui.pct(p.get("first_contact_resolution_rate")), None,
            monthly.get("first_contact_resolution_rate"),
            "First-contact resolution: resolved complaints closed with a single agent reply and never reopened.")

st.subheader("Ticket volume by category")
charts.show(charts.stacked_by(d["by_category"].assign(month=lambda x: x["month"].astype("datetime64[ns]")),
                              "month", "category", "tickets", y_title="Tickets opened",
                              order=d["category_order"], title="Tickets opened per month"),
            "No tickets in this period.")

left, right = st.columns(2)
with left:
    st.subheader("Response and resolution time")
    charts.show(charts.bars(d["times"], "category", {"median_hours_first_response": "First response",
                                                     "median_hours_resolution": "Resolution"},
                            horizontal=True, y_title="Median hours", y_format="number",
                            colors=[charts.LIGHT_BLUE, charts.BLUE], height=340,
                            title="Median hours to first response and to resolution"),
                "No tickets in this period.")
with right:
    st.subheader("Resolution quality")
    charts.show(charts.lines(monthly, "month", {"first_contact_resolution_rate": "First-contact resolution",
                                                "reopen_rate": "Reopen rate",
                                                "complaint_resolution_rate": "Complaint resolution"},
                             y_format="pct", y_title="Share", colors=[charts.TEAL, charts.RED, charts.BLUE],
                             height=340, title="Complaints resolved, first contact, reopened"),
                "No tickets in this period.")

st.subheader("Complaint recovery")
st.caption("Customers' first complaint by how it ended, and the share who ordered again within 90 days "
           "(whole customer base; the filters don't apply).")
rec = d["recovery"]
if ui.is_empty(rec):
    ui.note("Complaint recovery is not in the published snapshot yet (marts.complaint_recovery).")
else:
    labels = {"resolved_within_48h": "Resolved within 48 h", "resolved_later": "Resolved later",
              "unresolved": "Unresolved"}
    rec = rec.assign(outcome=rec["outcome"].map(labels).fillna(rec["outcome"]))
    left, right = st.columns([1, 1])
    with left:
        charts.show(charts.bars(rec, "outcome", {"repurchase_rate_90d": "Repurchased within 90 days"},
                                y_format="pct", text_format="pct1", colors=[charts.TEAL], height=280))
    with right:
        st.dataframe(rec, hide_index=True, column_config={
            "outcome": "Outcome",
            "customers": st.column_config.NumberColumn("Customers", format="localized"),
            "repurchased_90d": st.column_config.NumberColumn("Ordered again", format="localized"),
            "repurchase_rate_90d": st.column_config.NumberColumn("Rate", format="percent"),
        })
