"""The Outreach page's "Did it work?" section: each play's measured lift against its holdout.

Every number comes from `marts.outreach_lift` (through `dashboards.data.lift`); this module
only lays it out: a verdict and the lift with its 95% interval per play, a chart of the
intervals, and the lift of each list run over time.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards import charts, ui
from dashboards.data import lift as lift_data

VERDICTS = {
    "working": ("Working", ":material/check_circle:", charts.TEAL),
    "not_working": ("Not working", ":material/cancel:", charts.RED),
    "too_early": ("Too early to tell", ":material/hourglass_top:", charts.GREY),
}


def points(value, digits: int = 1) -> str:
    """A lift in percentage points: 0.047 → '+4.7 pts'."""
    return "–" if ui._missing(value) else f"{value * 100:+.{digits}f} pts"


def interval(low, high) -> str:
    """'+1.9 to +7.1 pts', or '–' without bounds."""
    if ui._missing(low) or ui._missing(high):
        return "–"
    return f"{low * 100:+.1f} to {high * 100:+.1f} pts"


def explain(row: pd.Series) -> str:
    """One plain sentence on what the verdict means for this play."""
    window = int(row["window_days"])
    if row["verdict"] == "too_early":
        pending = int(row["customers_pending"] or 0)
        return (f"The first {window}-day windows have not passed yet ({ui.count(pending)} customers still "
                "waiting)." if not row["is_window_complete"] else "No holdout customers to compare with yet.")
    if row["verdict"] == "working":
        return (f"Contacted customers ordered within {window} days {points(row['conversion_lift'])} more often "
                f"than held-out ones ({ui.pct(row['contacted_conversion_rate'])} vs "
                f"{ui.pct(row['holdout_conversion_rate'])}).")
    fits = interval(row["conversion_lift_lower"], row["conversion_lift_upper"])
    return (f"No lift shown: the data fits anything from {fits}. "
            f"A lift below {points(row['min_detectable_lift'])} can go unnoticed at these sizes.")


def interval_chart(plays: pd.DataFrame) -> go.Figure | None:
    """Each play's lift as a dot with its 95% interval, coloured by verdict, against zero."""
    shown = plays.dropna(subset=["conversion_lift"])
    if shown.empty:
        return None
    fig = go.Figure()
    for verdict, (label, _icon, color) in VERDICTS.items():
        part = shown[shown["verdict"] == verdict]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part["conversion_lift"], y=part["play"].map(ui.play_label), mode="markers", name=label,
            marker={"size": 11, "color": color},
            error_x={"type": "data", "symmetric": False, "color": color, "thickness": 2,
                     "array": part["conversion_lift_upper"] - part["conversion_lift"],
                     "arrayminus": part["conversion_lift"] - part["conversion_lift_lower"]},
            hovertemplate="%{y}: %{x:+.1%} lift<extra></extra>",
        ))
    fig.add_vline(x=0, line_color=charts.GREY, line_dash="dot")
    charts._layout(fig, height=80 + 45 * len(shown), x_title="Lift in conversion (95% interval)",
                   title="Lift per play")
    fig.update_xaxes(tickformat="+.0%", zeroline=False, showgrid=True, gridcolor="#e6e9ef")
    fig.update_yaxes(rangemode="normal", autorange="reversed")
    fig.update_layout(hovermode="closest")
    return fig


def trend_chart(runs: pd.DataFrame, play: str, window: int) -> go.Figure | None:
    """The lift of each list run of `play` whose window has passed, with its 95% interval band."""
    part = runs[(runs["play"] == play) & (runs["window_days"] == window) & runs["is_window_complete"]]
    part = part.dropna(subset=["conversion_lift"]).sort_values("first_list_date")
    if part.empty:
        return None
    fig = go.Figure([
        go.Scatter(x=part["first_list_date"], y=part["conversion_lift_upper"], mode="lines",
                   line={"width": 0}, showlegend=False, hoverinfo="skip"),
        go.Scatter(x=part["first_list_date"], y=part["conversion_lift_lower"], mode="lines", line={"width": 0},
                   fill="tonexty", fillcolor="rgba(31, 95, 139, 0.15)", name="95% interval", hoverinfo="skip"),
        go.Scatter(x=part["first_list_date"], y=part["conversion_lift"], mode="lines+markers", name="Lift",
                   line={"color": charts.BLUE}, hovertemplate="%{x|%Y-%m-%d}: %{y:+.1%}<extra></extra>"),
    ])
    fig.add_hline(y=0, line_color=charts.GREY, line_dash="dot")
    charts._layout(fig, y_format="+.0%", y_title=f"{window}-day lift", title=f"{ui.play_label(play)}: lift by list run")
    fig.update_yaxes(rangemode="normal")
    return fig


