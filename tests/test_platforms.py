"""Platform importers: Shopify, WooCommerce, Airbyte envelopes, mapping files, identity, preview.

The real Shopify sample is read in place from `../shared/platform-samples/` (skipped with a
reason where that folder is absent); everything else is written by `platform_fixtures.py`
from the vendors' documented columns.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines.importers import load_mapping, mappings_for
from pipelines.importers.mapping import BUILTIN_DIR, MappingError
from pipelines.importers.preview import preview
from pipelines.ingest import ingest
from tests import platform_fixtures as pf
from tests import platform_imports

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "platform-samples"
SHOPIFY_SAMPLE = SAMPLES / "shopify" / "forezia-mock-data__orders_export.csv"
needs_samples = pytest.mark.skipif(not SHOPIFY_SAMPLE.exists(), reason=f"{SAMPLES} is absent (real platform samples)")


data = platform_imports.data  # the pytest fixture: an empty data folder
_query = platform_imports.query
_balanced = platform_imports.balanced


def _run(data: Path, **kw):
    return ingest(landing=data / "landing", warehouse=data / "warehouse.duckdb", **kw)


def test_every_builtin_mapping_is_valid():
    found = sorted(p.relative_to(BUILTIN_DIR).as_posix() for p in BUILTIN_DIR.glob("*/*.yaml"))
    assert {"shopify/orders_csv.yaml", "shopify/customers_csv.yaml", "shopify/orders_json.yaml",
            "woocommerce/orders_json.yaml"} <= set(found)
    mappings = [load_mapping(BUILTIN_DIR / rel) for rel in found]
    looked_up = {s for m in mappings for lk in m.lookups for s in lk.sources}
    for rel, m in zip(found, mappings, strict=True):
        assert m.name == rel.removesuffix(".yaml")
        # a kind without targets (Zendesk ticket metrics) is read through another kind's lookups
        assert m.targets or set(m.detect_streams) & looked_up, rel


@needs_samples
def test_real_shopify_sample_loads_every_row(data, monkeypatch):
    monkeypatch.setenv("RETAIN_SHOP_TIMEZONE", "America/New_York")
    shutil.copy(SHOPIFY_SAMPLE, _landing(data, "shopify") / "orders_export.csv")  # a copy in a temporary folder
    results = {r.source: r for r in _run(data)}
    assert {s: (r.status, r.rows_read, r.rows_loaded) for s, r in results.items()} == {
        "orders": ("loaded", 19, 19),
        "order_items": ("loaded", 40, 40),
        "customers": ("loaded", 13, 13),  # 3 buyers with an email, 10 orders with none
        "returns": ("loaded", 0, 0),
    }
    _balanced(data)
    # shop-local -0400 times are stored in UTC; order-level values filled down to every line
    assert _query(data, "SELECT order_id, ordered_at, total, currency FROM raw.orders WHERE _source_row = 1") == [
        ("6634244374859", datetime(2025, 5, 11, 13, 55, 16), Decimal("1659.95"), "EUR")]
    items = _query(data, "SELECT order_id, line_number, product_name, unit_price FROM raw.order_items "
                         "WHERE order_id = '6634244374859' ORDER BY line_number")
    assert [(i[1], i[3]) for i in items] == [(1, Decimal("10.00")), (2, Decimal("24.95")), (3, Decimal("600.00")),
                                             (4, Decimal("1025.00"))]
    assert items[0][2] == "Gift Card - $10"  # the price is Lineitem price, never parsed from the name
    # mixed-case emails are one customer: Russel.winfield@ placed #1008, #1009 and #1016
    assert _query(data, "SELECT count(DISTINCT customer_id) FROM raw.orders WHERE customer_id LIKE 'em_%'") == [(3,)]


def _landing(data: Path, platform: str) -> Path:
    folder = data / "landing" / platform
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("version", [73, 78, 79])
def test_shopify_orders_versions_and_daylight_saving(data, version):
    pf.shopify_orders_csv(_landing(data, "shopify") / "orders_export.csv", version)
    results = {r.source: r for r in _run(data)}
    assert {s: r.rows_loaded for s, r in results.items()} == {"orders": 3, "order_items": 4, "customers": 3,
                                                              "returns": 1}
    _balanced(data)
    rows = _query(data, "SELECT order_id, ordered_at, status, discount_code, sales_channel FROM raw.orders ORDER BY 1")
    assert rows == [
        ("5550001", datetime(2024, 10, 30, 13, 15), "shipped", None, "web"),  # -0400
        ("5550002", datetime(2024, 11, 4, 4, 30), "shipped", "WELCOME", "pos"),  # -0500 after the change
        ("5550003", datetime(2024, 11, 5, 13, 0), "cancelled", None, "web"),
    ]
    assert _query(data, "SELECT return_id, order_id, refund_amount, status FROM raw.returns") == [
        ("5550002-refund", "5550002", Decimal("12.40"), "refunded")]
    customers = dict(_query(data, "SELECT customer_id, email FROM raw.customers"))
    assert customers["anon_shopify_5550003"] is None  # no email, no phone: kept as its own customer
    assert sorted(k[:3] for k in customers) == ["ano", "em_", "em_"]


def test_offsetless_times_use_the_shop_time_zone(data, monkeypatch):
    monkeypatch.setenv("RETAIN_SHOP_TIMEZONE", "Europe/Berlin")
    rows = [dict(pf.SHOPIFY_ORDERS[2], **{"Created at": "2024-07-01 12:00:00", "Fulfilled at": ""})]
    pf.shopify_orders_csv(_landing(data, "shopify") / "o.csv", 79, rows)
    _run(data)
    assert _query(data, "SELECT ordered_at FROM raw.orders") == [(datetime(2024, 7, 1, 10, 0),)]


def test_bad_platform_value_is_quarantined_naming_file_row_and_platform_column(data):
    rows = [dict(r) for r in pf.SHOPIFY_ORDERS]
    rows[1]["Lineitem price"] = "15,00 €"
    rows[3]["Created at"] = "yesterday"
    pf.shopify_orders_csv(_landing(data, "shopify") / "orders_export.csv", 79, rows)
    _run(data)
    _balanced(data)
    got = _query(data, "SELECT source, source_file, source_row, column_name, reason_code, message, record "
                       "FROM raw._quarantine ORDER BY source, source_row")
    by_source = {g[0]: g for g in got}
    item = by_source["order_items"]
    assert item[1:5] == ("shopify/orders_export.csv", 2, "Lineitem price", "invalid_type")
    assert item[5].startswith("Lineitem price: '15,00 €' is not a decimal number")
    assert json.loads(item[6])["Lineitem price"] == "15,00 €"
    order = by_source["orders"]
    assert order[2:5] == (4, "Created at", "invalid_timestamp")


def test_non_shopify_csv_is_rejected_and_the_others_load(data):
    folder = _landing(data, "shopify")
    pf.shopify_orders_csv(folder / "orders_export.csv", 79)
    (folder / "products_export.csv").write_text("Handle,Title,Variant SKU\nmug,Mug,MUG-1\n")
    results = _run(data)
    rejected = [r for r in results if r.status == "rejected"]
    assert len(rejected) == 1 and rejected[0].source == "shopify"
    assert rejected[0].reason_code == "not_a_platform_export"
    assert "Lineitem quantity" in rejected[0].message and "Created at" in rejected[0].message
    assert "found columns: Handle, Title, Variant SKU" in rejected[0].message
    assert {r.source for r in results if r.status == "loaded"} == {"orders", "order_items", "customers", "returns"}
    assert _query(data, "SELECT reason_code FROM raw._rejected_files") == [("not_a_platform_export",)]
    # unchanged: not rejected again
    assert [r.status for r in _run(data)] == ["unchanged"] * 5


def test_second_ingest_loads_nothing_new(data):
    folder = _landing(data, "shopify")
    pf.shopify_orders_csv(folder / "orders_export.csv", 79)
    pf.shopify_orders_json(folder / "orders.json")
    first = _run(data)
    assert sum(r.status == "loaded" for r in first) == 8
    loads = _query(data, "SELECT count(*) FROM raw._loads")[0][0]
    second = _run(data)
    assert {r.status for r in second} == {"unchanged"}
    assert _query(data, "SELECT count(*) FROM raw._loads")[0][0] == loads
    # a changed file loads again (a new version), in every target
    os.utime(folder / "orders_export.csv", (1, 1))
    assert {r.status for r in _run(data)} == {"unchanged"}  # same content: nothing recorded


def test_shopify_customers_export_new_and_old_headers(data):
    folder = _landing(data, "shopify")
    pf.shopify_customers_csv(folder / "customers_new.csv")
    pf.shopify_customers_csv(folder / "customers_old.csv", old=True)
    _run(data)
    rows = _query(data, "SELECT customer_id, email_marketing_consent, sms_marketing_consent, country, _source_file, "
                        "_extra->>'platform_customer_id' FROM raw.customers ORDER BY _source_file, _source_row")
    ana = rows[0][0]
    assert ana.startswith("em_")  # keyed by the email; the Shopify id (without its ') kept beside it
    assert rows[0][1:] == ("subscribed", "never_subscribed", "US", "shopify/customers_new.csv", "7000000001")
    assert rows[1][1:3] == ("never_subscribed", "subscribed") and rows[1][5] == "7000000002"
    # the old export (no id, `Accepts Marketing`): the same key for the same (differently cased) email
    assert rows[2][0] == ana and rows[2][1] == "subscribed" and rows[2][5] is None


@pytest.mark.parametrize("lines", [False, True])
def test_shopify_orders_json_page_and_lines(data, lines):
    pf.shopify_orders_json(_landing(data, "shopify") / ("orders.jsonl" if lines else "orders.json"), lines=lines)
    results = {r.source: r.rows_loaded for r in _run(data)}
    assert results == {"orders": 2, "order_items": 4, "customers": 1, "returns": 1}  # one buyer, two orders
    orders = _query(data, "SELECT order_id, customer_id, ordered_at FROM raw.orders ORDER BY 1")
    assert orders[0][0::2] == ("4400000001", datetime(2024, 3, 10, 2, 0))  # -05:00, before DST began
    assert orders[0][1] == orders[1][1] and orders[1][1].startswith("em_")  # same email, with or without customer
    assert _query(data, "SELECT DISTINCT _extra->>'platform_customer_id' FROM raw.customers") == [("7000000001",)]
    assert _query(data, "SELECT return_id, refund_amount, refunded_at FROM raw.returns") == [
        ("801", Decimal("10.00"), datetime(2024, 3, 12, 14, 5))]
    assert _query(data, "SELECT count(*) FROM raw.order_items WHERE product_id = '9001'") == [(2,)]


def test_woocommerce_guest_order_and_refund(data):
    pf.woocommerce_orders_json(_landing(data, "woocommerce") / "orders.json")
    _run(data)
    _balanced(data)
    orders = dict(_query(data, "SELECT order_id, customer_id FROM raw.orders"))
    assert orders["101"].startswith("em_")
    assert _query(data, "SELECT _extra->>'platform_customer_id' FROM raw.customers WHERE customer_id = ?",
                  [orders["101"]]) == [("wc_17",)]
    guest = _query(data, "SELECT customer_id, email FROM raw.customers WHERE customer_id = ?", [orders["102"]])
    assert orders["102"].startswith("em_") and guest[0][1] == "Guest@Example.com"  # keyed by billing email
    assert _query(data, "SELECT ordered_at, status FROM raw.orders WHERE order_id = '102'") == [
        (datetime(2024, 6, 1, 10, 0), "returned")]  # date_created_gmt, not the site-local date
    assert _query(data, "SELECT order_id, refund_amount FROM raw.returns") == [("102", Decimal("10.00"))]


def test_airbyte_envelope_loads_by_stream_with_a_broken_line(data):
    folder = _landing(data, "woocommerce")
    pf.airbyte_envelope(folder / "airbyte_orders.jsonl", "orders", [pf.woocommerce_order(201, 5, "x@example.com")],
                        extra_lines=['{"stream": "coupons", "data": {"id": 1}, "emitted_at": 1}', "{broken"])
    results = {r.source: r for r in _run(data)}
    _balanced(data)
    assert results["orders"].rows_loaded == 1 and results["orders"].rows_quarantined == 1
    assert "coupons (1 records)" in results["orders"].message
    assert _query(data, "SELECT source_row, reason_code FROM raw._quarantine") == [(3, "malformed_json")]
    assert _query(data, "SELECT order_id, _source_row FROM raw.orders") == [("201", 1)]


def test_identity_is_stable_and_does_not_depend_on_load_order(tmp_path, monkeypatch):
    for var in list(os.environ):
        if var.startswith("RETAIN_"):
            monkeypatch.delenv(var, raising=False)

    def build(name: str, order: list[str]) -> list[tuple]:
        data = tmp_path / name
        (data / "landing" / "shopify").mkdir(parents=True)
        files = {"orders": lambda p: pf.shopify_orders_csv(p / "orders_export.csv", 79),
                 "customers": lambda p: pf.shopify_customers_csv(p / "customers_export.csv")}
        for step in order:
            files[step](data / "landing" / "shopify")
            _run(data)
        _run(data)
        return _query(data, "SELECT customer_key, platform, platform_customer_id, customer_id, is_shop_customer "
                            "FROM raw._customer_identity ORDER BY 1")

    a = build("a", ["orders", "customers"])
    b = build("b", ["customers", "orders"])
    assert a == b
    by_id = {row[2]: row for row in a}
    assert by_id["7000000001"][0].startswith("em_")  # Ana: one key from both exports, her Shopify id beside it
    assert sum(row[0] == by_id["7000000001"][0] for row in a) == 1
    assert all(row[4] for row in a)  # every customer here is the shop's


def test_match_rates_are_stored_and_printed(data):
    pf.shopify_orders_csv(_landing(data, "shopify") / "orders_export.csv", 79)
    from typer.testing import CliRunner

    from pipelines.cli import app

    out = CliRunner().invoke(app, ["ingest"], env={"RETAIN_DATA_DIR": str(data), "COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "Customers matched across platforms" in out.output
    assert _query(data, "SELECT source, platform, rows, matched, unmatched FROM raw._identity_match") == [
        ("orders", "shopify", 3, 3, 0)]


def test_mapping_file_for_a_made_up_tool(data):
    folder = _landing(data, "acme_reviews")
    (folder / "_mapping.yaml").write_text("""
