"""Plotly figures with one look: readable labels, formatted axes, a calm palette.

Every builder takes a small frame from `dashboards.data` and returns a figure; `show` draws
it, or a note when there is nothing to draw, so no page ever shows an empty chart.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards.ui import is_empty, note

BLUE = "#1f5f8b"
LIGHT_BLUE = "#7fb3d5"
ORANGE = "#e07b39"
TEAL = "#2a9d8f"
RED = "#c8423f"
YELLOW = "#e9b949"
GREY = "#9aa5b1"
#: Categorical colours, in order, for series without a meaning of their own.
PALETTE = [BLUE, ORANGE, TEAL, "#8e6bb8", YELLOW, LIGHT_BLUE, "#c05780", GREY]
RISK_COLORS = {"high": RED, "medium": YELLOW, "low": TEAL}
RISK_ORDER = ["high", "medium", "low"]

FORMATS = {
    "pct": ".0%",
    "pct1": ".1%",
    "money": ",.0f",
    "count": ",.0f",
    "number": ",.1f",
    "score": ",.0f",
}


def _layout(fig: go.Figure, height: int = 320, y_format: str | None = None, y_title: str | None = None,
            x_title: str | None = None, legend: bool = True, title: str | None = None) -> go.Figure:
    fig.update_layout(
        height=height,
        # The title is drawn by `show` above the figure, so a wrapping legend never covers it.
        meta={"title": title} if title else None,
        margin={"l": 10, "r": 10, "t": 40 if legend else 20, "b": 10},
        font={"size": 13},
        hovermode="x unified",
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0, "title": None},
        plot_bgcolor="white",
    )
    fig.update_xaxes(title=x_title, showgrid=False)
    fig.update_yaxes(title=y_title, gridcolor="#e6e9ef", zeroline=False, rangemode="tozero")
    if y_format:
        fig.update_yaxes(tickformat=FORMATS.get(y_format, y_format))
    return fig


def show(fig: go.Figure | None, empty_message: str = "No data for this selection.", key: str | None = None) -> None:
    """Draw a figure at full width under its title, or a note if `fig` is None."""
    if fig is None:
        note(empty_message)
        return
    meta = fig.layout.meta
    if isinstance(meta, dict) and meta.get("title"):
        st.markdown(f"**{meta['title']}**")
    # No mode bar: it covers legends and titles, and zooming is rarely what a reader wants here.
    st.plotly_chart(fig, config={"displayModeBar": False}, key=key)


def lines(
    df: pd.DataFrame,
    x: str,
    series: dict[str, str],
    y_format: str | None = None,
    y_title: str | None = None,
    colors: Sequence[str] | None = None,
    height: int = 300,
    hover_format: str | None = None,
    title: str | None = None,
) -> go.Figure | None:
    """One line per column in `series` (column → label); None if every value is missing."""
    if is_empty(df, list(series)):
        return None
    fig = go.Figure()
    colors = list(colors or PALETTE)
    hover = FORMATS.get(hover_format or y_format or "", hover_format or "")
    for i, (col, label) in enumerate(series.items()):
        if col not in df:
            continue
        # a single month (a new shop's first export) is one point: draw it large, with its value
        single = df[col].notna().sum() == 1
        fig.add_trace(
            go.Scatter(
                x=df[x], y=df[col], name=label, mode="lines+markers+text" if single else "lines+markers",
                line={"color": colors[i % len(colors)], "width": 2.5}, marker={"size": 11 if single else 5},
                hovertemplate=f"%{{y:{hover}}}<extra>{label}</extra>" if hover else None,
                texttemplate=f"%{{y:{hover}}}" if single and hover else None, textposition="middle right",
                connectgaps=False,
            )
        )
    fig.update_xaxes(dtick="M1" if len(df) <= 14 else None, tickformat="%b<br>%Y")
    return _layout(fig, height=height, y_format=y_format, y_title=y_title, legend=len(series) > 1, title=title)


def bars(
    df: pd.DataFrame,
    x: str,
    series: dict[str, str],
    y_format: str | None = None,
    y_title: str | None = None,
    x_title: str | None = None,
    stacked: bool = False,
    colors: Sequence[str] | None = None,
    horizontal: bool = False,
    height: int = 300,
    text_format: str | None = None,
    title: str | None = None,
) -> go.Figure | None:
    """Grouped or stacked bars, one trace per column in `series`; None if there is nothing to draw."""
    if is_empty(df, list(series)):
        return None
    fig = go.Figure()
    colors = list(colors or PALETTE)
    for i, (col, label) in enumerate(series.items()):
        values, cats = df[col], df[x]
        kwargs = {"x": values, "y": cats, "orientation": "h"} if horizontal else {"x": cats, "y": values}
        fig.add_trace(
            go.Bar(
                name=label, marker_color=colors[i % len(colors)],
                texttemplate=f"%{{{'x' if horizontal else 'y'}:{FORMATS.get(text_format, text_format)}}}"
                if text_format else None,
                textposition="auto" if text_format else None,
                textangle=0,
                **kwargs,
            )
        )
    fig.update_layout(barmode="stack" if stacked else "group", hovermode="closest" if horizontal else "x unified")
    if horizontal:
        _layout(fig, height=height, x_title=y_title, legend=len(series) > 1, title=title)
        fig.update_xaxes(tickformat=FORMATS.get(y_format or "", y_format or ""), gridcolor="#e6e9ef",
                         rangemode="tozero")
        fig.update_yaxes(autorange="reversed", gridcolor=None, title=x_title)
        return fig
    if pd.api.types.is_datetime64_any_dtype(df[x]):
        fig.update_xaxes(tickformat="%b<br>%Y", dtick="M1" if len(df[x].unique()) <= 14 else None)
    elif not pd.api.types.is_numeric_dtype(df[x]):
        fig.update_xaxes(type="category")  # "1", "2", … "8+" are labels, not numbers
    return _layout(fig, height=height, y_format=y_format, y_title=y_title, x_title=x_title, legend=len(series) > 1,
                   title=title)


def stacked_by(
    df: pd.DataFrame, x: str, color: str, value: str, y_title: str | None = None, order: Sequence[str] | None = None,
    colors: dict[str, str] | None = None, height: int = 320, area: bool = False, title: str | None = None,
) -> go.Figure | None:
    """Stacked bars (or areas) of `value` over `x`, one colour per value of `color`."""
    if is_empty(df, [value]):
        return None
    wide = df.pivot_table(index=x, columns=color, values=value, aggfunc="sum", fill_value=0).sort_index()
    keys = [k for k in (order or []) if k in wide.columns] + [k for k in wide.columns if k not in (order or [])]
    fig = go.Figure()
    for i, key in enumerate(keys):
        c = (colors or {}).get(key, PALETTE[i % len(PALETTE)])
        label = str(key).capitalize() if colors is RISK_COLORS else str(key)
        if area:
            fig.add_trace(go.Scatter(x=wide.index, y=wide[key], name=label, stackgroup="one", line={"color": c},
                                     hovertemplate=f"%{{y:,.0f}}<extra>{label}</extra>"))
        else:
            fig.add_trace(go.Bar(x=wide.index, y=wide[key], name=label, marker_color=c,
                                 hovertemplate=f"%{{y:,.0f}}<extra>{label}</extra>"))
    fig.update_layout(barmode="stack", legend={"traceorder": "normal"})
    if pd.api.types.is_datetime64_any_dtype(pd.Series(wide.index)):
        fig.update_xaxes(tickformat="%b<br>%Y", dtick="M1" if len(wide) <= 14 else None)
    return _layout(fig, height=height, y_format="count", y_title=y_title, title=title)


def cohort_heatmap(cohorts: pd.DataFrame, max_months: int = 12) -> go.Figure | None:
    """Retention by cohort (rows) and months since first order (columns), as percentages."""
    if is_empty(cohorts, ["retention_rate"]):
        return None
    df = cohorts[cohorts["months_since_first_order"] <= max_months]
    wide = df.pivot_table(index="cohort_month", columns="months_since_first_order", values="retention_rate")
    sizes = df.groupby("cohort_month")["cohort_size"].max()
    wide = wide.sort_index()
    y_labels = [f"{pd.Timestamp(m):%b %Y} ({int(sizes.get(m, 0)):,})" for m in wide.index]
    z = wide.to_numpy()
    text = [[("" if pd.isna(v) else f"{v:.0%}" if v >= 0.995 else f"{v:.1%}") for v in row] for row in z]
    # The colour scale leaves out month 0 (always 100%) so the later months' differences show.
    later = wide.drop(columns=[0], errors="ignore")
    zmax = float(later.max().max()) if not later.empty and later.notna().any().any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[f"M{int(c)}" for c in wide.columns], y=y_labels, text=text, texttemplate="%{text}",
            textfont={"size": 11}, colorscale="Blues", zmin=0, zmax=max(zmax, 0.01), showscale=False,
            hovertemplate="Cohort %{y}<br>%{x}: %{z:.1%} still ordering<extra></extra>", xgap=1, ygap=1,
        )
    )
    fig.update_yaxes(autorange="reversed", title="First-order month (cohort size)")
    fig.update_xaxes(title="Months since first order", side="top")
    height = max(260, 26 * len(y_labels) + 80)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, font={"size": 12},
                      plot_bgcolor="white")
    return fig


def funnel(stages: dict[str, float], title: str | None = None, height: int = 300) -> go.Figure | None:
    """Sent → delivered → opened → clicked, with the share of the first stage on each bar."""
    if not stages or not any(stages.values()):
        return None
    fig = go.Figure(
        go.Funnel(
            y=list(stages), x=list(stages.values()), textinfo="value+percent initial",
            marker={"color": [BLUE, LIGHT_BLUE, TEAL, ORANGE][: len(stages)]},
            texttemplate="%{value:,.0f} (%{percentInitial:.1%})",
        )
    )
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30 if title else 10, "b": 10}, title=title,
                      font={"size": 13}, plot_bgcolor="white")
    return fig


def matrix(df: pd.DataFrame, x: str, y: str, value: str, x_order: Sequence[str], y_order: Sequence[str],
           value_format: str = ",.0f", colorscale: str = "Reds", height: int = 300,
           x_title: str | None = None, y_title: str | None = None) -> go.Figure | None:
    """A labelled heatmap of `value` by two categories in fixed orders."""
    if is_empty(df, [value]):
        return None
    wide = df.pivot_table(index=y, columns=x, values=value, aggfunc="sum", fill_value=0)
    wide = wide.reindex(index=[v for v in y_order if v in wide.index],
                        columns=[v for v in x_order if v in wide.columns])
    fig = go.Figure(
        go.Heatmap(
            z=wide.to_numpy(), x=list(wide.columns), y=[str(v).capitalize() for v in wide.index],
            texttemplate=f"%{{z:{value_format}}}", colorscale=colorscale, showscale=False, xgap=2, ygap=2,
            hovertemplate=f"%{{y}} · %{{x}}: %{{z:{value_format}}}<extra></extra>",
        )
    )
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, font={"size": 13},
                      plot_bgcolor="white")
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title)
    return fig


def calibration(table: pd.DataFrame, predicted: str = "predicted", observed: str = "observed",
                title: str | None = None) -> go.Figure | None:
    """Predicted vs observed churn per probability bin, against the diagonal of perfect calibration."""
    if is_empty(table, [predicted, observed]):
        return None
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="Perfect calibration",
                             line={"color": GREY, "dash": "dash"}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=table[predicted], y=table[observed], mode="lines+markers", name="Model",
                             line={"color": BLUE, "width": 2.5}, marker={"size": 8},
                             hovertemplate="predicted %{x:.0%} → observed %{y:.0%}<extra></extra>"))
    _layout(fig, height=320, y_format="pct", y_title="Observed churn rate", x_title="Predicted churn probability",
            title=title)
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    fig.update_layout(hovermode="closest")
    return fig


def histogram(df: pd.DataFrame, x: str, color: str, value: str, colors: dict[str, str], order: Sequence[str],
              x_title: str, y_title: str, x_format: str = ".0%", height: int = 300) -> go.Figure | None:
    """Pre-binned counts as stacked bars coloured by a category (e.g. churn score by risk tier)."""
    if is_empty(df, [value]):
        return None
    fig = go.Figure()
    for key in order:
        part = df[df[color] == key]
        if part.empty:
            continue
        fig.add_trace(go.Bar(x=part[x] + 0.025, y=part[value], name=str(key).capitalize(), width=0.048,
                             marker_color=colors.get(key, GREY),
                             hovertemplate=f"%{{x:{x_format}}}: %{{y:,.0f}}<extra>{str(key).capitalize()}</extra>"))
    fig.update_layout(barmode="stack", hovermode="closest")
    _layout(fig, height=height, y_format="count", y_title=y_title, x_title=x_title)
    fig.update_xaxes(tickformat=x_format, range=[0, 1])
    return fig


def timeline(events: pd.DataFrame, height: int = 300) -> go.Figure | None:
    """One marker per event on a time axis, one row per event type."""
    if is_empty(events, ["event_at"]):
        return None
    order = ["order", "return", "message", "ticket", "survey", "review"]
    colors = {"order": BLUE, "return": ORANGE, "message": GREY, "ticket": RED, "survey": TEAL, "review": YELLOW}
    fig = go.Figure()
    for kind in order + sorted(set(events["event_type"]) - set(order)):
        part = events[events["event_type"] == kind]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part["event_at"], y=[kind.capitalize()] * len(part), mode="markers", name=kind.capitalize(),
            marker={"size": 11, "color": colors.get(kind, GREY), "line": {"width": 1, "color": "white"}},
            text=part["title"], hovertemplate="%{x|%Y-%m-%d %H:%M}<br>%{text}<extra></extra>",
        ))
    _layout(fig, height=height, legend=False)
    fig.update_layout(hovermode="closest")
    present = [k for k in order if k in set(events["event_type"])]
    fig.update_yaxes(rangemode=None, categoryorder="array",
                     categoryarray=[k.capitalize() for k in reversed(present)], gridcolor="#e6e9ef")
    return fig
