"""The dashboard, page by page, with Streamlit's AppTest, and the data layer behind it.

Everything runs against the shared warehouse of the `pipeline` fixture (generated shop →
full Dagster job → published snapshot): no mocked tables. Page tests check that each page
renders without an exception, shows its key elements, and that a filter change changes the
numbers; data-layer tests check the dashboard's own SQL against the dbt marts, parameter
binding, the read-only connection and the masking of personal data.

Set RETAIN_DASHBOARD_TEST_DATA_DIR to a data folder that already holds a published run to
iterate on these tests without rebuilding the shared warehouse.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import filters
from dashboards.data import loaders
from dashboards.data.connection import connect, mask_email_value, query, warehouse_connection
from dashboards.data.downloads import (
    audited_export,
    count_rows,
    export_support,
    render_download,
    warehouse_export_support,
)
from dashboards.data.filters import Filters, customer_scope, filter_options, order_scope, segment_label
from dashboards.data.kpis import monthly_sums
from dashboards.data.outreach import outreach
from dashboards.data.overview import overview
from dashboards.data.per_customer import cohort_retention, returning_monthly, returning_periods
from dashboards.data.post_purchase import post_purchase
from dashboards.data.support import support
from pipelines.core.privacy import mask_email, mask_phone, mask_text

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboards" / "app.py"

#: page → (title, at least this many KPI tiles, at least this many charts)
PAGES = {
    "overview": ("Overview", 9, 4),
    "retention": ("Retention", 4, 4),
    "post_purchase": ("Post-purchase experience", 4, 6),
    "support": ("Support & complaints", 5, 4),
    "products": ("Products", 4, 3),
    "churn": ("Churn risk", 4, 2),
    "outreach": ("Outreach", 4, 2),
    "customer_360": ("Customer 360", 6, 1),
}
FILTERED_PAGES = ("overview", "retention", "post_purchase", "support", "churn")


@pytest.fixture(autouse=True)
def _no_garbage_collection_in_the_script_thread():
    """Collect garbage here, in the test's own thread, and not while a page script runs.

    The shared pipeline run (Dagster, in this process) leaves SQLAlchemy connections to be
    garbage-collected. When a collection happened in AppTest's script thread, while it parsed
    the page, the finalizer failed (SQLite's same-thread check) and logged a traceback. Python
    3.11 formats a traceback with `ast.parse`, and that nested parse broke the outer one's
    shared recursion counter: `SystemError: AST constructor recursion depth mismatch`, in 2 of
    3 full test runs.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture(scope="module")
def data_dir(request) -> Path:
    """A data folder with a published snapshot: the shared pipeline run's."""
    reuse = os.environ.get("RETAIN_DASHBOARD_TEST_DATA_DIR")
    if reuse:
        return Path(reuse).resolve()
    return request.getfixturevalue("pipeline").data_dir


def point_at(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """Make `data_dir` the app's storage: RETAIN_DATA_DIR alone decides every path."""
    for var in ("RETAIN_LANDING", "RETAIN_WAREHOUSE", "RETAIN_PUBLISHED", "RETAIN_MODELS", "RETAIN_EXPORTS",
                "RETAIN_DAGSTER_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(data_dir))


@pytest.fixture
def use_data(data_dir, monkeypatch) -> Path:
    """Point the app (run in this process by AppTest) at the shared data folder."""
    point_at(monkeypatch, data_dir)
    return data_dir


@pytest.fixture(scope="module")
def snapshot(data_dir) -> Path:
    """The published snapshot file."""
    from pipelines.publish import current_snapshot

    path = current_snapshot(data_dir / "published")
    assert path is not None, f"the shared run published no snapshot under {data_dir / 'published'}"
    return path


@pytest.fixture(scope="module")
def con(snapshot):
    """A read-only connection to the snapshot, as the dashboard opens it."""
    c = connect(snapshot)
    yield c
    c.close()


@pytest.fixture(scope="module")
def customer(con, data_dir) -> dict:
    """A customer with an email, several orders and a churn score: the Customer 360 subject.

    `email` and `phone` are the real ones, from the warehouse; `masked_email` and
    `masked_phone` are what the snapshot holds instead.
    """
    row = query(
        con,
        """
        select d.customer_id, d.email as masked_email, d.phone as masked_phone from marts.dim_customers d
        join ml.churn_scores s using (customer_id)
        where d.email is not null and d.phone is not null and d.orders_count >= 2
        order by d.orders_count desc, d.customer_id limit 1
        """,
    )
    assert not row.empty
    found = row.iloc[0].to_dict()
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as wh:
        email, phone = wh.execute("select email, phone from marts.dim_customers where customer_id = ?",
                                  [found["customer_id"]]).fetchone()
    assert "•" not in email and "•" in found["masked_email"], "the snapshot must hold masked emails only"
    return {**found, "email": email, "phone": phone}


def run_page(page: str, query: dict | None = None) -> AppTest:
    """Run the app on `page` (its first run), with URL query parameters."""
    at = AppTest.from_file(str(APP), default_timeout=90)
    if query:
        at.query_params = query
    if page != "overview":
        at.switch_page(f"views/{page}.py")
    at.run()
    return at


def assert_clean(at: AppTest) -> None:
    """No exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def shown(at: AppTest) -> dict:
    """What the page shows that carries numbers: tile values and chart data."""
    return {
        "metrics": [(m.label, m.value) for m in at.metric],
        "charts": [json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart")],
    }


def page_text(at: AppTest) -> str:
    """All text the page rendered (markdown, captions, tiles, tables), for privacy checks."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [df.value.to_csv() for df in at.dataframe]
    parts += [i.value for i in at.info] + [w.value for w in at.warning]
    parts += [o for box in at.selectbox for o in box.options]
    return "\n".join(str(p) for p in parts)


# --------------------------------------------------------------------------------------
# Pages


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_with_its_key_elements(page, use_data, customer):
    title, tiles, charts = PAGES[page]
    at = run_page(page, {"customer": customer["customer_id"]} if page == "customer_360" else None)
    assert_clean(at)
    assert at.title[0].value == title
    assert len(at.metric) >= tiles, [m.label for m in at.metric]
    assert len(at.get("plotly_chart")) >= charts
    # numbers are formatted for people: no raw floats with many decimals in the tiles
    for m in at.metric:
        assert not re.search(r"\d\.\d{4,}", m.value), (m.label, m.value)
    if page in FILTERED_PAGES:
        assert [s.label for s in at.sidebar.multiselect] == ["Country", "Sales channel"]


def test_overview_tiles_show_every_kpi_with_its_change(use_data):
    at = run_page("overview")
    labels = {m.label: m for m in at.metric}
    assert set(labels) >= {
        "Revenue", "Orders", "Average order value", "Repeat purchase rate", "Returning customers", "NPS", "CSAT",
        "On-time delivery", "Complaint resolution",
    }
    assert labels["Revenue"].value.startswith(("€", "$", "£")) or labels["Revenue"].value[0].isdigit()
    assert labels["On-time delivery"].value.endswith("%")
    assert re.fullmatch(r"[0-9,]+", labels["Orders"].value)
    # every tile compares with the previous period (the shop has history before it)
    assert all(m.delta for m in at.metric), [(m.label, m.delta) for m in at.metric]


@pytest.mark.parametrize("page", FILTERED_PAGES)
def test_country_filter_changes_the_numbers(page, use_data, con):
    at = run_page(page)
    before = shown(at)
    country = filter_options(con)["countries"][0]
    at.sidebar.multiselect(key="country").set_value([country]).run()
    assert_clean(at)
    after = shown(at)
    assert after["metrics"] != before["metrics"]
    assert after["charts"] != before["charts"]


def test_filters_come_from_the_url_and_bad_values_are_dropped(use_data, con):
    options = filter_options(con)
    country, channel = options["countries"][0], options["channels"][0]
    clicked = run_page("overview")
    clicked.sidebar.multiselect(key="country").set_value([country]).run()
    clicked.sidebar.multiselect(key="channel").set_value([channel]).run()
    # the URL carries what the widgets show (channel "app" reads "App")
    linked = run_page("overview", {"country": country, "channel": filters.channel_label(channel)})
    assert_clean(linked)
    assert shown(linked) == shown(clicked)
    assert country in linked.caption[1].value or country in page_text(linked)

    # an edited link with values outside the allow-list is the same as no filter at all
    plain = run_page("overview")
    hostile = run_page("overview", {"country": ["ZZ' or 1=1 --", "XX"], "segment": "risk:'; drop table x"})
    assert_clean(hostile)
    assert shown(hostile) == shown(plain)


def test_segment_filter_narrows_the_churn_page_to_one_tier(use_data):
    at = run_page("churn", {"segment": segment_label("risk:high")})
    assert_clean(at)
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Customers scored"] == tiles["High risk"]


def test_churn_page_counts_customers_per_action_tier_and_says_why_no_uplift_yet(use_data, con, customer):
    at = run_page("churn")
    assert_clean(at)
    tiles = {m.label: m.value for m in at.metric}
    counts = dict(query(con, "select action_tier, count(*) as n from marts.customer_action_tiers group by 1")
                  .itertuples(index=False))
    assert set(counts) <= {"high", "medium", "low", "dormant"} and counts.get("high", 0) > 0
    for tier in ("high", "medium", "low", "dormant"):
        assert tiles[f"Action tier {tier}"] == f"{counts.get(tier, 0):,}", tier
    # one day of lists has no passed outcome window: the uplift section says why it is empty
    assert "No uplift scores yet: not enough holdout data yet:" in page_text(at)
    at = run_page("customer_360", {"customer": customer["customer_id"]})
    assert_clean(at)
    tier = query(con, "select action_tier from marts.customer_action_tiers where customer_id = $c",
                 {"c": customer["customer_id"]}).iloc[0, 0]
    assert f"Action tier: {tier}" in page_text(at)


def warehouse_copy(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, customer_id: str) -> dict:
    """A copy of the warehouse in which `customer_id`'s email and phone changed after the snapshot was published.

    Shows where the dashboard reads contact details from: the warehouse, at the moment they
    are shown, never the snapshot. The audit log goes to the test's folder.
    """
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy2(data_dir / "warehouse.duckdb", copy)
    new = {"email": f"moved.{customer_id.lower()}@example.net", "phone": "+4930111222333"}
    with duckdb.connect(str(copy)) as c:
        c.execute("update marts.dim_customers set email = ?, phone = ? where customer_id = ?",
                  [new["email"], new["phone"], customer_id])
    monkeypatch.setenv("RETAIN_WAREHOUSE", str(copy))
    monkeypatch.setenv("RETAIN_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return {**new, "audit": tmp_path / "audit.jsonl"}


def audit_entries(path: Path, action: str) -> list[dict]:
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["action"] == action]


@pytest.fixture
def changed_warehouse(use_data, customer, tmp_path, monkeypatch) -> dict:
    """`warehouse_copy` for the Customer 360 subject."""
    return warehouse_copy(use_data, tmp_path, monkeypatch, customer["customer_id"])


def test_customer_360_reveals_contact_details_from_the_warehouse_and_audits_it(changed_warehouse, customer,
                                                                               monkeypatch):
    at = run_page("customer_360", {"customer": customer["customer_id"]})
    assert_clean(at)
    text = page_text(at)
    assert customer["email"] not in text and customer["phone"] not in text
    assert customer["masked_email"] in text and customer["masked_phone"] in text
    assert mask_email_value(customer["email"]) == customer["masked_email"]
    assert at.get("plotly_chart"), "the timeline chart is missing"
    at.toggle(key="reveal_contact").set_value(True).run()
    assert_clean(at)
    text = page_text(at)
    assert changed_warehouse["email"] in text and changed_warehouse["phone"] in text
    assert customer["email"] not in text, "contact details must come from the warehouse as it is now"
    # A rerun of the same view (a click in the timeline) neither reads the warehouse again nor
    # adds an entry: with the warehouse gone, the details are still the ones read.
    monkeypatch.setenv("RETAIN_WAREHOUSE", str(changed_warehouse["audit"].parent / "gone.duckdb"))
    at.run()
    assert_clean(at)
    assert not at.warning and changed_warehouse["email"] in page_text(at)
    views = audit_entries(changed_warehouse["audit"], "contact_view")
    assert len(views) == 1 and views[0]["customer_ids"] == [customer["customer_id"]]
    assert views[0]["mode"] == "local" and "support" in views[0]["roles"]


def test_the_download_renders_from_the_warehouse_and_is_audited(use_data, con, tmp_path, monkeypatch):
    plays = outreach(con, _everything(con))["plays"]
    play = plays[(plays["customers"] > 0) & (plays["channel"] == "email")].iloc[0]["play"]
    listed = outreach(con, _everything(con))["preview"]
    first = listed[listed["play"] == play].iloc[0]["customer_id"]
    changed = warehouse_copy(use_data, tmp_path, monkeypatch, first)
    entries = []
    render = audited_export(play, "csv", None, f"{play}-csv.csv", entries.append)
    content = render()
    assert entries == [{"play": play, "format": "csv", "run_id": None, "file_name": f"{play}-csv.csv",
                        "rows": count_rows(content, f"{play}-csv.csv")}]
    text = content.decode("utf-8-sig")
    assert entries[0]["rows"] > 0 and "•" not in text
    assert changed["email"] in text, "the file must hold the warehouse's addresses as they are now"


def test_a_viewer_finds_by_id_or_whole_email_but_gets_no_contacts_and_no_downloads(use_data, customer, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("RETAIN_LOCAL_ROLES", "viewer")
    monkeypatch.setenv("RETAIN_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    at = run_page("customer_360", {"customer": customer["customer_id"]})
    assert_clean(at)
    assert not [t for t in at.toggle if t.key == "reveal_contact"]
    assert customer["email"] not in page_text(at)
    at = run_page("customer_360")
    at.text_input(key="customer_search").set_value(customer["email"].split("@")[0] + "@").run()
    assert any("No customer with id" in w.value for w in at.warning), "a viewer must not find customers by prefix"
    # A whole address (any case, spaces around it) finds the customer through email_sha256, masked.
    at.text_input(key="customer_search").set_value(f"  {customer['email'].upper()} ").run()
    assert_clean(at)
    assert customer["customer_id"] in at.subheader[0].value
    assert customer["email"] not in page_text(at) and customer["masked_email"] in page_text(at)
    assert not audit_entries(tmp_path / "audit.jsonl", "contact_search")
    at = run_page("outreach")
    assert_clean(at)
    assert not at.get("download_button")
    assert any("marketer role" in i.value for i in at.info)
    monkeypatch.setenv("RETAIN_LOCAL_ROLES", "marketer")
    at = run_page("customer_360", {"customer": customer["customer_id"]})
    assert not [t for t in at.toggle if t.key == "reveal_contact"]


def test_customer_360_finds_a_customer_by_email_prefix_in_the_warehouse(use_data, customer, tmp_path, monkeypatch):
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("RETAIN_AUDIT_LOG", str(log))
    at = run_page("customer_360")
    assert_clean(at)
    assert at.info, "the page should ask for a search first"
    prefix = customer["email"].split("@")[0] + "@"
    at.text_input(key="customer_search").set_value(prefix.upper()).run()
    assert_clean(at)
    picks = [s for s in at.selectbox if s.key == "customer_pick"]
    if picks:  # several emails start the same way: pick ours
        picks[0].set_value(customer["customer_id"]).run()
    assert customer["customer_id"] in at.subheader[0].value
    assert customer["email"] not in page_text(at)
    at.run()  # a rerun of the same search neither reads the warehouse again nor adds an entry
    searches = audit_entries(log, "contact_search")
    assert len(searches) == 1 and customer["customer_id"] in searches[0]["customer_ids"]
    assert searches[0]["search"] == "email_prefix" and searches[0]["rows"] == len(searches[0]["customer_ids"])
    assert prefix.lower() not in log.read_text().lower(), "the audit log names customers, not what was typed"
    at.text_input(key="customer_search").set_value(customer["email"][0]).run()  # many matches: pick one
    assert_clean(at)
    options = [s for s in at.selectbox if s.key == "customer_pick"][0].options
    assert len(options) > 1 and all("•••@" in o and " orders" in o for o in options), options[:3]
    assert len(audit_entries(log, "contact_search")) == 2


def test_an_email_prefix_search_needs_the_warehouse_a_whole_email_does_not(use_data, customer, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("RETAIN_WAREHOUSE", str(tmp_path / "missing.duckdb"))
    monkeypatch.setenv("RETAIN_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    at = run_page("customer_360")
    at.text_input(key="customer_search").set_value(customer["email"].split("@")[0]).run()
    assert_clean(at)
    assert any("cannot be searched right now" in w.value for w in at.warning)
    at.text_input(key="customer_search").set_value(customer["email"]).run()
    assert_clean(at)
    assert customer["customer_id"] in at.subheader[0].value
    assert not audit_entries(tmp_path / "audit.jsonl", "contact_search")


def test_outreach_page_offers_the_crm_formats_of_the_play(use_data, con):
    at = run_page("outreach")
    assert_clean(at)
    support = warehouse_export_support()  # downloads are rendered from the warehouse
    buttons = at.get("download_button")
    if support["problem"]:
        # The export code cannot run on the warehouse now: the page says so.
        assert any("retain export" in i.value for i in at.info)
        assert not buttons
    else:
        assert buttons, "no download buttons for the selected play"


def test_outreach_download_is_what_retain_export_writes(use_data, con):
    from pipelines.core.config import settings
    from pipelines.outreach.exporter import read_latest

    plays = outreach(con, _everything(con))["plays"]
    play = plays[(plays["customers"] > 0) & (plays["channel"] == "email")].iloc[0]["play"]
    base = settings().exports / play / "klaviyo"
    run = read_latest(base)
    if run is None:
        pytest.skip(f"the pipeline wrote no klaviyo export for {play}")
    on_disk = (base / run / f"{play}-klaviyo.csv").read_bytes()
    with warehouse_connection() as warehouse:  # where the page renders files from
        assert export_support(warehouse)["problem"] is None
        assert render_download(warehouse, play, "klaviyo") == on_disk
    # The snapshot's contact data is masked: a file rendered from it would not be the export.
    assert render_download(con, play, "klaviyo") != on_disk


def test_local_mode_turns_away_visitors_from_other_machines(use_data, monkeypatch):
    from dashboards import signin

    monkeypatch.setattr(signin, "_remote_visitor", lambda: True)
    at = run_page("overview")
    assert any("local mode" in w.value for w in at.warning)
    assert not at.metric and not at.get("plotly_chart")
    monkeypatch.setenv("RETAIN_ALLOW_UNAUTHENTICATED", "1")  # `retain dashboard --allow-unauthenticated`
    at = run_page("overview")
    assert_clean(at)
    assert at.metric


def test_a_broken_roles_file_lets_nobody_in(use_data, tmp_path, monkeypatch):
    roles = tmp_path / "roles.yaml"
    roles.write_text("users:\n  ana@shop.example: superuser\n")
    monkeypatch.setenv("RETAIN_ROLES", str(roles))
    at = run_page("overview")
    assert any("roles settings are wrong" in e.value and "superuser" in e.value for e in at.error)
    assert not at.metric


# --------------------------------------------------------------------------------------
# States: nothing published, stages missing, last run failed


def test_nothing_published_says_how_to_run_the_pipeline(tmp_path, monkeypatch):
    point_at(monkeypatch, tmp_path)
    at = run_page("overview")
    assert_clean(at)
    assert any("Nothing has been published yet" in w.value for w in at.warning)
    assert "retain run" in page_text(at)


def _marts_only_snapshot(source: Path, data_dir: Path) -> None:
    """A published folder whose snapshot has only the marts (a run from before ML and exports)."""
    published = data_dir / "published"
    published.mkdir(parents=True)
    target = published / "snapshot-20260101T000000000000Z.duckdb"
    with duckdb.connect(str(target)) as c:
        c.execute(f"attach '{source}' as src (read_only)")
        c.execute("create schema marts")
        for (name,) in c.execute(
            "select table_name from information_schema.tables where table_catalog = 'src' and table_schema = 'marts'"
        ).fetchall():
            c.execute(f'create table marts."{name}" as select * from src.marts."{name}"')
    (published / "CURRENT").write_text(target.name + "\n")
    status = {
        "last_run": {"success": False, "finished_at": "2026-01-02T06:00:00+00:00", "error": "dbt test failed",
                     "failed_checks": ["marts/fct_orders:unique_order_id"], "failed_steps": ["dbt_build"]},
        "last_success": {"success": True, "finished_at": "2026-01-01T06:00:00+00:00", "failed_checks": []},
    }
    (published / "status.json").write_text(json.dumps(status))


@pytest.fixture(scope="module")
def marts_only_dir(snapshot, tmp_path_factory) -> Path:
    """A data folder with a marts-only snapshot and a failed last run."""
    path = tmp_path_factory.mktemp("marts-only")
    _marts_only_snapshot(snapshot, path)
    return path


@pytest.mark.parametrize("page", ["churn", "outreach", "overview"])
def test_missing_stages_show_a_note_and_a_failed_run_a_warning(page, marts_only_dir, monkeypatch):
    point_at(monkeypatch, marts_only_dir)
    at = run_page(page)
    assert_clean(at)
    assert any("failed" in w.value and "unique_order_id" in w.value for w in at.warning)
    if page == "overview":
        assert len(at.metric) >= 9
        segment = next(s for s in at.sidebar.selectbox if s.label == "Segment")
        assert segment_label("risk:high") not in segment.options  # no scores, no risk tiers
    else:
        assert any("not in the published snapshot yet" in i.value for i in at.info)


def test_freshness_banner_names_the_last_successful_run(use_data):
    at = run_page("overview")
    assert any("Last successful run" in c.value for c in at.caption)


# --------------------------------------------------------------------------------------
# Data layer


def _everything(con) -> Filters:
    months = filter_options(con)["months"]
    return Filters(start=months[0], end=months[-1])


def test_monthly_kpis_match_the_kpi_mart(con):
    """The dashboard's per-month SQL reproduces marts.kpi_monthly exactly (one definition, in dbt)."""
    f = _everything(con)
    kpi = query(con, "select * from marts.kpi_monthly order by month")
    kpi["month"] = pd.to_datetime(kpi["month"])
    d = overview(con, f)["trend"]
    both = kpi.merge(d, on="month", suffixes=("_mart", "_dashboard"))
    assert len(both) == len(kpi)
    for col in ("orders", "revenue", "avg_order_value", "on_time_delivery_rate", "nps", "csat",
                "complaint_resolution_rate", "repeat_purchase_rate", "returning_customer_rate"):
        mart, mine = both[f"{col}_mart"].astype(float), both[f"{col}_dashboard"].astype(float)
        # the dashboard shows nothing (NaN) where the mart says NULL, and the same number elsewhere
        ok = np.isclose(mart, mine, rtol=1e-9, atol=1e-9, equal_nan=True)
        assert ok.all(), both.loc[~ok, ["month", f"{col}_mart", f"{col}_dashboard"]]
    # the returning rate is read from the mart when nobody is filtered out: check the computed path too
    computed = returning_monthly(con, f, f.start, f.end_exclusive, use_mart=False).merge(kpi, on="month")
    assert np.allclose(computed["returning_customer_rate_x"].astype(float),
                       computed["returning_customer_rate_y"].astype(float), equal_nan=True)
    monthly = support(con, f)["monthly"]
    both = kpi.merge(monthly, on="month", suffixes=("", "_dashboard"))
    for col, mine in (("median_hours_to_first_response", "median_hours_first_response"),
                      ("median_hours_to_resolution", "median_hours_resolution"),
                      ("first_contact_resolution_rate", "first_contact_resolution_rate_dashboard")):
        assert np.allclose(both[col].astype(float), both[mine].astype(float), equal_nan=True), col
    wismo = post_purchase(con, f)["wismo"].merge(kpi, on="month", suffixes=("", "_mart"))
    assert np.allclose(wismo["wismo_per_100_orders"], wismo["wismo_per_100_orders_mart"], equal_nan=True)


def test_returning_rate_paths_agree(con):
    """With every channel selected the channel-aware pairing gives the one-pass numbers."""
    f = _everything(con)
    channels = tuple(query(con, "select distinct sales_channel from marts.fct_orders")["sales_channel"])
    if any(c is None for c in channels):
        pytest.skip("some orders have no sales channel: selecting every channel is not everything")
    every = Filters(f.start, f.end, channels=channels)
    fast = returning_monthly(con, f, f.start, f.end_exclusive, use_mart=False)
    paired = returning_monthly(con, every, f.start, f.end_exclusive)
    assert fast["returning_customers"].tolist() == paired["returning_customers"].tolist()
    assert fast["previous_customers"].tolist() == paired["previous_customers"].tolist()
    assert returning_periods(con, f) == returning_periods(con, every)


def test_cohorts_computed_from_orders_match_the_cohort_mart(con):
    f = _everything(con)
    mart = cohort_retention(con, f, use_mart=True)
    computed = cohort_retention(con, f, use_mart=False)
    key = ["cohort_month", "months_since_first_order"]
    merged = mart.merge(computed, on=key, how="outer", suffixes=("_mart", "_orders"), indicator=True)
    # the mart also lists months with no active customer (0); the dashboard leaves them out
    only_mart = merged[merged["_merge"] == "left_only"]
    assert (only_mart["active_customers_mart"] == 0).all()
    both = merged[merged["_merge"] == "both"]
    assert (both["active_customers_mart"] == both["active_customers_orders"]).all()
    assert (both["cohort_size_mart"] == both["cohort_size_orders"]).all()
    assert np.allclose(both["retention_rate_mart"], both["retention_rate_orders"])


def test_a_country_filter_counts_exactly_that_countrys_orders(con):
    f = _everything(con)
    country = filter_options(con)["countries"][0]
    mine = monthly_sums(con, Filters(f.start, f.end, countries=(country,)))
    direct = query(
        con,
        """
        select count(*) as orders, sum(o.total)::double as revenue from marts.fct_orders o
        join marts.dim_customers c using (customer_id) where o.is_valid and c.country = $country
        """,
        {"country": country},
    ).iloc[0]
    assert mine["orders"].sum() == direct["orders"]
    assert mine["revenue"].sum() == pytest.approx(direct["revenue"])


def test_filter_values_are_bound_never_spliced_into_sql(con):
    hostile = "DE') or (1=1"
    f = replace_countries(_everything(con), (hostile,))
    assert hostile not in customer_scope(con, f) + order_scope(con, f)
    out = overview(con, f)
    assert out["current"]["orders"] == 0  # no customer lives in that "country"


def replace_countries(f: Filters, countries: tuple[str, ...]) -> Filters:
    """`f` with other countries."""
    return Filters(f.start, f.end, countries=countries, channels=f.channels, segment=f.segment)


def test_snapshot_connection_is_read_only_and_cannot_reach_files(con):
    with pytest.raises(duckdb.Error, match="(?i)disabled|permission"):
        query(con, "select * from read_csv('/etc/hostname')")
    with pytest.raises(duckdb.Error, match="(?i)read-only|read only"):
        query(con, "create table marts.nope as select 1 as x")


def test_every_page_function_returns_small_frames(con):
    """Pages get aggregates, never a table of customers (except the 50-row outreach previews)."""
    f = _everything(con)
    for name, fn in loaders.PAGES.items():
        out = fn(con, f)
        assert out["available"], name
        for key, value in out.items():
            if isinstance(value, pd.DataFrame):
                assert len(value) <= 2_000, (name, key, len(value))


def test_masking_hides_emails_and_phones():
    with duckdb.connect() as c:
        row = c.execute(
            f"select {mask_email('$e')}, {mask_phone('$p')}, {mask_text('$t')}",
            {"e": "jane.doe@example.com", "p": "+4915112345678", "t": "call me on +49 151 1234567 or jane@x.de!"},
        ).fetchone()
    assert row[0] == "j•••@example.com"
    assert row[1].startswith("+49") and row[1].endswith("78") and "151123456" not in row[1]
    assert row[2] == "call me on [phone hidden] or [email hidden]!"
    assert mask_email_value("jane.doe@example.com") == "j•••@example.com"


def test_filters_previous_period_and_months():
    f = Filters(start=date(2025, 1, 1), end=date(2025, 3, 1))
    assert f.months == 3 and f.end_exclusive == date(2025, 4, 1)
    prev = f.previous()
    assert (prev.start, prev.end) == (date(2024, 10, 1), date(2024, 12, 1))


def test_screenshot_helper_keeps_pngs_small(tmp_path):
    from dashboards.browser import _shrink

    rng = np.random.default_rng(0)
    from PIL import Image

    noisy = Image.fromarray(rng.integers(0, 255, (900, 1400, 3), dtype=np.uint8))
    raw = tmp_path / "noise.png"
    noisy.save(raw)
    small = _shrink(raw.read_bytes(), 400_000)
    assert len(small) <= 400_000
    shutil.rmtree(tmp_path, ignore_errors=True)
