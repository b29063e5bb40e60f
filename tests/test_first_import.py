"""A new user's first try: a real Shopify orders export (19 orders over a week) dropped into
an empty data folder's `landing/shopify/`, `retain run`, then the dashboard.

The export is far too short for a churn model. The run must still succeed: training and
scoring report "skipped" with the reason, the outreach plays that need scores are skipped
while the rule-only ones run, the KPIs and the match rates are published, `retain status`
says so, and the dashboard's churn and outreach pages say "not enough history yet".

The sample is read in place from `../shared/platform-samples/` and copied into a temporary
landing folder at run time (skipped with a reason where `../shared` is absent).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
SHOPIFY_SAMPLE = ROOT.parent / "shared" / "platform-samples" / "shopify" / "forezia-mock-data__orders_export.csv"
APP = ROOT / "dashboards" / "app.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHOPIFY_SAMPLE.exists(), reason=f"{SHOPIFY_SAMPLE} is absent (real platform samples)"),
]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    env.update(RETAIN_DATA_DIR=str(data_dir), COLUMNS="250")
    return env


def _retain(data_dir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, env=_env(data_dir),
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """An empty data folder, the export copied into landing/shopify/, one `retain run`."""
    data_dir = tmp_path_factory.mktemp("first-import")
    landing = data_dir / "landing" / "shopify"
    landing.mkdir(parents=True)
    shutil.copy(SHOPIFY_SAMPLE, landing / "orders_export_1.csv")
    result = _retain(data_dir, "run")
    return data_dir, result


@pytest.fixture(scope="module")
def export_orders() -> dict[str, dict]:
    """The export's orders as Shopify wrote them: each order's first row (order-level columns)."""
    with open(SHOPIFY_SAMPLE, newline="", encoding="utf-8-sig") as fh:
        orders: dict[str, dict] = {}
        for row in csv.DictReader(fh):
            orders.setdefault(row["Name"], row)
    return orders


def _snapshot(data_dir: Path):
    from pipelines.core.warehouse import open_snapshot
    from pipelines.publish import current_snapshot

    snap = current_snapshot(data_dir / "published")
    assert snap is not None, "nothing was published"
    return open_snapshot(snap)


def test_the_run_succeeds_and_says_what_was_skipped_and_why(first_run):
    _, result = first_run
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "full_job succeeded" in out
    # the churn model and its scores skip; next-product recommendations need no history (score: partly)
    assert "train (skipped)" in out and "score (partly skipped)" in out, out[-3000:]
    assert "outreach (partly skipped)" in out
    assert "outreach partly skipped: 4 plays need churn scores and were skipped" in out
    assert "train skipped: 6 days of orders (2025-05-11 to 2025-05-17), the churn model needs at least 420" in out
    assert "see docs/churn-model.md" in out


def test_status_records_the_skipped_stages(first_run):
    from pipelines.publish import read_run_status

    data_dir, _ = first_run
    recorded = read_run_status(data_dir / "published")
    assert recorded["last_success"]["run_id"] == recorded["last_run"]["run_id"]
    stages = {s["stage"]: s for s in recorded["last_run"]["stages"]}
    assert "at least 420" in stages["train"]["skipped"][0]
    # score: the churn scores skip, and the recommendations' step skips its backtest
    assert any(m.startswith("not enough history yet: ") for m in stages["score"]["skipped"])
    assert any("a backtest needs 180 days" in m for m in stages["score"]["skipped"])
    assert "service_recovery" in stages["outreach"]["skipped"][0]
    assert "publish" in stages and not stages["publish"]["skipped"]

    shown = _retain(data_dir, "status", timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "train (skipped)" in shown.stdout and "train skipped: 6 days of orders" in shown.stdout


def test_kpis_are_published_and_equal_the_exports_totals(first_run, export_orders):
    data_dir, _ = first_run
    kept = {name: row for name, row in export_orders.items() if not row.get("Cancelled at", "").strip()}
    assert len(export_orders) == 19
    with _snapshot(data_dir) as con:
        orders, revenue = con.execute(
            "select count(*), sum(total) from marts.fct_orders where is_valid"
        ).fetchone()
        assert orders == len(kept)
        assert Decimal(str(revenue)) == sum(Decimal(row["Total"]) for row in kept.values())
        customers = con.execute("select count(*) from marts.dim_customers where orders_count > 0").fetchone()[0]
        emails = {row["Email"].strip().lower() for row in kept.values() if row["Email"].strip()}
        assert customers >= len(emails)
        assert con.execute("select count(*) from marts.kpi_monthly").fetchone()[0] >= 1


def test_no_scores_are_published_and_the_reason_is(first_run):
    data_dir, _ = first_run
    with _snapshot(data_dir) as con:
        assert con.execute("select count(*) from ml.churn_scores").fetchone()[0] == 0
        training, reason, scoring = con.execute(
            "select training, training_reason, scoring from ml.churn_status"
        ).fetchone()
        assert (training, scoring) == ("skipped", "skipped")
        assert "the churn model needs at least 420" in reason
        plays = con.execute("select plays_json from exports.runs").fetchone()[0]
    # the rule-only plays ran; the plays reading a score were left out of the run
    assert "onboarding" in plays and "winback" not in plays


def test_match_rates_are_published(first_run):
    data_dir, _ = first_run
    with _snapshot(data_dir) as con:
        rows = con.execute(
            "select source_name, platform, rows_count, matched_count, unmatched_count, match_rate "
            "from marts.identity_match_rates"
        ).fetchall()
    assert rows == [("orders", "shopify", 19, 19, 0, 1.0)]


@pytest.fixture
def app_on(first_run, monkeypatch):
    """Run a dashboard page in-process (AppTest) on the first run's snapshot."""
    data_dir, _ = first_run
    for var in [v for v in os.environ if v.startswith("RETAIN_")]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(data_dir))

    def run(page: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=90)
        if page != "overview":
            at.switch_page(f"views/{page}.py")
        at.run()
        assert not at.exception, at.exception
        return at

    return run


