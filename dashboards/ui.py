"""Formatting and small shared page elements: numbers, KPI tiles, notes, the freshness banner."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "SEK": "SEK ", "DKK": "DKK "}


def _missing(value) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def money(value, currency: str | None = None, compact: bool = True) -> str:
    """'€1.24M', '€845.2K', '€84.20' (compact) or '€1,240,311' (not compact)."""
    if _missing(value):
        return "–"
    symbol = CURRENCY_SYMBOLS.get(currency or "", f"{currency} " if currency else "")
    value = float(value)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if compact and value >= 1e6:
        return f"{sign}{symbol}{value / 1e6:,.2f}M"
    if compact and value >= 1e4:
        return f"{sign}{symbol}{value / 1e3:,.1f}K"
    if compact and value < 1000:
        return f"{sign}{symbol}{value:,.2f}"
    return f"{sign}{symbol}{value:,.0f}"


def count(value) -> str:
    """Thousands separators: '1,234,567'."""
    return "–" if _missing(value) else f"{float(value):,.0f}"


def pct(value, digits: int = 1) -> str:
    """A fraction as a percentage: 0.234 → '23.4%'."""
    return "–" if _missing(value) else f"{float(value) * 100:.{digits}f}%"


def number(value, digits: int = 1, suffix: str = "") -> str:
    """A plain number with `digits` decimals and an optional unit."""
    return "–" if _missing(value) else f"{float(value):,.{digits}f}{suffix}"


def delta(current, previous, kind: str) -> str | None:
    """Change against the previous period as text for st.metric, or None when not comparable.

    kind: 'relative' (+5.2%), 'points' for fractions (+1.3 pp), 'score' for NPS/CSAT (+2.1 pts),
    'hours' (+1.5 h).
    """
    if _missing(current) or _missing(previous):
        return None
    current, previous = float(current), float(previous)
    if kind == "relative":
        if previous == 0:
            return None
        return f"{(current - previous) / abs(previous) * 100:+.1f}%"
    if kind == "points":
        return f"{(current - previous) * 100:+.1f} pp"
    if kind == "score":
        return f"{current - previous:+.1f} pts"
    if kind == "hours":
        return f"{current - previous:+.1f} h"
    raise ValueError(f"unknown delta kind {kind!r}")


def tile(
    label: str,
    value: str,
    change: str | None = None,
    trend: Sequence[float] | pd.Series | None = None,
    help: str | None = None,
    lower_is_better: bool = False,
    chart_type: str = "line",
    neutral: bool = False,
) -> None:
    """A bordered KPI tile with its change against the previous period and a small trend.

    `neutral=True` shows `change` as a grey note without an arrow (e.g. a risk tier).
    """
    series = None
    if trend is not None:
        values = pd.Series(trend, dtype="float64").dropna()
        series = values.tolist() if len(values) >= 2 else None
    st.metric(
        label,
        value,
        delta=change,
        delta_color="off" if neutral else "inverse" if lower_is_better else "normal",
        delta_arrow="off" if neutral else "auto",
        help=help,
        border=True,
        chart_data=series,
        chart_type=chart_type,
    )


def note(text: str) -> None:
    """A quiet note in place of a chart or table that has nothing to show."""
    st.info(text, icon=":material/info:")


def is_empty(df: pd.DataFrame | None, columns: Sequence[str] = ()) -> bool:
    """True if there is nothing to draw: no frame, no rows, or only missing values in `columns`."""
    if df is None or df.empty:
        return True
    cols = [c for c in columns if c in df.columns]
    if columns and not cols:
        return True
    return bool(cols) and bool(df[cols].isna().all().all())


def as_date(value) -> str:
    """A date or timestamp (or ISO text) as YYYY-MM-DD; '–' when missing."""
    if _missing(value):
        return "–"
    try:
        return f"{pd.Timestamp(value):%Y-%m-%d}"
    except (ValueError, TypeError):
        return str(value)


def _age(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    minutes = (datetime.now(UTC) - then).total_seconds() / 60
    if minutes < 90:
        ago = f"{max(minutes, 0):.0f} min ago"
    elif minutes < 48 * 60:
        ago = f"{minutes / 60:.0f} h ago"
    else:
        ago = f"{minutes / 1440:.0f} days ago"
    return f"{then:%Y-%m-%d %H:%M} UTC ({ago})"


def freshness_banner(status: dict, snapshot_info: dict) -> None:
    """Last successful run and failing checks; a warning when the last run failed."""
    last_run = status.get("last_run") or {}
    last_ok = status.get("last_success") or {}
    published = snapshot_info.get("published_at")
    if last_run and not last_run.get("success"):
        failed = last_run.get("failed_checks") or []
        steps = last_run.get("failed_steps") or []
        what = []
        if failed:
            what.append(f"failing checks: {', '.join(failed[:5])}{' …' if len(failed) > 5 else ''}")
        if steps:
            what.append(f"failed steps: {', '.join(steps[:5])}")
        if last_run.get("error") and not what:
            what.append(str(last_run["error"]).splitlines()[0][:200])
        st.warning(
            f"The last pipeline run, {_age(last_run.get('finished_at'))}, failed"
            f"{' — ' + '; '.join(what) if what else ''}. "
            f"You are looking at the last good data, published {_age(published) or 'earlier'}.",
            icon=":material/warning:",
        )
    failing_now = (last_ok.get("failed_checks") or []) if last_ok else []
    parts = []
    if last_ok:
        parts.append(f"Last successful run {_age(last_ok.get('finished_at'))}")
    elif published:
        parts.append(f"Snapshot published {_age(published)}")
    if failing_now:
        parts.append(f"checks failing (not blocking): {', '.join(failing_now[:5])}")
    else:
        parts.append("all data checks passed" if last_ok else "no successful run recorded")
    st.caption(":material/schedule: " + " · ".join(parts))


def start_page(title: str, page: str, missing: str, caption: str | None = "filters"):
    """Title, caption and the page's data; a note and stop when the snapshot lacks what it needs.

    Returns (context, data) where data is `dashboards.data.loaders.load(page, ...)`. `caption`:
    "filters" describes the selected filters, None shows none, any other text is shown.
    """
    from dashboards import filters
    from dashboards.data.loaders import load

    ctx = filters.context()
    st.title(title)
    if caption == "filters":
        st.caption(ctx.filters.describe())
    elif caption:
        st.caption(caption)
    loaded = load(page, ctx.snapshot, ctx.filters)
    if not loaded["available"]:
        note(loaded.get("missing") or missing)  # the page's data can say why (e.g. too little history)
        st.stop()
    return ctx, loaded


def currency(ctx) -> str | None:
    """The shop's main currency (most orders), for money labels."""
    return (ctx.options.get("currency") or [None])[0]


def download_name(*parts: str) -> str:
    """A safe file name from parts: letters, digits, dots, dashes and underscores only."""
    raw = "_".join(p for p in parts if p)
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in raw)


#: Outreach plays as people call them (the Outreach page and its URL use these labels).
PLAY_LABELS = {
    "service_recovery": "Service recovery",
    "vip_winback": "VIP win-back",
    "winback": "Win-back",
    "at_risk_nurture": "At-risk nurture",
    "onboarding": "Onboarding",
    "review_request": "Review request",
    "advocate_referral": "Advocate referral",
}


def play_label(play: str) -> str:
    """A play's name for people: 'vip_winback' → 'VIP win-back'."""
    return PLAY_LABELS.get(play, play.replace("_", " ").capitalize())
