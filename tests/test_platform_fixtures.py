"""The platform export fixtures (tests/fixtures/platforms/) are well-formed.

Light checks only: every file parses, has the headers or keys its README promises, and every
platform folder has a README and a file that is not its export. The importers' tests check
what the rows mean.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parent / "fixtures" / "platforms"
PLATFORMS = ("shopify", "woocommerce", "klaviyo", "zendesk", "gorgias", "judgeme", "yotpo", "trustpilot",
             "okendo", "delighted")

# file -> headers that must be present (map-by-name: order and extra columns are free)
CSV_HEADERS = {
    "shopify/orders_export_79.csv": ["Name", "Email", "Financial Status", "Created at", "Lineitem quantity",
                                     "Lineitem name", "Lineitem price", "Total", "Refunded Amount", "Cancelled at",
                                     "Id", "Payment References"],
    "shopify/orders_export_78.csv": ["Name", "Email", "Created at", "Total", "Payment ID"],
    "shopify/orders_export_73.csv": ["Name", "Email", "Created at", "Total", "Payment Terms Name"],
    "shopify/customers_export.csv": ["Customer ID", "Email", "Accepts Email Marketing", "Accepts SMS Marketing",
                                     "Tags"],
    "shopify/customers_export_legacy.csv": ["Email", "Accepts Marketing", "Total Orders"],
    "klaviyo/profiles_export.csv": ["Email", "External ID", "Email Marketing Consent", "SMS Marketing Consent"],
    "judgeme/reviews_export.csv": ["title", "body", "rating", "review_date", "source", "reviewer_name",
                                   "reviewer_email", "product_id", "product_handle"],
    "yotpo/reviews_export.csv": ["Review ID", "Date", "Review Score", "Product ID", "Email"],
    "trustpilot/service_reviews_export.csv": ["Review ID", "Review Created (UTC)", "Review Stars", "Review Title",
                                              "Review Content"],
    "okendo/reviews_export.csv": ["Review ID", "Product ID", "Rating", "Reviewer Email", "Date Created"],
    "delighted/responses_export.csv": ["Response ID", "Score", "Comment", "Email"],
}

# JSON file -> (top-level list key or None for a bare list, keys every record has)
JSON_RECORDS = {
    "shopify/orders_api.json": ("orders", ["id", "name", "email", "created_at", "total_price", "line_items",
                                           "refunds", "customer"]),
    "woocommerce/orders.json": (None, ["id", "status", "date_created", "date_created_gmt", "customer_id", "billing",
                                       "line_items", "refunds", "total"]),
    "klaviyo/events_page_1.json": ("data", ["type", "id", "attributes", "relationships"]),
    "klaviyo/events_page_2.json": ("data", ["type", "id", "attributes", "relationships"]),
    "zendesk/tickets_page.json": ("tickets", ["id", "requester_id", "created_at", "status", "via", "tags"]),
    "zendesk/users_page.json": ("users", ["id", "email", "external_id", "role"]),
    "zendesk/ticket_metrics_page.json": ("ticket_metrics", ["ticket_id", "reply_time_in_minutes", "solved_at",
                                                            "replies", "reopens"]),
    "zendesk/satisfaction_ratings_page.json": ("satisfaction_ratings", ["ticket_id", "score", "created_at"]),
    "gorgias/tickets.json": ("data", ["id", "channel", "status", "customer", "created_datetime"]),
    "yotpo/reviews_api.json": ("reviews", ["id", "score", "created_at", "sku", "email"]),
    "delighted/survey_responses.json": (None, ["id", "person", "survey_type", "score", "comment", "created_at"]),
    "delighted/people.json": (None, ["id", "email", "created_at"]),
}


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_has_a_readme_and_a_file_to_reject(platform):
    folder = ROOT / platform
    assert (folder / "README.md").is_file()
    assert list(folder.glob(f"not_a_{platform}*")), f"{platform} has no not_a_{platform}_* file"


def test_every_data_file_is_checked_here():
    checked = set(CSV_HEADERS) | set(JSON_RECORDS) | {
        "klaviyo/events.pages.jsonl", "zendesk/tickets.pages.jsonl", "zendesk/airbyte_records.jsonl"}
    files = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
             if p.is_file() and p.suffix != ".md" and not p.name.startswith("not_a_")}
    assert files == checked


@pytest.mark.parametrize("name", sorted(CSV_HEADERS))
def test_csv_parses_with_headers(name):
    rows = read_csv(ROOT / name)
    header, body = rows[0], rows[1:]
    assert not set(CSV_HEADERS[name]) - set(header)
    assert len(set(header)) == len(header), "duplicate column names"
    assert 3 <= len(body) <= 20
    assert all(len(r) == len(header) for r in body)


@pytest.mark.parametrize("name", sorted(JSON_RECORDS))
def test_json_parses_with_record_keys(name):
    doc = json.loads((ROOT / name).read_text(encoding="utf-8"))
    key, fields = JSON_RECORDS[name]
    records = doc if key is None else doc[key]
    assert isinstance(records, list) and records
    for rec in records:
        assert not set(fields) - set(rec), f"{name}: record {rec.get('id')} lacks {set(fields) - set(rec)}"


@pytest.mark.parametrize("columns", [79, 78, 73])
def test_shopify_orders_export_versions(columns):
    rows = read_csv(ROOT / "shopify" / f"orders_export_{columns}.csv")
    header = rows[0]
    assert len(header) == columns
    recs = [dict(zip(header, r, strict=True)) for r in rows[1:]]
    first_of = {}
    for rec in recs:
        assert rec["Name"] and rec["Created at"] and rec["Lineitem name"]
        if rec["Name"] in first_of:  # order-level columns only on an order's first row
            assert rec["Total"] == rec["Financial Status"] == rec["Id"] == ""
            assert rec["Email"] == first_of[rec["Name"]]["Email"]
        else:
            first_of[rec["Name"]] = rec
            assert rec["Total"] and rec["Financial Status"] and rec["Id"]
    assert len(first_of) == 7 and len(recs) == 11
    offsets = {rec["Created at"][-5:] for rec in recs}
    assert offsets == {"-0500", "-0400"}  # the DST change is inside the file


def test_the_three_shopify_versions_hold_the_same_rows():
    by_version = []
    for columns in (79, 78, 73):
        rows = read_csv(ROOT / "shopify" / f"orders_export_{columns}.csv")
        common = ["Name", "Email", "Created at", "Lineitem name", "Lineitem price", "Total", "Refunded Amount"]
        idx = [rows[0].index(c) for c in common]
        by_version.append([[r[i] for i in idx] for r in rows[1:]])
    assert by_version[0] == by_version[1] == by_version[2]


def test_klaviyo_pages_link_events_to_included_profiles_and_metrics():
    lines = (ROOT / "klaviyo" / "events.pages.jsonl").read_text(encoding="utf-8").splitlines()
    pages = [json.loads(line) for line in lines]
    for n, page in enumerate(pages, start=1):
        assert page == json.loads((ROOT / "klaviyo" / f"events_page_{n}.json").read_text(encoding="utf-8"))
        included = {(x["type"], x["id"]) for x in page["included"]}
        for event in page["data"]:
            assert isinstance(event["attributes"]["timestamp"], int)
            assert event["attributes"]["datetime"].endswith("+00:00")
            for rel in ("profile", "metric"):
                ref = event["relationships"][rel]["data"]
                assert (ref["type"], ref["id"]) in included
    assert pages[0]["links"]["next"] and pages[-1]["links"]["next"] is None


def test_zendesk_airbyte_records_have_exactly_one_broken_line():
    bad, streams = 0, set()
    for line in (ROOT / "zendesk" / "airbyte_records.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        assert set(rec) == {"stream", "data", "emitted_at"}
        streams.add(rec["stream"])
    assert bad == 1
    assert streams == {"tickets", "users", "ticket_metrics", "satisfaction_ratings"}


def test_judgeme_export_has_crlf_records_and_a_multiline_body():
    raw = (ROOT / "judgeme" / "reviews_export.csv").read_bytes()
    assert raw.count(b"\r\n") == 7  # header + 6 records
    rows = read_csv(ROOT / "judgeme" / "reviews_export.csv")
    assert any("\n" in r[1] for r in rows[1:])
    assert {int(r[2]) for r in rows[1:]} <= {1, 2, 3, 4, 5}
