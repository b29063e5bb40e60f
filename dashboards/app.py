"""retain dashboard: `retain dashboard` (or `streamlit run dashboards/app.py`).

This script runs on every interaction: it finds the published snapshot, shows the freshness
banner, draws the sidebar filters (kept in the URL) and hands over to the selected page in
`dashboards/views/`. Pages draw only; their queries live in `dashboards/py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run dashboards/app.py` puts dashboards/ on sys.path, not the repository root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dashboards import filters, signin, ui  # noqa: E402
from dashboards.data.connection import run_status, snapshot_path  # noqa: E402
from dashboards.data.loaders import load_options, load_snapshot_info  # noqa: E402

st.set_page_config(page_title="retain · customer retention", page_icon=":material/loyalty:", layout="wide")
# Readers, not developers: no "Deploy" button or developer menu.
st.set_option("client.toolbarMode", "viewer")

# Nothing below runs for a visitor who is signed out, or signed in without a role: they get the
# sign-in page or a "no role" message (dashboards/signin.py, roles in dashboards/access.py).
who = signin.require_identity()

# Not "pages/": Streamlit would treat that folder as its automatic multipage layout and run a
# page directly from its URL, bypassing this script (st.navigation, filters, banner).
PAGES_DIR = Path(__file__).resolve().parent / "views"
#: Pages whose numbers do not depend on the sidebar filters.
UNFILTERED_PAGES = {"outreach", "customer_360", "products"}

pages = {
    "Performance": [
        st.Page(PAGES_DIR / "overview.py", title="Overview", icon=":material/dashboard:", url_path="overview",
                default=True),
        st.Page(PAGES_DIR / "retention.py", title="Retention", icon=":material/autorenew:", url_path="retention"),
        st.Page(PAGES_DIR / "post_purchase.py", title="Post-purchase experience", icon=":material/local_shipping:",
                url_path="post_purchase"),
        st.Page(PAGES_DIR / "support.py", title="Support & complaints", icon=":material/support_agent:",
                url_path="support"),
        st.Page(PAGES_DIR / "products.py", title="Products", icon=":material/category:", url_path="products"),
    ],
    "Act": [
        st.Page(PAGES_DIR / "churn.py", title="Churn risk", icon=":material/trending_down:", url_path="churn"),
        st.Page(PAGES_DIR / "outreach.py", title="Outreach", icon=":material/campaign:", url_path="outreach"),
        st.Page(PAGES_DIR / "customer_360.py", title="Customer 360", icon=":material/person_search:",
                url_path="customer_360"),
    ],
}
page = st.navigation(pages)
signin.sidebar(who)

snapshot = snapshot_path()
if snapshot is None:
    st.title("retain")
    st.warning("Nothing has been published yet, so there is nothing to show.", icon=":material/hourglass_empty:")
    st.markdown(
        "The dashboard reads the snapshot that each successful pipeline run publishes. To make one:\n\n"
        "```bash\n"
        "retain generate --customers 20000   # or drop your own files into data/landing/<source>/\n"
        "retain run                          # ingest, dbt build, score, outreach lists, publish\n"
        "```\n\n"
        "Then reload this page. `retain status` shows how the last run went."
    )
    status = run_status()
    if status.get("last_run") and not status["last_run"].get("success"):
        st.error(f"The last run failed: {status['last_run'].get('error') or 'see `retain status`'}")
    st.stop()

snapshot_key = str(snapshot)
options = load_options(snapshot_key)
ui.freshness_banner(run_status(), load_snapshot_info(snapshot_key))
if not options["months"]:
    st.warning("The published snapshot holds no valid orders yet. Load orders and run `retain run`.")
    st.stop()

selected = filters.sidebar(options, disabled=page.url_path in UNFILTERED_PAGES)
if page.url_path in UNFILTERED_PAGES:
    st.sidebar.caption("The filters don't apply on this page.")
filters.set_context(filters.Context(snapshot=snapshot_key, filters=selected, options=options))
page.run()
