"""Queries of the Outreach page's "Did it work?" section: the measured lift of each play.

Reads `marts.outreach_lift` only (every number is computed there, see
models/marts/outreach_lift.yml); this module picks the rows the section shows.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import streamlit as st

from dashboards.data.connection import TTL_SECONDS, query, snapshot_cursor, tables

LIFT_TABLE = "marts.outreach_lift"

#: Columns the section reads, per play (cohort_grain 'play') and per list run ('run').
COLUMNS = (
    "play", "experiment", "cohort_grain", "cohort_id", "first_list_date", "last_list_date", "window_days",
    "holdout_share", "is_window_complete", "contacted_customers", "holdout_customers", "customers_pending",
    "contacted_conversion_rate", "holdout_conversion_rate", "conversion_lift", "conversion_lift_lower",
    "conversion_lift_upper", "relative_conversion_lift", "conversion_p_value", "min_detectable_lift",
    "contacted_revenue_per_customer", "holdout_revenue_per_customer", "revenue_lift_per_customer",
    "revenue_lift_lower", "revenue_lift_upper", "contacted_exposure_rate", "holdout_exposure_rate", "verdict",
)


def lift(con: duckdb.DuckDBPyConnection) -> dict:
    """The lift of each play's current experiment: `plays` (one row per play and window) and `runs`.

    The current experiment of a play is the one of its latest list run. `available` is False
    when the snapshot has no lift mart (a run before holdouts existed).
    """
    if LIFT_TABLE not in tables(con):
        return {"available": False}
    rows = query(
        con,
        f"""
        with current_experiment as (
            select play, arg_max(experiment, last_list_date) as experiment
            from {LIFT_TABLE} where cohort_grain = 'run' group by play
        )
        select {", ".join(f"l.{c}" for c in COLUMNS)}
        from {LIFT_TABLE} l join current_experiment using (play, experiment)
        order by l.play, l.window_days, l.first_list_date
        """,
    )
    return {
        "available": True,
        "plays": rows[rows["cohort_grain"] == "play"].reset_index(drop=True),
        "runs": rows[rows["cohort_grain"] == "run"].reset_index(drop=True),
    }


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_lift(snapshot: str) -> dict:
    """`lift` of the snapshot at `snapshot`, cached."""
    with snapshot_cursor(snapshot) as cur:
        return lift(cur)


def windows(plays: pd.DataFrame) -> list[int]:
    """The outcome windows measured, shortest first."""
    return sorted(int(w) for w in plays["window_days"].unique()) if not plays.empty else []
