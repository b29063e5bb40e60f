"""Products: which first purchase brings customers back, what they buy next, and how good the recommendations are."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards import charts, filters, ui
from dashboards.data.products import NO_PRODUCTS_NOTE, load_products


def _rgba(hex_color: str, alpha: float = 0.35) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


#: The Sankey shows only this many category flows: all 100 make a hairball.
SANKEY_FLOWS = 15

ctx = filters.context()
currency = ui.currency(ctx)
st.title("Products")
st.caption("All history up to the latest order. A customer's first purchase is everything in their first order; "
           "the filters don't apply here.")
d = load_products(ctx.snapshot)
if not d["available"]:
    ui.note(NO_PRODUCTS_NOTE)
    st.stop()

min_n = d["min_customers"]
support_note = (f"Only products and categories with at least {min_n} customers behind the number are shown as "
                "findings." if min_n else "")
overall = d["overall"].iloc[0] if len(d["overall"]) else None
cats = d["categories"]
found_cats = cats[cats["meets_min_support"]]
top_cat = found_cats.iloc[0] if len(found_cats) else None
tops = d["top_transitions"]
cross = tops[~tops["is_same"]]
bt = d["backtest"]

cols = st.columns(4)
with cols[0]:
    ui.tile("Back within 90 days", ui.pct(overall["repeat_rate_90d"]) if overall is not None else "–", None, None,
            "Share of first-time buyers who made a second purchase within 90 days of their first (first purchases "
            "at least 90 days before the latest order).")
with cols[1]:
    ui.tile("Best first category", str(top_cat["journey_name"]).capitalize() if top_cat is not None else "–",
            f"{ui.pct(top_cat['repeat_rate_90d'])} back within 90 days" if top_cat is not None else None, None,
            "The category whose first buyers come back most often within 90 days.", neutral=True)
with cols[2]:
    first = cross.iloc[0] if len(cross) else None
    ui.tile("Top next product", str(first["to_name"]) if first is not None else "–",
            f"after {first['from_name']} ({ui.pct(first['share'], 0)})" if first is not None else None, None,
            "The most frequent step from a first-purchase product to a different second-purchase product.",
            neutral=True)
with cols[3]:
    if bt is not None and not bt.empty and bt["customers"].sum():
        w = bt["customers"]
        hit = (bt["hit_rate_at_3"] * w).sum() / w.sum()
        base = (bt["baseline_hit_rate_at_3"] * w).sum() / w.sum()
        ui.tile("Recommendation hit rate", ui.pct(hit), f"{(hit - base) * 100:+.1f} pts vs best-sellers", None,
                "Share of returning customers who bought one of their 3 recommended products in the 90 days after "
                "a past cut-off, against recommending the 3 best-sellers.")
    else:
        ui.tile("Recommendation hit rate", "–", None, None, "No backtest yet (it runs with training).")

st.subheader("Which first category brings customers back")
all_90d = ui.pct(overall["repeat_rate_90d"]) if overall is not None else "–"
st.caption("Share of first-time buyers of each category who bought again within 90 and 180 days; the dotted line "
           f"is all first-time buyers within 90 days ({all_90d}). " + support_note)
shown = found_cats.sort_values("repeat_rate_90d", ascending=False).copy()
shown["label"] = shown["journey_name"].str.capitalize()
fig = charts.bars(shown, "label", {"repeat_rate_90d": "Within 90 days", "repeat_rate_180d": "Within 180 days"},
                  y_format="pct", y_title="First buyers who came back", text_format="pct0",
                  colors=[charts.BLUE, charts.LIGHT_BLUE], height=340)
if fig is not None and overall is not None:
    fig.add_hline(y=overall["repeat_rate_90d"], line_dash="dot", line_color=charts.GREY)
charts.show(fig, "No category with enough first buyers yet.")

st.subheader("The product journey: first purchase → second purchase")
st.caption(f"The {SANKEY_FLOWS} biggest flows of returning customers from the category of their first purchase to "
           "the category of their second. Thicker bands: more customers. A customer who bought in two categories "
           "counts in both.")
flows = d["category_transitions"]
flows = flows[flows["meets_min_support"]].nlargest(SANKEY_FLOWS, "customers")
if flows.empty:
    ui.note("Not enough returning customers yet to draw the journey.")
else:
    names = sorted(set(flows["from_key"]) | set(flows["to_key"]))
    left = {n: i for i, n in enumerate(names)}
    right = {n: i + len(names) for i, n in enumerate(names)}
    colors = [charts.PALETTE[i % len(charts.PALETTE)] for i in range(len(names))]
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": [n.capitalize() for n in names] * 2, "color": colors * 2, "pad": 12, "thickness": 14},
        link={"source": [left[k] for k in flows["from_key"]], "target": [right[k] for k in flows["to_key"]],
              "value": flows["customers"].tolist(),
              "color": [_rgba(colors[left[k]]) for k in flows["from_key"]],
              "hovertemplate": "%{source.label} → %{target.label}: %{value:,} customers<extra></extra>"},
    ))
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 30, "b": 10}, font={"size": 13})
    fig.add_annotation(x=0, y=1.06, xref="paper", yref="paper", text="<b>First purchase</b>", showarrow=False)
    fig.add_annotation(x=1, y=1.06, xref="paper", yref="paper", text="<b>Second purchase</b>", showarrow=False)
    charts.show(fig)

st.subheader("Products bought next")
st.caption("From a product in the first purchase to the second purchase. Share: of the customers who came back after "
           "buying the first product, how many bought the second one then. Lift: how many times more often than "
           "returning customers in general. " + support_note)
cross_col, again_col = st.columns([3, 2])
share_cfg = st.column_config.NumberColumn("Share", format="percent")
lift_cfg = st.column_config.NumberColumn("Lift", format="%.1f×")
with cross_col:
    st.markdown("**A different product next: cross-sell ideas**")
    if cross.empty:
        ui.note("No product step has enough customers yet.")
    else:
        st.dataframe(
            cross.assign(step=cross["from_name"] + " → " + cross["to_name"])[["step", "customers", "share", "lift"]],
            hide_index=True, use_container_width=True,
            column_config={"step": st.column_config.TextColumn("First purchase → second purchase", width="large"),
                           "customers": st.column_config.NumberColumn("Customers", format="%d"),
                           "share": share_cfg, "lift": lift_cfg},
        )
with again_col:
    st.markdown("**The same product again: re-buys**")
    again = tops[tops["is_same"]]
    if again.empty:
        ui.note("No product is bought again by enough customers yet.")
    else:
        st.dataframe(
            again[["from_name", "customers", "share"]],
            hide_index=True, use_container_width=True,
            column_config={"from_name": st.column_config.TextColumn("Product", width="medium"),
                           "customers": st.column_config.NumberColumn("Customers", format="%d"),
                           "share": share_cfg},
        )

st.subheader("Which first product brings customers back")
products = d["products"]
found = products[products["meets_min_support"]].head(15)
st.caption("First-purchase products whose buyers came back most often within 90 days. " + support_note)
if found.empty:
    ui.note("No product has enough first buyers yet.")
else:
    st.dataframe(
        found[["journey_name", "category", "first_buyers", "repeat_rate_90d", "repeat_rate_180d",
               "median_days_to_second_order", "avg_second_order_value"]].assign(
            category=found["category"].str.capitalize()),
        hide_index=True, use_container_width=True,
        column_config={
            "journey_name": st.column_config.TextColumn("First product", width="medium"),
            "category": "Category",
            "first_buyers": st.column_config.NumberColumn("First buyers", format="%d"),
            "repeat_rate_90d": st.column_config.ProgressColumn("Back within 90 days", format="percent",
                                                               min_value=0, max_value=1),
            "repeat_rate_180d": st.column_config.NumberColumn("Within 180 days", format="percent"),
            "median_days_to_second_order": st.column_config.NumberColumn("Median days to 2nd order", format="%d"),
            "avg_second_order_value": st.column_config.NumberColumn(
                f"Avg 2nd order ({currency})" if currency else "Avg 2nd order", format="%.2f"),
        },
    )

st.subheader("Next-product recommendations")
st.caption("Every customer gets 3 products they are likely to buy next, from what customers bought after and with "
           "the same products; never a product they returned, and no product again unless customers re-buy it. "
           "The cross-sell play sends them; Customer 360 shows each customer's with the reason.")
left_col, right_col = st.columns(2)
with left_col:
    if bt is None or bt.empty:
        ui.note("No backtest yet: it runs with training (`retain run`).")
    else:
        st.markdown("**Backtest: did returning customers buy one of their 3?**")
        long = bt.melt(id_vars=["cutoff_date"], value_vars=["hit_rate_at_3", "baseline_hit_rate_at_3"])
        wide = long.pivot(index="cutoff_date", columns="variable", values="value").reset_index()
        wide["cutoff"] = pd.to_datetime(wide["cutoff_date"]).dt.strftime("%d %b %Y")
        charts.show(charts.bars(wide, "cutoff", {"hit_rate_at_3": "Recommendations",
                                                 "baseline_hit_rate_at_3": "3 best-sellers"},
                                y_format="pct", y_title="Hit rate at 3", x_title="Cut-off", text_format="pct0",
                                colors=[charts.BLUE, charts.GREY]))
with right_col:
    rec = d["recommended"]
    if rec is None or rec.empty:
        ui.note("No recommendations in the snapshot yet.")
    else:
        st.markdown("**Most recommended first choices**")
        st.dataframe(
            rec[["product_name", "category", "customers"]].assign(category=rec["category"].str.capitalize()),
            hide_index=True, use_container_width=True,
            column_config={"product_name": "Product", "category": "Category",
                           "customers": st.column_config.NumberColumn("Customers (1st choice)", format="%d")},
        )