kind: reviews
title: ACME reviews export
format: csv
detect:
  columns: [Review ID, Stars, Written, Customer email]
timezone: Europe/Berlin
targets:
  reviews:
    columns:
      review_id: {from: Review ID}
      customer_id:
        customer: {email: "{Customer email}"}
      product_id: {from: [SKU, Product]}
      rating:
        from: Stars
        values: {"*": 1, "**": 2, "***": 3, "****": 4, "*****": 5}
      body: {from: Text}
      created_at: {from: Written, format: "%d.%m.%Y %H:%M"}
""")
    pf.write_csv(folder / "export.csv", ["Review ID", "Stars", "Written", "Customer email", "Product", "Text"], [
        {"Review ID": "R1", "Stars": "****", "Written": "01.07.2024 12:00", "Customer email": "a@example.com",
         "Product": "Mug", "Text": "Nice"},
        {"Review ID": "R2", "Stars": "lots", "Written": "02.07.2024 09:30", "Customer email": "b@example.com",
         "Product": "Tea"},
    ])
    results = _run(data)
    assert [(r.source, r.rows_loaded, r.rows_quarantined) for r in results] == [("reviews", 1, 1)]
    assert _query(data, "SELECT review_id, rating, created_at, _source_file FROM raw.reviews") == [
        ("R1", 4, datetime(2024, 7, 1, 10, 0), "acme_reviews/export.csv")]
    assert _query(data, "SELECT source_row, column_name, reason_code FROM raw._quarantine") == [
        (2, "Stars", "invalid_type")]


def test_invalid_mapping_file_is_reported(data):
    folder = _landing(data, "acme")
    (folder / "_mapping.yaml").write_text("format: csv\ndetect: {columns: [A]}\ntargets: {orders: {columns: "
                                          "{order_id: {from: A}}}}\n")
    with pytest.raises(MappingError, match="required contract columns not mapped: customer_id, ordered_at, total"):
        mappings_for(folder)
    (folder / "x.csv").write_text("A\n1\n")
    (result,) = _run(data)
    assert result.status == "rejected" and result.reason_code == "invalid_mapping"


def test_preview_shows_mapping_and_quarantine_without_a_warehouse(data, tmp_path):
    rows = [dict(r) for r in pf.SHOPIFY_ORDERS]
    rows[1]["Lineitem quantity"] = "0"
    path = pf.shopify_orders_csv(tmp_path / "elsewhere" / "export.csv", 79, rows)
    result = preview(path, platform="shopify", rows=2)
    assert result.kinds == ["shopify/orders_csv"]
    items = {t.source: t for t in result.targets}["order_items"]
    assert (items.rows, items.quarantined) == (4, 1)
    assert items.problems[0][:3] == (2, "Lineitem quantity", "out_of_range")
    assert len(items.sample) == 2 and items.sample[0]["unit_price"] == Decimal("15.00")
    assert not (data / "warehouse.duckdb").exists()
    from pipelines.cli import app

    out = CliRunner().invoke(app, ["import", "preview", str(path), "--platform", "shopify"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "order_items: 4 rows, 1 would be quarantined" in out.output
    bad = CliRunner().invoke(app, ["import", "preview", str(path)])
    assert bad.exit_code != 0 and "--platform" in bad.output


def test_landing_sensor_sees_platform_files(data):
    from pipelines.defs.ingest.sensor import scan_landing

    pf.shopify_orders_csv(_landing(data, "shopify") / "orders_export.csv", 79)
    (_landing(data, "shopify") / "_notes.md").write_text("not data")
    changed, cursor, _ = scan_landing({}, settle=0, now=4e9)
    assert list(changed) == ["shopify/orders_export.csv"]
    assert scan_landing(cursor, settle=0, now=4e9)[0] == {}


def test_airbyte_file_with_two_streams_loads_each_through_its_mapping(data):
    folder = _landing(data, "helpdesk_tool")
    (folder / "_mapping_tickets.yaml").write_text("""
