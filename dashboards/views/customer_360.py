"""Customer 360: one customer's orders, messages, tickets, surveys and reviews, with churn risk and value."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, filters, signin, ui
from dashboards.data.connection import WarehouseUnavailable
from dashboards.data.customer_360 import contact_details, search_emails
from dashboards.data.loaders import load_churn_status, load_customer, load_search
from dashboards.data.model import scores_missing_note
from dashboards.data.products import load_customer_recommendations

ctx = filters.context()
who = signin.identity()
currency = ui.currency(ctx)

st.title("Customer 360")
left, right = st.columns([3, 1])
with left:
    if who.can_see_contacts:
        text = st.text_input("Customer id or email", key="customer_search", placeholder="e.g. C0001234 or jane@",
                             help="An exact customer id, a whole email address, or the beginning of one "
                                  "(case-insensitive). Searching by the beginning of an email reads the warehouse "
                                  "and is written to the audit log.")
    else:
        text = st.text_input("Customer id or email", key="customer_search",
                             placeholder="e.g. C0001234 or jane.doe@example.com",
                             help="An exact customer id or a whole email address (case-insensitive). Searching by "
                                  "the beginning of an email needs the support role.")
reveal = False
if who.can_see_contacts:
    with right:
        reveal = st.toggle("Show contact details", key="reveal_contact",
                           help="Emails, phones and names are masked unless you switch this on. Personal data: "
                                "only reveal it when you need to contact the customer. Every reveal is written to "
                                "the audit log.")


def email_prefix_search(prefix: str) -> pd.DataFrame:
    """Support only: customers whose email starts with `prefix`, from the warehouse, audited.

    One warehouse read and one audit entry per search: reruns of the same view (a click in the
    timeline) reuse the result held in this session.
    """
    held = st.session_state.get("_retain_email_search")
    if held and held[0] == prefix:
        return held[1]
    found = search_emails(prefix)
    signin.record("contact_search", search="email_prefix", customer_ids=found["customer_id"].tolist(),
                  rows=len(found))
    st.session_state["_retain_email_search"] = (prefix, found)
    return found


# The selected customer id (never the search text: it may be an email) is kept in the URL,
# so a link opens the same customer.
linked = st.query_params.get("customer")
if text.strip():
    # An exact id or a whole email address: the snapshot answers (emails through email_sha256).
    matches = load_search(ctx.snapshot, text)
    if matches.empty and who.can_see_contacts:
        try:
            matches = email_prefix_search(text.strip())
        except WarehouseUnavailable as exc:
            st.warning(f"No customer with id or email {text.strip()!r}. The beginning of an email cannot be "
                       f"searched right now: {exc}.")
            st.stop()
    if matches.empty:
        st.warning(f"No customer with id {text.strip()!r}"
                   f"{' or an email starting with it' if who.can_see_contacts else ' or that email address'}.")
        st.stop()
    if len(matches) > 1:
        # Masked emails of several matches often look alike: the country and order count tell them apart.
        labels = {r.customer_id: " · ".join(str(x) for x in (
                      r.customer_id, r.email or "no email", r.country,
                      None if pd.isna(r.orders_count) else f"{int(r.orders_count)} orders") if x and not pd.isna(x))
                  for r in matches.itertuples()}
        customer_id = st.selectbox(f"{len(matches)} matches{' (first 20)' if len(matches) == 20 else ''}",
                                   list(labels), format_func=labels.get, key="customer_pick")
    else:
        customer_id = matches.iloc[0]["customer_id"]
    st.query_params["customer"] = customer_id
elif linked:
    customer_id = linked
else:
    ui.note("Search for a customer by id or email address to see their history.")
    st.stop()

c = load_customer(ctx.snapshot, customer_id)
if not c.get("available"):
    ui.note("Customers are not in the published snapshot yet (marts.dim_customers).")
    st.stop()
if not c.get("found"):
    st.warning(f"Customer {customer_id} is not in the published snapshot.")
    st.stop()

p = dict(c["profile"])
if reveal:
    # Unmasked, from the warehouse, when the switch is turned on (or another customer is shown),
    # written to the audit log before it is shown. Reruns of the same view (a click in the
    # timeline) reuse what was read: no second warehouse read, no second entry.
    held = st.session_state.get("_retain_contact_shown")
    if held and held[0] == customer_id:
        contacts = held[1]
    else:
        try:
            contacts = contact_details(customer_id)
        except WarehouseUnavailable as exc:
            contacts = None
            st.warning(f"Contact details cannot be shown right now: {exc}.")
        if contacts is not None:
            signin.record("contact_view", customer_ids=[customer_id], rows=1, fields=sorted(contacts))
            st.session_state["_retain_contact_shown"] = (customer_id, contacts)
    if contacts is not None:
        p.update(contacts)
else:
    st.session_state.pop("_retain_contact_shown", None)
name = " ".join(str(x) for x in (p.get("first_name"), p.get("last_name")) if x and not pd.isna(x)) or "–"
st.subheader(f"{name} · {customer_id}")
seg = c.get("segment") or {}
st.caption(" · ".join(str(x) for x in [
    f"Email {p.get('email') or '–'}", f"Phone {p.get('phone') or '–'}", p.get("country") or "country unknown",
    f"email consent: {p.get('email_marketing_consent') or '–'}",
    f"SMS consent: {p.get('sms_marketing_consent') or '–'}",
    f"RFM: {seg.get('rfm_segment')}" if seg.get("rfm_segment") else None,
] if x))

score = c.get("score")
action = c.get("action") or {}
cols = st.columns(6)
with cols[0]:
    ui.tile("Orders", ui.count(p.get("orders_count")))
with cols[1]:
    ui.tile("Net revenue", ui.money(p.get("net_revenue"), currency))
with cols[2]:
    ui.tile("Days since order", ui.count(p.get("days_since_last_order")), None, None,
            "Days from the last valid order to the data's as-of date.")
with cols[3]:
    ui.tile("Churn risk", ui.pct(score["churn_probability"], 0) if score else "–",
            f"{score['risk_tier']} risk" if score else None, None,
            "Probability of no valid order in the model's horizon, from the latest scoring.", neutral=True)
with cols[4]:
    ui.tile("12-month value", ui.money(score.get("clv_12m"), currency) if score else "–", None, None,
            "Expected customer value over the next 12 months (BG/NBD and Gamma-Gamma).")
with cols[5]:
    ui.tile("P(alive)", ui.pct(score.get("p_alive"), 0) if score else "–", None, None,
            "BG/NBD probability that the customer is still active.")

if score:
    reasons = [score.get(f"reason_{i}") for i in (1, 2, 3)]
    reasons = [r for r in reasons if r and not pd.isna(r)]
    if reasons:
        st.markdown("**Why this risk:** " + " · ".join(reasons))
    if action.get("action_tier"):
        rank = action.get("action_rank")
        where = (f"#{int(rank):,} of the active customers by value at risk "
                 f"({ui.money(action.get('value_at_risk'), currency)} = churn probability × 12-month value)"
                 if rank is not None and not pd.isna(rank) else "no order in the last 365 days")
        st.markdown(f"**Action tier: {action['action_tier']}** · {where}",
                    help="Whom to contact first: the 5% of customers who ordered in the last 365 days with the "
                         "most value at risk are high, the next 15% medium, the rest low; customers without an "
                         "order for longer are dormant.")
    uplift = c.get("uplift")
    if uplift is not None and not uplift.empty:
        st.markdown("**Uplift of outreach** (how much contacting them changes their chance to order within "
                    "60 days, learned from the plays' holdouts): " + " · ".join(
                        f"{r.play} {r.uplift * 100:+.1f} points ({ui.pct(r.p_order_if_contacted, 0)} if contacted, "
                        f"{ui.pct(r.p_order_if_held_out, 0)} if not; #{int(r.uplift_rank):,} of {int(r.ranked):,})"
                        for r in uplift.itertuples()))
else:
    missing = scores_missing_note(load_churn_status(ctx.snapshot))
    ui.note(f"No churn score for this customer. {missing}." if missing
            else "No churn score for this customer (no scoring run yet, or no valid order).")

recommended = load_customer_recommendations(ctx.snapshot, customer_id)
if recommended is not None and not recommended.empty:
    st.markdown("**Likely to buy next**\n\n" + "\n".join(
        f"{r.rank}. **{r.product_name}**: {r.reason}" for r in recommended.itertuples()))

timeline = c.get("timeline")
st.subheader("Timeline")
if timeline is None:
    ui.note("The customer timeline is not in the published snapshot yet (marts.fct_customer_events).")
elif timeline.empty:
    ui.note("No orders, messages, tickets, surveys or reviews recorded for this customer.")
else:
    counts = timeline["event_type"].value_counts()
    st.caption(" · ".join(f"{n:,} {k}{'s' if n != 1 else ''}" for k, n in counts.items()))
    kinds = sorted(timeline["event_type"].unique())
    charts.show(charts.timeline(timeline, height=90 + 45 * len(kinds)))
    # Messages outnumber everything else; the table starts with the rest (one click adds them).
    default = [k for k in kinds if k != "message"] or kinds
    shown = st.pills("Show in the table", kinds, selection_mode="multi", default=default, key="timeline_kinds",
                     format_func=str.capitalize)
    table = timeline[timeline["event_type"].isin(shown or kinds)].copy()
    table["title"] = table["title"].str.slice(0, 1).str.upper() + table["title"].str.slice(1)
    table["event_type"] = table["event_type"].str.capitalize()
    # Blank instead of "None": most events have no amount, score, channel or order.
    table["amount"] = table["amount"].map(lambda v: "" if pd.isna(v) else ui.money(v, currency, compact=False)
                                          if abs(float(v)) >= 1000 else ui.money(v, currency))
    table["score"] = table["score"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
    table = table.fillna("")
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "event_at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm"),
            "event_type": "Type", "channel": "Channel", "title": "What",
            "detail": st.column_config.TextColumn("Detail", width="large"),
            "amount": "Amount",
            "score": "Score", "order_id": "Order",
        },
    )
