"""The cached entry points the pages call: `load(page, snapshot, filters)` and friends.

Every page has one function `<page>(con, filters) -> dict` (in the page's module) that runs
all of the page's queries and returns small frames and numbers ready to draw. Pages call them
through `load`, cached for `TTL_SECONDS` per snapshot path and filters and run on a cursor of
their own; `bench/bench_dashboard.py` calls `PAGES` directly, without the cache, to time each
page's server work.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import duckdb
import pandas as pd
import streamlit as st

from dashboards.data.churn import churn
from dashboards.data.connection import TTL_SECONDS, has, query, snapshot_cursor
from dashboards.data.customer_360 import customer_360, find_customers
from dashboards.data.filters import Filters, filter_options
from dashboards.data.model import churn_status
from dashboards.data.outreach import outreach
from dashboards.data.overview import overview
from dashboards.data.post_purchase import post_purchase
from dashboards.data.retention import retention
from dashboards.data.support import support

#: Page name → its data function, for `load` and the benchmark.
PAGES: dict[str, Callable[[duckdb.DuckDBPyConnection, Filters], dict]] = {
    "overview": overview,
    "retention": retention,
    "post_purchase": post_purchase,
    "support": support,
    "churn": churn,
    "outreach": outreach,
}


@st.cache_data(ttl=TTL_SECONDS, show_spinner="Loading…", max_entries=256)
def load(page: str, snapshot: str, filters: Filters) -> dict:
    """`PAGES[page](con, filters)` on the snapshot at `snapshot`, cached per snapshot and filters."""
    with snapshot_cursor(snapshot) as cur:
        return PAGES[page](cur, filters)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_options(snapshot: str) -> dict:
    """`filter_options` for the snapshot, cached."""
    with snapshot_cursor(snapshot) as cur:
        return filter_options(cur)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_churn_status(snapshot: str) -> dict:
    """`churn_status` of the snapshot, cached."""
    with snapshot_cursor(snapshot) as cur:
        return churn_status(cur)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_snapshot_info(snapshot: str) -> dict:
    """The snapshot's own record (`meta.snapshot`: published_at, run_id, tables)."""
    with snapshot_cursor(snapshot) as con:
        if not has(con, "meta.snapshot"):
            return {}
        info = query(con, "select info from meta.snapshot limit 1")
    if info.empty:
        return {}
    value = info.iloc[0]["info"]
    return json.loads(value) if isinstance(value, str) else dict(value)


@st.cache_data(ttl=60, show_spinner=False)
def load_search(snapshot: str, text: str) -> pd.DataFrame:
    """`find_customers` (exact id or exact email, in the snapshot), cached briefly."""
    with snapshot_cursor(snapshot) as cur:
        return find_customers(cur, text)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def load_customer(snapshot: str, customer_id: str) -> dict:
    """`customer_360` (masked), cached per customer."""
    with snapshot_cursor(snapshot) as cur:
        return customer_360(cur, customer_id)