def did_it_work(snapshot: str) -> None:
    """The "Did it work?" section for the published snapshot at `snapshot`."""
    st.subheader("Did it work?")
    loaded = lift_data.load_lift(snapshot)
    if not loaded["available"] or loaded["plays"].empty:
        ui.note("No play has a holdout to measure yet: every play keeps a share of its list uncontacted "
                "(holdout in the playbook), and its lift shows here once lists with a holdout were built.")
        return
    plays, runs = loaded["plays"], loaded["runs"]
    options = lift_data.windows(plays)
    st.caption("Each play keeps a random share of its list uncontacted (the holdout). Orders of contacted and "
               "held-out customers after the list date show what the play itself caused; every customer counts "
               "once, from their first list. Intervals are 95%.")
    window = st.segmented_control("Orders within", options, default=60 if 60 in options else options[0],
                                  format_func=lambda w: f"{w} days", key="lift_window") or options[0]
    shown = plays[plays["window_days"] == window].reset_index(drop=True)
    cols = st.columns(min(len(shown), 4) or 1)
    for i, row in shown.iterrows():
        label, icon, _color = VERDICTS[row["verdict"]]
        with cols[i % len(cols)], st.container(border=True):
            st.markdown(f"**{ui.play_label(row['play'])}**")
            st.markdown(f"{icon} **{label}**")
            st.metric("Lift in conversion", points(row["conversion_lift"]),
                      help=f"95% interval {interval(row['conversion_lift_lower'], row['conversion_lift_upper'])}; "
                           f"p = {ui.number(row['conversion_p_value'], 3)}")
            st.caption(f"95% interval {interval(row['conversion_lift_lower'], row['conversion_lift_upper'])} · "
                       f"{ui.count(row['contacted_customers'])} contacted, {ui.count(row['holdout_customers'])} held "
                       f"out ({ui.pct(row['holdout_share'], 0)}) · {explain(row)}")
    left, right = st.columns(2)
    with left:
        charts.show(interval_chart(shown), "No play has a measured lift for this window yet.")
    with right:
        # plays with a measured lift, those that work first
        ranked = shown.dropna(subset=["conversion_lift"]).sort_values(["verdict", "play"], key=lambda c: c.map(
            {"working": 0, "not_working": 1, "too_early": 2}).fillna(c) if c.name == "verdict" else c)
        measured = ranked["play"].tolist() or shown["play"].tolist()
        play = st.selectbox("Play over time", measured, format_func=ui.play_label, key="lift_play")
        charts.show(trend_chart(runs, play, window), "No list run of this play has passed its window yet.")
    table = shown.assign(
        play=shown["play"].map(ui.play_label),
        verdict=shown["verdict"].map(lambda v: VERDICTS[v][0]),
    )[["play", "verdict", "contacted_conversion_rate", "holdout_conversion_rate", "conversion_lift",
       "conversion_lift_lower", "conversion_lift_upper", "min_detectable_lift", "conversion_p_value",
       "revenue_lift_per_customer", "revenue_lift_lower", "revenue_lift_upper"]]
    with st.expander("All numbers"):
        st.dataframe(table, hide_index=True, column_config={
            "play": "Play", "verdict": "Verdict",
            "contacted_conversion_rate": st.column_config.NumberColumn("Contacted: ordered", format="percent"),
            "holdout_conversion_rate": st.column_config.NumberColumn("Held out: ordered", format="percent"),
            "conversion_lift": st.column_config.NumberColumn("Lift", format="percent"),
            "conversion_lift_lower": st.column_config.NumberColumn("Lift from", format="percent"),
            "conversion_lift_upper": st.column_config.NumberColumn("Lift to", format="percent"),
            "min_detectable_lift": st.column_config.NumberColumn("Smallest lift detectable", format="percent"),
            "conversion_p_value": st.column_config.NumberColumn("p-value", format="%.3f"),
            "revenue_lift_per_customer": st.column_config.NumberColumn("Revenue lift per customer", format="%.2f"),
            "revenue_lift_lower": st.column_config.NumberColumn("Revenue lift from", format="%.2f"),
            "revenue_lift_upper": st.column_config.NumberColumn("Revenue lift to", format="%.2f"),
        })
