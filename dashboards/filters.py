"""Sidebar filters, kept in the URL query string so a view can be shared by copying its link.

Each widget is bound to a query parameter (`bind="query-params"`): `period` (two `YYYY-MM`
values), `country`, `channel` (repeated) and `segment`, holding what the widget shows, e.g.
`?period=2026-01&period=2026-06&country=DE&channel=App&segment=High+churn+risk`. Options come from the snapshot, so a
value that is not in the allow-list (a typo, an edited URL) is dropped by the widget before
any query sees it; the data layer binds what is left as query parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import streamlit as st

from dashboards.data.filters import Filters, segment_label

#: Months selected when the URL names no period.
DEFAULT_MONTHS = 12

CHANNEL_LABELS = {"web": "Web shop", "app": "App", "marketplace": "Marketplace", "pos": "Store (POS)", "phone": "Phone"}

_CONTEXT_KEY = "_retain_context"


@dataclass(frozen=True)
class Context:
    """What every page needs: the snapshot to read, the filters, and the snapshot's options."""

    snapshot: str
    filters: Filters
    options: dict


def channel_label(channel: str) -> str:
    """Readable name of a sales channel."""
    return CHANNEL_LABELS.get(channel, channel.replace("_", " ").capitalize())


def sidebar(options: dict, disabled: bool = False) -> Filters:
    """Draw the filter widgets in the sidebar and return the selected filters."""
    months: list[date] = options["months"]
    with st.sidebar:
        st.markdown("**Filters**")
        default = (months[max(0, len(months) - DEFAULT_MONTHS)], months[-1])
        start, end = st.select_slider(
            "Period",
            options=months,
            value=default,
            format_func=lambda d: d.strftime("%Y-%m"),
            key="period",
            bind="query-params",
            disabled=disabled,
            help="Whole calendar months (UTC). Changes are compared with the equally long period before.",
        )
        countries = st.multiselect(
            "Country",
            options["countries"],
            key="country",
            bind="query-params",
            placeholder="All countries",
            disabled=disabled or not options["countries"],
        )
        channels = st.multiselect(
            "Sales channel",
            options["channels"],
            format_func=channel_label,
            key="channel",
            bind="query-params",
            placeholder="All channels",
            disabled=disabled or not options["channels"],
            help=(
                "Revenue, orders, AOV and delivery count orders placed in the channel; customer measures "
                "(repeat and returning rates, cohorts, surveys, tickets, churn) count customers whose first "
                "order came through it."
            ),
        )
        segment = st.selectbox(
            "Segment",
            options["segments"],
            format_func=segment_label,
            key="segment",
            bind="query-params",
            disabled=disabled or len(options["segments"]) < 2,
            help="Churn risk tier from the latest scoring, or RFM segment (recency, frequency, monetary value).",
        )
    return Filters(
        start=start, end=end, countries=tuple(countries), channels=tuple(channels), segment=segment or ""
    )


def set_context(ctx: Context) -> None:
    """Store the context for the page that runs next in this script run."""
    st.session_state[_CONTEXT_KEY] = ctx


def context() -> Context:
    """The context `dashboards/app.py` set up for this run (stops the page if there is none)."""
    ctx = st.session_state.get(_CONTEXT_KEY)
    if ctx is None:
        st.info("Open the dashboard through `retain dashboard` (dashboards/app.py).")
        st.stop()
    return ctx
