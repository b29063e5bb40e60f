"""Parity: one generated shop, ingested from its platform files and from contract files, gives the
same marts for every KPI the platform files can carry.

`retain generate --as-platforms` writes the same simulated shop as Shopify, Klaviyo, Zendesk,
Judge.me and Delighted exports (docs/generator.md). Both routes are ingested and built with
real dbt into two warehouses; the marts are compared at aggregate level, and per customer
through the email (contract `C10000001` is `em_...` on the platform side). Every KPI left out
of an equality here is listed, with its reason, in docs/importing.md ("Parity with contract
files"); `test_the_docs_list_every_exception` keeps the two in step.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from pipelines.generate import generate
from pipelines.generate.platforms import DEFAULT_SHOP_TIMEZONE, generate_platforms
from pipelines.ingest import ingest
from tests.dbt_fixture import run_dbt

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS, SEED = 400, 7

#: kpi_monthly columns equal on both routes.
KPI_EQUAL = [
    "orders", "revenue", "avg_order_value", "nps", "nps_responses", "avg_review_rating", "reviews_count",
    "complaints", "complaint_resolution_rate", "median_hours_to_resolution", "first_contact_resolution_rate",
    "wismo_tickets", "wismo_per_100_orders",
]
#: kpi_monthly columns that differ, each with its reason in docs/importing.md.
KPI_EXCEPTIONS = [
    "customers_ordering", "new_customers", "returning_customer_rate", "repeat_purchase_rate",
    "on_time_delivery_rate", "delivered_orders", "return_rate", "csat", "csat_responses",
    "median_hours_to_first_response",
]
#: Marts compared only in part or not at all (reasons in docs/importing.md).
MART_EXCEPTIONS = ["retention_cohorts", "repurchase_by_delivery", "repurchase_by_message_exposure",
                   "complaint_recovery", "status", "carrier", "product_name", "support_reply", "first_response_at",
                   "satisfaction_score"]


def _build(root: Path, as_platforms: bool) -> Path:
    landing = root / "landing"
    if as_platforms:
        generate_platforms(landing, customers=CUSTOMERS, seed=SEED, shop_timezone=DEFAULT_SHOP_TIMEZONE)
    else:
        generate(landing, customers=CUSTOMERS, seed=SEED)
    warehouse = root / "warehouse.duckdb"
    ingest(landing=landing, warehouse=warehouse)
    done = run_dbt(["build", "--exclude-resource-type", "unit_test"], warehouse, root)
    assert done.returncode == 0, done.stdout[-6000:]
    return warehouse


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A connection with the contract route attached as `c` and the platform route as `p`."""
    root = tmp_path_factory.mktemp("parity")
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith("RETAIN_"):
                mp.delenv(var, raising=False)
        mp.setenv("RETAIN_DATA_DIR", str(root))
        mp.setenv("RETAIN_SHOP_TIMEZONE", DEFAULT_SHOP_TIMEZONE)
        contract = _build(root / "contract", as_platforms=False)
        platforms = _build(root / "platforms", as_platforms=True)
    con = duckdb.connect()
    con.execute(f"ATTACH '{contract}' AS c (READ_ONLY)")
    con.execute(f"ATTACH '{platforms}' AS p (READ_ONLY)")
    # contract customer id -> the platform route's id: the email's key (the framework's rule)
    con.execute("""CREATE TEMP TABLE cmap AS
        SELECT customer_id AS c_id, 'em_' || left(md5(lower(trim(email))), 20) AS p_id FROM c.marts.dim_customers
        WHERE lower(trim(email)) LIKE '%_@_%._%' AND NOT contains(trim(email), ' ')
        QUALIFY count(*) OVER (PARTITION BY lower(trim(email))) = 1""")
    yield con
    con.close()


def _differences(con, table: str, keys: list[str], columns: list[str], where: str = "TRUE",
                 c_key: str | None = None) -> dict[str, int]:
    """{column: rows that differ} between c and p (numbers to 1e-6), joined on `keys`."""
    c_key = c_key or ", ".join(keys)
    a = f"(SELECT {c_key}, * EXCLUDE ({', '.join(keys)}) FROM c.marts.{table} WHERE {where})"
    b = f"(SELECT * FROM p.marts.{table} WHERE {where})"
    on = " AND ".join(f"a.{k} IS NOT DISTINCT FROM b.{k}" for k in keys)
    missing = con.execute(f"SELECT count(*) FROM {a} a FULL JOIN {b} b ON {on} "
                          f"WHERE a.{keys[0]} IS NULL OR b.{keys[0]} IS NULL").fetchone()[0]
    out = {"(rows only on one side)": missing} if missing else {}
    for col in columns:
        n = con.execute(
            f"SELECT count(*) FROM {a} a JOIN {b} b ON {on} WHERE CASE "
            f"WHEN TRY_CAST(a.{col} AS DOUBLE) IS NOT NULL OR TRY_CAST(b.{col} AS DOUBLE) IS NOT NULL "
            f"THEN abs(coalesce(TRY_CAST(a.{col} AS DOUBLE), -1e18) - coalesce(TRY_CAST(b.{col} AS DOUBLE), -1e18)) "
            f"> 1e-6 ELSE a.{col}::VARCHAR IS DISTINCT FROM b.{col}::VARCHAR END"
        ).fetchone()[0]
        if n:
            out[col] = n
    return out