def _texts(at: AppTest) -> str:
    return "\n".join([*(i.value for i in at.info), *(m.value for m in at.markdown), *(s.value for s in at.subheader),
                      *(c.value for c in at.caption)])


def test_overview_shows_the_data_sources_with_their_match_rate(app_on):
    at = app_on("overview")
    assert "Data sources" in [s.value for s in at.subheader]
    table = at.dataframe[-1].value
    assert list(table.columns) == ["Platform", "Data", "Rows", "Matched to a shop customer", "Kept as unmatched",
                                   "Match rate"]
    assert table.iloc[0].tolist() == ["Shopify", "Orders", 19, 19, 0, 1.0]


def test_churn_page_says_not_enough_history_yet(app_on):
    at = app_on("churn")
    text = _texts(at)
    assert "Not enough history yet: 6 days of orders" in text, text
    assert not at.get("plotly_chart")


def test_outreach_page_says_which_plays_could_not_run(app_on):
    at = app_on("outreach")
    text = _texts(at)
    assert "Not enough history yet" in text and "plays that need churn scores" in text, text


def test_data_sources_are_hidden_without_platform_files():
    import duckdb

    from dashboards.data.overview import data_sources, data_sources_table


    def with_rates(*rows):
        con = duckdb.connect()  # a new connection each time: the dashboard caches a connection's catalog
        if rows:
            con.execute("create schema marts")
            con.execute("""create table marts.identity_match_rates (source_name varchar, platform varchar,
                           rows_count bigint, matched_count bigint, unmatched_count bigint, match_rate double)""")
            con.executemany("insert into marts.identity_match_rates values (?, ?, ?, ?, ?, ?)", list(rows))
        return con

    assert data_sources(with_rates()) is None  # no mart at all
    retain_only = ("orders", "retain", 10, 10, 0, 1.0)
    assert data_sources(with_rates(retain_only)) is None  # only retain's own contract files
    tickets = ("support_tickets", "zendesk", 4, 3, 1, 0.75)
    shown = data_sources_table(data_sources(with_rates(retain_only, tickets)))
    assert shown["Platform"].tolist() == ["Zendesk", "Your own files (retain format)"]
    assert shown.iloc[0].tolist() == ["Zendesk", "Support tickets", 4, 3, 1, 0.75]


def test_customer_360_says_why_there_is_no_score(first_run, app_on):
    app_on("overview")  # points the app at the first run's data folder
    with _snapshot(first_run[0]) as con:
        customer = con.execute("select customer_id from marts.dim_customers order by orders_count desc").fetchone()[0]
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.switch_page("views/customer_360.py")
    at.query_params = {"customer": customer}
    at.run()
    assert not at.exception, at.exception
    assert "No churn score for this customer. Not enough history yet: 6 days of orders" in _texts(at)


def test_the_plays_needing_scores_are_those_whose_rule_reads_one():
    from pipelines.outreach.lists import plays_needing_scores
    from pipelines.outreach.playbook import load_playbook

    pb = load_playbook(ROOT / "pipelines" / "outreach" / "playbook.yaml")
    needing = plays_needing_scores(pb)
    assert needing == ["service_recovery", "vip_winback", "winback", "at_risk_nurture"]
    assert {"onboarding", "review_request", "advocate_referral"} <= {p.name for p in pb.plays} - set(needing)
