"""Product journeys and next-product recommendations.

Hand-made order lines pin the recommender's rules (exclusions, reasons, the popularity fill,
the backtest's metrics). A generated shop run through the real full Dagster job (ingest, dbt,
train, score, recommendations, outreach, exports) checks that the journey marts recover what
the generator planted and that the recommender beats the popularity baseline.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ml.recommend import PREFIX, NoProductData, build_candidates, drop_candidates, write_recommendations
from ml.recommend_backtest import _metrics, backtest_card, run_backtest
from pipelines.core.warehouse import connect
from pipelines.generate import journeys

LINE_COLUMNS = {
    "order_id": "VARCHAR", "line_number": "INTEGER", "customer_id": "VARCHAR", "ordered_at": "TIMESTAMP",
    "purchase_number": "BIGINT", "product_id": "VARCHAR", "product_name": "VARCHAR", "category": "VARCHAR",
    "quantity": "INTEGER", "line_amount": "DECIMAL(18, 2)", "is_returned": "BOOLEAN",
}
T0 = datetime(2025, 1, 1, 12)


def _warehouse(path: Path, purchases: list[tuple], consumables: tuple[str, ...] = ()):
    """marts.fct_order_lines from (customer, days after T0, [products], returned) and marts.dim_products."""
    con = connect(path)
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(f"CREATE TABLE marts.fct_order_lines ({', '.join(f'{c} {t}' for c, t in LINE_COLUMNS.items())})")
    rows = []
    numbers: dict[str, int] = {}
    for i, (customer, day, products, returned) in enumerate(sorted(purchases, key=lambda p: (p[0], p[1]))):
        numbers[customer] = numbers.get(customer, 0) + 1
        for line, product in enumerate(products, start=1):
            rows.append((f"O{i}", line, customer, T0 + timedelta(days=day), numbers[customer], product,
                         f"Product {product}", "cat", 1, 10, returned))
    if rows:
        con.executemany(f"INSERT INTO marts.fct_order_lines VALUES ({', '.join('?' * len(LINE_COLUMNS))})", rows)
    con.execute("""CREATE TABLE marts.dim_products AS
        SELECT product_id, max(product_name) AS product_name, max(category) AS category,
               list_contains(?, product_id) AS is_consumable
        FROM marts.fct_order_lines GROUP BY product_id""", [list(consumables)])
    return con


def _rule_breaches(con) -> int:
    """Recommendations of a product the customer returned, or bought before and is no consumable."""
    return con.execute("""
        SELECT count(*) FROM ml.product_recommendations r
        JOIN marts.fct_order_lines l USING (customer_id, product_id)
        JOIN marts.dim_products p USING (product_id)
        WHERE l.is_returned OR NOT p.is_consumable""").fetchone()[0]


def _recs(con, customer: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT product_id FROM ml.product_recommendations WHERE customer_id = ? ORDER BY rank", [customer]).fetchall()]


@pytest.fixture
def shop(tmp_path):
    """30 customers buy A then B (and C with A); a few customers to recommend to."""
    purchases = []
    for i in range(30):
        purchases += [(f"ab{i}", 0, ["A", "C"], False), (f"ab{i}", 30, ["B"], False)]
    for i in range(10):
        purchases += [(f"pop{i}", 200, ["P"], False)]  # the best-seller of the last 90 days
    for i in range(12):
        purchases += [(f"cons{i}", 0, ["K"], False), (f"cons{i}", 20, ["K"], False)]  # K is re-bought
    purchases += [
        ("new", 210, ["A"], False),  # bought A: B next, C with it
        ("returner", 200, ["A"], False), ("returner", 205, ["B"], True),  # returned B
        ("owner", 200, ["A", "B"], False),  # already has B (no consumable)
        ("refill", 205, ["K"], False),  # K is a consumable: may be recommended again
    ]
    con = _warehouse(tmp_path / "w.duckdb", purchases, consumables=("K",))
    yield con
    con.close()


def test_recommends_what_buyers_of_the_same_product_bought_next_with_the_reason(shop):
    summary = write_recommendations(shop)
    assert _recs(shop, "new")[:2] == ["B", "C"]
    reason, kind = shop.execute("SELECT reason, reason_kind FROM ml.product_recommendations "
                                "WHERE customer_id = 'new' AND rank = 1").fetchone()
    assert kind == "next"
    assert reason == "bought Product A; buyers of Product A often buy Product B next"
    together = shop.execute("SELECT reason FROM ml.product_recommendations WHERE customer_id = 'new' "
                            "AND product_id = 'C'").fetchone()[0]
    assert together.endswith("often buy Product C with it")
    # at most 3 per customer, each product once, ranks 1..n
    bad = shop.execute("""SELECT customer_id FROM ml.product_recommendations GROUP BY customer_id
                          HAVING count(*) > 3 OR count(DISTINCT product_id) <> count(*) OR max(rank) <> count(*)
                       """).fetchall()
    assert bad == []
    assert summary.customers == shop.execute("SELECT count(DISTINCT customer_id) FROM marts.fct_order_lines"
                                             ).fetchone()[0]


def test_never_a_returned_product_nor_one_already_bought_unless_consumable(shop):
    write_recommendations(shop)
    assert "B" not in _recs(shop, "returner")
    assert "A" not in _recs(shop, "returner")  # bought, no consumable
    assert "B" not in _recs(shop, "owner") and "A" not in _recs(shop, "owner")
    assert _recs(shop, "refill")[0] == "K"
    assert shop.execute("SELECT reason_kind, reason FROM ml.product_recommendations WHERE customer_id = 'refill' "
                        "AND rank = 1").fetchone() == ("rebuy", "bought Product K before; its buyers often buy it "
                                                                "again")
    # across everyone: no returned product, no repeat of a non-consumable
    assert _rule_breaches(shop) == 0


def test_customers_without_enough_candidates_get_the_best_sellers(shop):
    write_recommendations(shop)
    # pop0 only bought P; nobody bought anything after or with P: best-sellers fill in
    rows = shop.execute("SELECT product_id, reason_kind, reason FROM ml.product_recommendations "
                        "WHERE customer_id = 'pop0' ORDER BY rank").fetchall()
    assert rows and all(kind == "popular" for _, kind, _ in rows)
    assert "P" not in [p for p, _, _ in rows]
    assert rows[0][2] == "one of the most bought products of the last 90 days"


def test_a_cutoff_sees_only_earlier_lines(shop):
    # before day 30 nobody had bought B yet: it cannot be recommended at that cut-off
    top = build_candidates(shop, T0 + timedelta(days=25))
    assert shop.execute(f"SELECT count(*) FROM {top} WHERE product_id = 'B'").fetchone()[0] == 0
    drop_candidates(shop)


def test_the_backtest_on_the_recommendations_coded_lines_equals_its_own(shop):
    # the full run's step: the recommendations keep their coded lines and pairs for the backtest
    def numbers(result):
        return [{k: v for k, v in c.items() if k != "seconds"} for c in result.cutoffs]

    own = run_backtest(shop, run_id="own", horizon_days=10, cutoffs=2, store=False)
    write_recommendations(shop, keep_prepared=True)
    assert shop.execute(f"SELECT count(*) FROM {PREFIX}_pairs").fetchone()[0] > 0
    shared = run_backtest(shop, run_id="shared", horizon_days=10, cutoffs=2, store=False, prepared=PREFIX)
    assert own.cutoffs and numbers(shared) == numbers(own)
    left = shop.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    assert left == []


def test_backtest_metrics_by_hand(shop):
    shop.execute("CREATE TEMP TABLE top_hand AS SELECT * FROM (VALUES ('x', 1, 'A'), ('x', 2, 'B'), ('x', 3, 'C'), "
                 "('y', 1, 'A'), ('y', 2, 'B'), ('y', 3, 'C')) t(customer_id, rank, product_id)")
    shop.execute("CREATE TEMP TABLE truth_hand AS SELECT * FROM (VALUES ('x', 'B'), ('x', 'Z'), ('y', 'Q')) "
                 "t(customer_id, product_id)")
    hit, ndcg = _metrics(shop, "SELECT * FROM top_hand", "truth_hand")
    assert hit == pytest.approx(0.5)
    # x: B at rank 2 -> 1/log2(3); ideal for 2 products: 1 + 1/log2(3); y: 0
    assert ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)) / 2)


def test_no_order_lines_means_no_recommendations_and_no_backtest(tmp_path):
    con = _warehouse(tmp_path / "empty.duckdb", [])
    with pytest.raises(NoProductData, match="CDNOW"):
        write_recommendations(con)
    result = run_backtest(con)
    assert result.skipped_reason and "CDNOW" in result.skipped_reason
    assert "No backtest yet" in backtest_card(con)
    con.close()


# --------------------------------------------------------------------------- a generated shop, end to end

JOURNEY_CUSTOMERS = int(os.environ.get("RETAIN_TEST_JOURNEY_CUSTOMERS", "20000"))
#: The margin (hit rate at 3, points) by which the recommender must beat the best-sellers;
#: docs/churn-model.md states it.
MIN_HIT_RATE_GAIN = 0.05


@pytest.fixture(scope="module")
def journey_shop(tmp_path_factory):
    """A generated shop through the real full Dagster job, in its own data folder."""
    from pipelines.core.config import export_environment, settings
    from pipelines.generate import generate
    from pipelines.runner import run_job
    from tests.conftest import _isolate_environment

    data_dir = tmp_path_factory.mktemp("retain-journeys")
    with pytest.MonkeyPatch.context() as mp:
        _isolate_environment(mp, data_dir)
        export_environment()
        generate(settings().landing, customers=JOURNEY_CUSTOMERS, seed=7, fmt="parquet")
        summary = run_job("full_job")
        if not summary.success:
            pytest.fail(f"the pipeline run failed: {summary.error}")
        s = settings()
        con = connect(s.warehouse, read_only=True)
        yield con, s
        con.close()


def test_the_planted_affinities_are_among_the_top_transitions(journey_shop):
    con, _ = journey_shop
    top = con.execute("""
        SELECT from_key, to_key FROM marts.product_transitions
        WHERE journey_level = 'product' AND meets_min_support AND NOT is_same
        ORDER BY customers DESC LIMIT 10""").fetchall()
    for trigger, trigger_name, partner, partner_name in journeys.planted_pairs():
        assert (trigger, partner) in top, f"{trigger_name} -> {partner_name} not among the top transitions: {top}"
        rank, lift = con.execute("""SELECT rank_in_from, lift FROM marts.product_transitions
            WHERE journey_level = 'product' AND from_key = ? AND to_key = ?""", [trigger, partner]).fetchone()
        assert rank <= 2 and lift > 3  # first after the product itself, far above chance


def test_the_planted_first_category_brings_customers_back_most(journey_shop):
    con, _ = journey_shop
    rates = dict(con.execute("""SELECT journey_key, repeat_rate_90d FROM marts.product_retention
                                WHERE journey_level IN ('category', 'all') AND meets_min_support""").fetchall())
    planted = rates.pop("beauty")
    overall = rates.pop("all")
    assert planted > max(rates.values()) + 0.02, rates
    assert planted > overall + 0.04


def test_consumables_are_found_in_the_data(journey_shop):
    con, _ = journey_shop
    flags = dict(con.execute("SELECT product_name, is_consumable FROM marts.dim_products").fetchall())
    assert flags["Night Cleanser"]  # the most bought planted consumable
    found = {n for n, f in flags.items() if f}
    planted = {n for n in flags if n.endswith(journeys.CONSUMABLE_NOUNS)}
    assert found <= planted, found - planted  # nothing else is re-bought that often
    for trigger, partner in journeys.AFFINITIES:
        assert not flags[trigger] and not flags.get(partner, False)


def test_the_recommender_beats_the_best_sellers_on_the_backtest(journey_shop):
    con, _ = journey_shop
    rows = con.execute("SELECT customers, hit_rate_at_3, baseline_hit_rate_at_3, ndcg_at_3, baseline_ndcg_at_3 "
                       "FROM ml.recommendation_backtests").fetchall()
    assert len(rows) == 3
    n = sum(r[0] for r in rows)
    hit = sum(r[0] * r[1] for r in rows) / n
    base = sum(r[0] * r[2] for r in rows) / n
    assert hit >= base + MIN_HIT_RATE_GAIN, (hit, base)
    assert all(r[3] > r[4] for r in rows)


def test_every_buyer_gets_three_recommendations_that_respect_the_rules(journey_shop):
    con, _ = journey_shop
    buyers = con.execute("SELECT count(DISTINCT customer_id) FROM marts.fct_order_lines").fetchone()[0]
    per = con.execute("SELECT count(DISTINCT customer_id), min(n), max(n) FROM (SELECT customer_id, count(*) n "
                      "FROM ml.product_recommendations GROUP BY 1)").fetchone()
    assert per == (buyers, 3, 3)
    assert _rule_breaches(con) == 0
    assert con.execute("SELECT count(*) FROM ml.product_recommendations WHERE reason IS NULL").fetchone()[0] == 0


def test_the_cross_sell_list_and_its_crm_files_carry_the_recommendations(journey_shop):
    con, s = journey_shop
    run_id = con.execute("SELECT max(run_id) FROM exports.runs").fetchone()[0]
    filled = dict(con.execute("""SELECT play, count(next_product_1_id) FROM exports.outreach_lists
                                 WHERE run_id = ? GROUP BY play""", [run_id]).fetchall())
    assert filled.get("cross_sell", 0) > 0
    assert all(n == 0 for play, n in filled.items() if play != "cross_sell")
    same = con.execute("""SELECT count(*) FROM exports.outreach_lists l
        JOIN ml.product_recommendations r ON r.customer_id = l.customer_id AND r.rank = 1
        WHERE l.run_id = ? AND l.play = 'cross_sell' AND l.next_product_1_id <> r.product_id""", [run_id]).fetchone()
    assert same[0] == 0
    from pipelines.outreach import read_latest

    base = s.exports / "cross_sell" / "klaviyo"
    text = (base / read_latest(base) / "cross_sell-klaviyo.csv").read_text()
    assert "retain_next_product_1" in text.splitlines()[0]
    salesforce = s.exports / "cross_sell" / "salesforce"
    header = (salesforce / read_latest(salesforce) / "cross_sell-salesforce.csv").read_text().splitlines()[0]
    assert "product" not in header.lower()


def test_the_model_card_shows_the_backtest(journey_shop):
    con, s = journey_shop
    from ml.card import model_card

    card = model_card(con, s.models)
    assert "## Next-product recommendations (backtest)" in card
    assert "against the popularity baseline" in card


def test_the_dashboard_reads_the_journey_from_the_published_snapshot(journey_shop):
    _, s = journey_shop
    from dashboards.data.products import customer_recommendations, products
    from pipelines.core.warehouse import open_snapshot
    from pipelines.publish import current_snapshot

    snap = open_snapshot(current_snapshot(s.published))
    d = products(snap)
    assert d["available"] and d["min_customers"] == 30
    steps = set(zip(d["top_transitions"]["from_name"], d["top_transitions"]["to_name"], strict=True))
    assert set(journeys.AFFINITIES) <= steps
    # only findings: every category flow drawn and every step shown has the minimum support
    assert (d["top_transitions"]["customers"] >= d["min_customers"]).all()
    assert d["categories"]["journey_key"].iloc[0] == "beauty"  # best first category first
    assert len(d["backtest"]) == 3
    customer = snap.execute("SELECT min(customer_id) FROM ml.product_recommendations").fetchone()[0]
    recs = customer_recommendations(snap, customer)
    assert list(recs["rank"]) == [1, 2, 3] and recs["reason"].str.len().gt(10).all()
    snap.close()