kind: tickets
format: json
detect: {streams: [tickets]}
timezone: utc
lookups:  # the requester's user record, from the users stream of the same file
  requester: {stream: users, key: id, match: requester_id}
targets:
  support_tickets:
    columns:
      ticket_id: {sql: "regexp_replace({id}, '[.]0$', '')"}  # ids may arrive as floats (1.0)
      customer_id: {customer: {email: "{requester.email}", id: "{requester_id}", id_prefix: "helpdesk:"}}
      ticket_type: {sql: "'question'"}
      category: {sql: "'other'"}
      created_at: {from: created_at, format: epoch}
""")
    (folder / "_mapping_users.yaml").write_text("""
kind: users
format: json
detect: {streams: [users]}
targets:
  customers:
    columns:
      customer_id: {customer: {email: "{email}", id: "{id}", id_prefix: "helpdesk:"}}
      email: {from: email}
""")
    path = folder / "export.jsonl"
    pf.airbyte_envelope(path, "tickets", [{"id": 1.0, "requester_id": 7.0, "created_at": 1717236000},
                                          {"id": 2.0, "requester_id": 8.0, "created_at": 1717236000}])
    with open(path, "a") as fh:
        fh.write('{"stream": "users", "data": {"id": 7, "email": "Ana.Lopez@example.com"}, "emitted_at": 1}\n')
        fh.write("not json\n")
    results = {r.source: r for r in _run(data)}
    assert {s: (r.rows_loaded, r.rows_quarantined) for s, r in results.items()} == {
        "customers": (1, 0), "support_tickets": (2, 1)}  # the broken line: once, in the first kind's target
    key = _query(data, "SELECT customer_id FROM raw.customers")[0][0]
    assert key.startswith("em_")
    # float ids and unix seconds; the requester's email from the users stream gives the same key
    assert _query(data, "SELECT ticket_id, customer_id, created_at FROM raw.support_tickets ORDER BY 1") == [
        ("1", key, datetime(2024, 6, 1, 10, 0)), ("2", "helpdesk:8", datetime(2024, 6, 1, 10, 0))]
    # the platform id is a key too, resolving to the email's (rows naming the person by id alone)
    identity = _query(data, "SELECT customer_key, platform_customer_id, customer_id FROM raw._customer_identity "
                            "ORDER BY 1")
    assert identity == sorted([(key, "helpdesk:7", key), ("helpdesk:7", "helpdesk:7", key)])


def test_unparsable_csv_line_is_quarantined_once_and_rows_keep_their_numbers(data):
    path = pf.shopify_orders_csv(_landing(data, "shopify") / "orders_export.csv", 79)
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(2, '"#2001",a,b\n')  # between the two lines of #2001: fewer fields than the header
    path.write_text("".join(lines))
    results = {r.source: r for r in _run(data)}
    _balanced(data)
    assert (results["order_items"].rows_loaded, results["order_items"].rows_quarantined) == (4, 1)
    assert all(r.rows_quarantined == 0 for s, r in results.items() if s != "order_items")
    assert _query(data, "SELECT source, source_row, reason_code FROM raw._quarantine") == [
        ("order_items", 2, "malformed_row")]
    assert _query(data, "SELECT _source_row, line_number FROM raw.order_items ORDER BY 1") == [
        (1, 1), (3, 3), (4, 1), (5, 1)]  # positions count the file's rows, the broken one too


def test_one_source_at_a_time_then_the_rest(data):
    """As the Dagster assets load (one source each), or a run that died between two targets."""
    pf.shopify_orders_csv(_landing(data, "shopify") / "orders_export.csv", 79)
    first = _run(data, sources=["orders"])
    assert [(r.source, r.status) for r in first] == [("orders", "loaded")]
    rest = {r.source: r.status for r in _run(data)}
    assert rest == {"orders": "unchanged", "order_items": "loaded", "customers": "loaded", "returns": "loaded"}
    assert {r.status for r in _run(data)} == {"unchanged"}
    again = _run(data, reload=True)  # reload: every target again, as a new version
    assert {r.status for r in again} == {"loaded"} and len(again) == 4
    assert _query(data, "SELECT count(DISTINCT _load_id) FROM raw.orders") == [(2,)]


def test_identity_resolves_a_bare_platform_id_and_a_phone(data):
    folder = _landing(data, "shopify")
    pf.shopify_customers_csv(folder / "customers_export.csv")  # Ana: email, id 7000000001, phone +12125550101
    order = pf.shopify_api_order(4400000009)
    order.update(email=None, phone=None)
    order["customer"].update(email=None)  # the API order names Ana by her id only
    (folder / "orders.json").write_text(json.dumps({"orders": [order]}))
    pf.write_csv(folder / "orders_phone.csv", pf.SHOPIFY_ORDERS_79, [dict(pf.SHOPIFY_ORDERS[2], **{
        "Email": "", "Phone": "+1 212-555-0101", "Cancelled at": "", "Financial Status": "paid"})])
    _run(data)
    ana = _query(data, "SELECT customer_id FROM raw.customers WHERE _source_file = 'shopify/customers_export.csv' "
                       "AND _source_row = 1")[0][0]
    identity = dict(_query(data, "SELECT customer_key, customer_id FROM raw._customer_identity"))
    assert identity["7000000001"] == ana  # the bare id: the key that carries it
    phone_key = _query(data, "SELECT customer_id FROM raw.orders WHERE _source_file = 'shopify/orders_phone.csv'")[0][0]
    assert phone_key.startswith("ph_") and identity[phone_key] == ana  # same E.164 phone


def test_identity_keeps_contract_ids_and_groups_keys_without_email_by_phone(data):
    from pipelines.importers import resolve
    from pipelines.ingest.schema import ensure_schema

    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        ensure_schema(con)
        rows = [  # customer_id, email, phone, file
            ("C1", "Ana@Example.com", None, "customers/a.csv"),  # a contract customer
            ("em_" + hashlib.md5(b"ana@example.com").hexdigest()[:20], "ana@example.com", None,
             "klaviyo/profiles_export.csv"),  # the same person from a platform file
            ("7000000002", None, "+49 151 1234567", "shopify/customers_export.csv"),  # no email
            ("klaviyo:02", None, "+49 151 1234567", "klaviyo/profiles_export.csv"),  # the same phone
        ]
        for i, (cid, email, phone, file) in enumerate(rows):
            con.execute("INSERT INTO raw.customers (customer_id, email, phone, _load_id, _loaded_at, _source_file, "
                        "_source_row) VALUES (?, ?, ?, 1, now(), ?, ?)", [cid, email, phone, file, i + 1])
        resolve(con)
        identity = dict(con.execute("SELECT customer_key, customer_id FROM raw._customer_identity").fetchall())
    assert identity[rows[0][0]] == identity[rows[1][0]] == "C1"  # the contract's id wins its group
    ph = "ph_" + hashlib.md5(b"+491511234567").hexdigest()[:20]
    assert identity["7000000002"] == identity["klaviyo:02"] == ph  # no email: one customer per phone


def test_rekeyed_tables_name_the_models_holding_a_relinked_key():
    from pipelines.importers.identity import rekeyed_tables
    from pipelines.ingest.schema import IDENTITY_DDL

    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    for ddl in IDENTITY_DDL:
        con.execute(ddl)
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.stg_shop__orders AS SELECT 'zendesk:1' AS customer_id")
    con.execute("CREATE TABLE staging.stg_messaging__messages AS SELECT 'em_x' AS customer_id")
    models = [("staging", "stg_shop__orders"), ("staging", "stg_messaging__messages"), ("marts", "fct_orders")]
    assert rekeyed_tables(con, models) == []  # nothing re-linked yet
    con.execute("INSERT INTO raw._customer_identity VALUES ('zendesk:1', 'zendesk', 'zendesk:1', 'x@example.com', "
                "NULL, 'em_x', FALSE, now()), ('em_x', 'zendesk', NULL, 'x@example.com', NULL, 'em_x', FALSE, now())")
    # a later file gave zendesk:1 its email: the orders kept under the old key must be rebuilt
    assert rekeyed_tables(con, models) == ["staging.stg_shop__orders"]


def test_alternative_columns_skip_empty_values(data):
    order = pf.shopify_api_order(4400000007)
    order["email"] = ""  # the API sends "" for an order without its own email
    (_landing(data, "shopify") / "orders.json").write_text(json.dumps({"orders": [order]}))
    _run(data)
    (key,) = _query(data, "SELECT customer_id FROM raw.orders")[0]
    assert key.startswith("em_")  # from customer.email, the next alternative
    assert _query(data, "SELECT email FROM raw.customers") == [("ana.lopez@example.com",)]


def test_an_empty_api_page_loads_nothing_without_an_error(data):
    (_landing(data, "shopify") / "orders_page_9.json").write_text('{"orders": []}')
    results = _run(data)
    assert {(r.status, r.rows_read) for r in results} == {("loaded", 0)} and len(results) == 4


def test_a_python_hook_prepares_what_sql_cannot(data):
    folder = _landing(data, "stars_tool")
    (folder / "_mapping.yaml").write_text("""
