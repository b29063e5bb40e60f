"""Churn risk: who is likely to leave, why, how much value is at stake, and how good the model is."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, ui
from dashboards.data.filters import segment_label
from dashboards.data.model import calibration_table, driver_importance, metrics_table

ctx, d = ui.start_page("Churn risk", "churn",
                       "Churn scores are not in the published snapshot yet (ml.churn_scores): they appear after a "
                       "`retain run` that includes the churn model stage.", caption=None)
f = ctx.filters
currency = ui.currency(ctx)

s = d["summary"]
st.caption(f"Scores as of {ui.as_date(s.get('as_of_date'))} · model {s.get('model_version') or '–'} · "
           f"{segment_label(f.segment)}{' · ' + ', '.join(f.countries) if f.countries else ''} "
           "(the period filter doesn't apply: scores are for today)")
cols = st.columns(4)
with cols[0]:
    ui.tile("Customers scored", ui.count(s.get("customers")))
with cols[1]:
    ui.tile("High risk", ui.count(s.get("high_risk")), None, None,
            f"{ui.pct(s.get('high_risk_share'))} of scored customers are in the high-risk tier.")
with cols[2]:
    ui.tile("Average churn probability", ui.pct(s.get("avg_churn_probability")), None, None,
            "Mean probability of no valid order in the coming horizon.")
with cols[3]:
    ui.tile("12-month value at high risk", ui.money(s.get("clv_at_risk"), currency), None, None,
            "Expected 12-month customer value (CLV) of the high-risk customers.")

st.subheader("Action tiers: whom to contact first")
action = d.get("action_tiers")
if action is None or action.empty:
    ui.note("Action tiers appear after a `retain run` that scores customers (marts.customer_action_tiers).")
else:
    st.caption("Risk tiers say how likely a customer is to leave (most one-time buyers are high); action tiers "
               "say whom to contact first: the 5% of customers who ordered in the last 365 days with the most "
               "value at risk (churn probability × 12-month value) are high, the next 15% medium.")
    by_tier = action.set_index("action_tier")
    cols = st.columns(4)
    for col, tier in zip(cols, ("high", "medium", "low", "dormant"), strict=True):
        row = by_tier.loc[tier] if tier in by_tier.index else None
        with col:
            ui.tile(f"Action tier {tier}", ui.count(row["customers"]) if row is not None else "0",
                    f"{ui.money(row['value_at_risk'], currency)} value at risk" if row is not None else None, None,
                    (f"{ui.count(row['high_risk'])} of them are in the high churn-risk tier."
                     if row is not None else None), neutral=True)

left, right = st.columns(2)
with left:
    st.subheader("Score distribution")
    charts.show(charts.histogram(d["distribution"], "bucket", "risk_tier", "customers", charts.RISK_COLORS,
                                 charts.RISK_ORDER, x_title="Churn probability", y_title="Customers"),
                "No scored customers in this selection.")
with right:
    st.subheader("Risk tiers over time")
    hist = d["history"]
    if hist is not None and hist["as_of_date"].nunique() >= 2:
        charts.show(charts.stacked_by(hist.assign(as_of_date=pd.to_datetime(hist["as_of_date"])), "as_of_date",
                                      "risk_tier", "customers", y_title="Customers", order=charts.RISK_ORDER,
                                      colors=charts.RISK_COLORS, area=True))
    else:
        ui.note("Tiers over time appear after the second scoring run (ml.churn_scores_history).")

left, right = st.columns(2)
with left:
    st.subheader("Top drivers of risk")
    st.caption("How often each factor is among the top three reasons of medium- and high-risk customers.")
    drivers = d["drivers"]
    if ui.is_empty(drivers):
        ui.note("No reasons recorded for this selection.")
    else:
        # The driver with its numbers as N ("no order for N days"): the bar counts all such customers.
        label = drivers["driver"].str.slice(0, 1).str.upper() + drivers["driver"].str.slice(1, 70)
        drivers = drivers.assign(label=label)
        charts.show(charts.bars(drivers, "label", {"customers": "Customers"}, horizontal=True, y_format="count",
                                y_title="Customers", colors=[charts.RED], height=360, text_format="count"))
with right:
    st.subheader("Value × risk")
    st.caption("Customers by churn risk tier and expected 12-month value.")
    charts.show(charts.matrix(d["matrix"], "clv_band", "risk_tier", "customers",
                              x_order=["under 50", "50–150", "150–400", "400+", "unknown"],
                              y_order=charts.RISK_ORDER, x_title=f"Expected 12-month value ({currency or ''})".strip(),
                              y_title="Churn risk"),
                "No scored customers in this selection.")

st.subheader("Who does outreach move? (uplift)")
up = d.get("uplift") or {}
if up.get("state") != "scored":
    ui.note(f"No uplift scores yet: {up['reason']}." if up.get("reason") else
            "No uplift scores yet: they appear once a play's holdout is big enough (see docs/outreach-and-exports.md).")
else:
    st.caption("Uplift is how much contacting a customer changes their chance to order within 60 days, learned "
               "from each play's random holdout (contacted vs held-out customers alike in churn risk and value). "
               "Checked on later lists than it learned from: the conversion lift among the 30% with the most "
               "predicted uplift, against the lift of all of them (random targeting).")
    bt = up["backtest"]
    st.dataframe(pd.DataFrame({
        "Play": bt["play"],
        "Treated / held out": [f"{ui.count(t)} / {ui.count(h)}" for t, h in zip(bt["treated"], bt["held_out"],
                                                                                  strict=True)],
        "Lift, top 30% by uplift": bt["uplift_top"] * 100,
        "Lift, random 30%": bt["uplift_all"] * 100,
        "Qini vs random": bt["qini"],
    }), hide_index=True, column_config={
        "Lift, top 30% by uplift": st.column_config.NumberColumn(format="%+.1f pts"),
        "Lift, random 30%": st.column_config.NumberColumn(format="%+.1f pts"),
        "Qini vs random": st.column_config.NumberColumn(format="%+.4f", help=(
            "Mean extra orders per customer of targeting by uplift over random targeting, along the Qini "
            "curve; above 0 means the model ranks better than chance.")),
    })
    top = up["top"]
    if ui.is_empty(top):
        ui.note("No customer in this selection has an uplift score.")
    else:
        play = st.selectbox("Top customers by uplift for the play", sorted(top["play"].unique()), key="uplift_play")
        rows = top[top["play"] == play].head(20)
        st.dataframe(pd.DataFrame({
            "Customer": rows["customer_id"], "Uplift": rows["uplift"] * 100,
            "If contacted": rows["p_order_if_contacted"], "If not": rows["p_order_if_held_out"],
            "Churn risk": rows["churn_probability"], "Risk tier": rows["risk_tier"],
            "12-month value": rows["clv_12m"],
        }), hide_index=True, column_config={
            "Uplift": st.column_config.NumberColumn(format="%+.1f pts"),
            "If contacted": st.column_config.NumberColumn(format="percent"),
            "If not": st.column_config.NumberColumn(format="percent"),
            "Churn risk": st.column_config.NumberColumn(format="percent"),
            "12-month value": st.column_config.NumberColumn(format="%.0f"),
        })

st.subheader("Model quality")
model = d["model"]
if not model:
    ui.note("No model run is recorded in the snapshot yet (ml.model_runs).")
else:
    run = model["run"]
    metrics = model["metrics"]
    eval_cutoff = run.get("eval_cutoff")
    st.caption(
        f"Model {run.get('run_id', '–')}, trained {ui.as_date(run.get('trained_at'))}"
        f"{', evaluated on customers as of ' + ui.as_date(eval_cutoff) if eval_cutoff is not None else ''} "
        "(a later cut-off than any it learned from), against simple baselines. Higher is better, except "
        "Brier score, log loss and calibration error."
        + (f" Promotion: {run['reason']}." if run.get("reason") else "")
    )
    table = metrics_table(metrics)
    if table.empty:
        ui.note("The model run records no metrics.")
    else:
        st.dataframe(table, hide_index=True, column_config={
            "Top-decile capture": st.column_config.NumberColumn(format="percent"),
            **{c: st.column_config.NumberColumn(format="%.3f") for c in
               ("ROC AUC", "PR AUC", "Brier score", "Log loss", "Calibration error")},
            "Top-decile lift": st.column_config.NumberColumn(format="%.2f×"),
        })
    left, right = st.columns(2)
    with left:
        charts.show(charts.calibration(calibration_table(metrics), title="Calibration on held-out customers"),
                    "The model run records no calibration table.")
    with right:
        imp = driver_importance(metrics)
        charts.show(charts.bars(imp, "driver", {"auc_drop": "ROC AUC lost without it"}, horizontal=True,
                                y_format=".3f", y_title="ROC AUC lost when the driver is shuffled", height=320,
                                colors=[charts.BLUE], title="What the model relies on"),
                    "The model run records no driver importance.")