def test_monthly_kpis_are_equal(both):
    assert _differences(both, "kpi_monthly", ["month"], KPI_EQUAL) == {}


#: The exceptions by the reason docs/importing.md gives (one row there each): KPIs of one reason
#: need not all differ in a given shop (an anonymous order changes customers_ordering only when
#: its buyer also ordered under their own id in that month), but each reason must show.
KPI_EXCEPTION_REASONS = (
    ("customers_ordering", "new_customers", "returning_customer_rate", "repeat_purchase_rate"),
    ("on_time_delivery_rate", "delivered_orders"),
    ("return_rate",),
    ("csat", "csat_responses"),
    ("median_hours_to_first_response",),
)


def test_monthly_kpi_exceptions_are_real(both):
    """Each listed reason shows in this shop (so the list holds nothing stale)."""
    assert sorted(k for group in KPI_EXCEPTION_REASONS for k in group) == sorted(KPI_EXCEPTIONS)
    diff = _differences(both, "kpi_monthly", ["month"], KPI_EXCEPTIONS)
    for group in KPI_EXCEPTION_REASONS:
        assert set(diff) & set(group), f"none of {group} differs: is the reason still real?"


def test_every_kpi_monthly_column_is_compared_or_an_exception(both):
    columns = {r[0] for r in both.execute("DESCRIBE c.marts.kpi_monthly").fetchall()} - {"month"}
    assert columns == set(KPI_EQUAL) | set(KPI_EXCEPTIONS)


def test_repurchase_by_nps_band_is_equal(both):
    cols = ["responses", "repurchased_90d", "repurchase_rate_90d", "band_order"]
    assert _differences(both, "repurchase_by_nps_band", ["nps_band"], cols) == {}


def test_feedback_nps_and_reviews_are_equal(both):
    # per type, month and score: counts of NPS answers and review ratings
    q = ("SELECT feedback_type, submitted_month, score, count(*) FROM {}.marts.fct_feedback "
         "WHERE feedback_type IN ('nps', 'review', 'ces') GROUP BY ALL ORDER BY ALL")
    assert both.execute(q.format("c")).fetchall() == both.execute(q.format("p")).fetchall()
    # CSAT: the survey tool's answers are the same; Zendesk's ticket ratings come on top (an exception)
    csat = "SELECT submitted_month, score, count(*) FROM {}.marts.fct_feedback WHERE feedback_type = 'csat' {}" \
           "GROUP BY ALL ORDER BY ALL"
    assert both.execute(csat.format("c", "")).fetchall() == both.execute(
        csat.format("p", "AND source_id LIKE 'delighted:%' ")).fetchall()


def test_outbound_message_engagement_is_equal(both):
    # support replies are the helpdesk's (no ticket comments are exported); push clicks do
    # not exist in Klaviyo
    cols = ["sent", "delivered", "opened", "unsubscribed", "delivery_rate", "open_rate", "unsubscribe_rate"]
    assert _differences(both, "message_engagement_monthly", ["month", "channel", "message_type"], cols,
                        where="message_type <> 'support_reply'") == {}
    assert _differences(both, "message_engagement_monthly", ["month", "channel", "message_type"],
                        ["clicked", "click_rate"], where="message_type <> 'support_reply' AND channel <> 'push'") == {}


def test_support_tickets_are_equal(both):
    cols = ["channel", "ticket_type", "category", "priority", "status", "created_at", "resolved_at", "agent_replies",
            "reopen_count", "is_complaint", "is_wismo", "is_resolved", "is_open", "hours_to_resolution",
            "is_first_contact_resolution", "customer_complaint_number"]
    # T10000001 is Zendesk ticket 10000001 (docs/generator.md)
    assert _differences(both, "fct_support_tickets", ["ticket_id"], cols,
                        c_key="'zendesk:' || substr(ticket_id, 2) AS ticket_id") == {}