kind: reviews
format: csv
hook: stars.py
detect: {columns: [Id, Stars, Email, Date]}  # the hook reads Stars: listed here, it is staged
targets:
  reviews:
    columns:
      review_id: {from: Id}
      customer_id: {customer: {email: "{Email}"}}
      product_id: {sql: "'shop'"}
      rating: {sql: "stars", label: Stars}  # the column the hook added
      created_at: {from: Date}
""")
    (folder / "stars.py").write_text('''
def prepare(con, table, path, columns):
    """Stars like '★★★☆☆' become a number (the hook adds a column the mapping reads)."""
    con.execute(f"ALTER TABLE {table} ADD COLUMN stars VARCHAR")
    con.execute(f"UPDATE {table} SET stars = length(replace({columns['Stars']}, '☆', ''))::VARCHAR")
''')
    pf.write_csv(folder / "reviews.csv", ["Id", "Stars", "Email", "Date"], [
        {"Id": "1", "Stars": "★★★★☆", "Email": "a@example.com", "Date": "2024-05-01"}])
    (result,) = _run(data)
    assert result.status == "loaded", result.message
    assert _query(data, "SELECT review_id, rating FROM raw.reviews") == [("1", 4)]
    # the hook ran without leaving Python's bytecode cache in the landing folder
    assert not (folder / "__pycache__").exists()
    (folder / "stars.py").write_text("def prepare(con, table, path, columns):\n    raise ValueError('no stars')\n")
    (folder / "more.csv").write_text((folder / "reviews.csv").read_text().replace("\\n1,", "\\n2,"))
    # a cache the user's own test of the hook left is not a data file
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "stars.cpython-311.pyc").write_bytes(b"\x00" * 16)
    results = _run(data)
    assert not [r for r in results if "__pycache__" in r.file], results
    rejected = [r for r in results if r.status == "rejected"]
    assert rejected and rejected[0].reason_code == "hook_failed" and "ValueError: no stars" in rejected[0].message


ZENDESK_SAMPLE = SAMPLES / "zendesk" / "airbyte__source-zendesk-support__expected_records.jsonl"


@pytest.mark.skipif(not ZENDESK_SAMPLE.exists(), reason=f"{SAMPLES} is absent (real platform samples)")
def test_preview_of_the_real_zendesk_airbyte_file_with_a_mapping_file(tmp_path):
    mapping = tmp_path / "tickets.yaml"
    mapping.write_text("""
platform: zendesk
kind: tickets
format: json
detect: {streams: [tickets]}
timezone: utc
targets:
  support_tickets:
    columns:
      ticket_id: {sql: "regexp_replace({id}, '[.]0$', '')"}
      customer_id: {customer: {id: "{requester_id}", id_prefix: "zendesk:"}}
      ticket_type: {sql: "'question'"}
      category: {sql: "'other'"}
      created_at: {from: created_at}
""")
    result = preview(ZENDESK_SAMPLE, mapping=mapping, rows=10)
    (tickets,) = result.targets
    assert "users" in result.ignored and "satisfaction_ratings" in result.ignored
    assert tickets.rows == 4 and tickets.quarantined == 1  # 3 tickets and the broken line 35
    assert tickets.problems[0][:3] == (35, None, "malformed_json")
    assert {r["ticket_id"] for r in tickets.sample if r["ticket_id"]} == {"1", "145", "146"}