def test_product_ratings_are_equal(both):
    # P1001 is Shopify / Judge.me product 8000000001001; the product's name and category come
    # from order lines, which carry the SKU, not the product id
    cols = ["reviews_count", "avg_rating", "low_ratings_count", "low_rating_rate", "last_reviewed_at"]
    assert _differences(both, "product_ratings", ["product_id"], cols,
                        c_key="'800000000' || substr(product_id, 2) AS product_id") == {}


def test_orders_are_equal(both):
    cols = ["order_date", "order_month", "is_valid", "currency", "subtotal", "discount", "shipping", "tax",
            "total", "sales_channel", "discount_code", "refund_amount", "shipped_at"]
    # O100000001 is Shopify order 6000100000001
    assert _differences(both, "fct_orders", ["order_id"], cols,
                        c_key="'6000' || substr(order_id, 2) AS order_id") == {}
    # status: delivered is shipped (no delivery date), a delivered POS order (never shipped) is paid
    assert both.execute(
        """SELECT a.status, b.status, count(*) FROM c.marts.fct_orders a
        JOIN p.marts.fct_orders b ON b.order_id = '6000' || substr(a.order_id, 2)
        WHERE a.status IS DISTINCT FROM b.status GROUP BY ALL ORDER BY ALL"""
    ).fetchall() == [(c, p, n) for c, p, n in both.execute(
        """SELECT a.status, b.status, count(*) FROM c.marts.fct_orders a
        JOIN p.marts.fct_orders b ON b.order_id = '6000' || substr(a.order_id, 2)
        WHERE a.status IN ('delivered', 'returned') AND b.status IN ('shipped', 'paid') AND a.status <> b.status
        GROUP BY ALL ORDER BY ALL"""
    ).fetchall()]


def test_customers_with_an_email_are_the_same_customers(both):
    """Per customer with a usable email: the same orders, money, feedback and tickets."""
    cols = ["first_order_at", "last_order_at", "orders_count", "lifetime_revenue", "lifetime_refunds", "net_revenue",
            "avg_order_value", "avg_days_between_orders", "complaints_count", "open_tickets_count",
            "last_nps_score", "avg_review_rating", "is_repeat_customer"]
    diff = _differences(both, "dim_customers", ["customer_id"], cols,
                        where="customer_id IN (SELECT c_id FROM cmap UNION ALL SELECT p_id FROM cmap)",
                        c_key="(SELECT p_id FROM cmap WHERE c_id = customer_id) AS customer_id")
    assert diff == {}
    # nearly every customer has one: the rest are the exceptions' unattributable customers
    total = both.execute("SELECT count(*) FROM c.marts.dim_customers").fetchone()[0]
    assert both.execute("SELECT count(*) FROM cmap").fetchone()[0] >= 0.95 * total


def test_customers_without_email_or_phone_are_the_only_extra_customers(both):
    """Rows naming their customer by a platform id alone resolve to one customer (identity in
    staging); what stays apart is a customer the files give neither email nor phone."""
    c_n = both.execute("SELECT count(*) FROM c.marts.dim_customers").fetchone()[0]
    p_n = both.execute("SELECT count(*) FROM p.marts.dim_customers").fetchone()[0]
    no_contact = both.execute(
        "SELECT count(*) FROM c.marts.dim_customers WHERE NOT (lower(trim(coalesce(email, ''))) LIKE '%_@_%._%') "
        "AND coalesce(trim(phone), '') NOT LIKE '+%'"
    ).fetchone()[0]
    anonymous_orders = both.execute(
        "SELECT count(*) FROM p.marts.dim_customers WHERE customer_id LIKE 'anon\\_%' ESCAPE '\\'").fetchone()[0]
    # each such customer may appear once per platform that knows them, plus one per anonymous order
    assert p_n - c_n <= no_contact * 3 + anonymous_orders
    # a platform id stays a customer of its own only for a person with neither email nor phone
    assert both.execute(
        "SELECT count(*) FROM p.marts.dim_customers WHERE customer_id LIKE 'zendesk:%' OR customer_id LIKE "
        "'delighted:%' OR customer_id LIKE 'klaviyo:%'"
    ).fetchone()[0] <= no_contact * 3


def test_the_docs_list_every_exception():
    text = (ROOT / "docs" / "importing.md").read_text()
    section = text[text.index("## Parity with contract files"):]
    for name in KPI_EXCEPTIONS + MART_EXCEPTIONS:
        assert f"`{name}`" in section, name
