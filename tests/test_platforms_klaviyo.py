"""Klaviyo importer: API events (JSON:API pages with included profiles and metrics) and the profiles export."""

from __future__ import annotations

import json
from datetime import datetime as dt

from tests import platform_imports
from tests.platform_imports import (
    FIXTURES,
    balanced,
    counts,
    customer_key,
    idempotent,
    land,
    quarantined,
    query,
    run,
    sample,
)

data = platform_imports.data  # the pytest fixture: an empty data folder

#: the latest version of each message (what staging keeps: latest load, then last row)
LATEST = """SELECT message_id, customer_id, channel, message_type, campaign, sent_at, delivered_at, opened_at,
                   clicked_at, unsubscribed_at
            FROM raw.messages QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY _load_id DESC) = 1
            ORDER BY message_id"""

# profiles by the key rule: Anna's and Ben's emails; the third profile's `not-an-email` is no
# email, so its Klaviyo id
A, B, C = (customer_key(email, "klaviyo:01JQ000000000000000000000" + n)
           for email, n in [("anna.muller@example.com", "1"), ("Ben.Okafor@Example.COM", "2"), ("not-an-email", "3")])
EXPECTED = [
    ("klaviyo:Nl03aa:01JQ0000000000000000000002", B, "email", "newsletter", "March Newsletter",
     dt(2025, 3, 6, 9, 0, 3), dt(2025, 3, 6, 9, 0, 3), dt(2025, 3, 6, 18, 2), None, dt(2025, 3, 6, 18, 3, 10)),
    # a bounce: sent, never delivered
    ("klaviyo:Nl03aa:01JQ0000000000000000000003", C, "email", "newsletter", "March Newsletter",
     dt(2025, 3, 6, 9, 0, 5), None, None, None, None),
    ("klaviyo:Ps08dd:01JQ0000000000000000000003", C, "push", "shipping_update", "Shipping Update",
     dt(2025, 3, 8, 8), dt(2025, 3, 8, 8), dt(2025, 3, 8, 8, 5, 30), None, None),
    ("klaviyo:Rv09ee:01JQ0000000000000000000002", B, "email", "review_request", "Review Request",
     dt(2025, 3, 9, 7), dt(2025, 3, 9, 7), None, None, None),
    ("klaviyo:Sm07bb:01JQ0000000000000000000001", A, "sms", "promotion", "Spring Sale SMS",
     dt(2025, 3, 7, 10), dt(2025, 3, 7, 10), None, dt(2025, 3, 7, 10, 14, 22), dt(2025, 3, 9, 6, 59, 59)),
    # marked as spam: an unsubscribe
    ("klaviyo:Sp07cc:01JQ0000000000000000000001", A, "email", "promotion", "Spring Sale",
     dt(2025, 3, 7, 10, 0, 2), dt(2025, 3, 7, 10, 0, 2), None, None, dt(2025, 3, 7, 12, 40)),
    ("klaviyo:WbXq1a:01JQ0000000000000000000001", A, "email", "order_confirmation", "Order Confirmation",
     dt(2025, 3, 5, 9, 0, 12), dt(2025, 3, 5, 9, 0, 12), dt(2025, 3, 5, 11, 31, 40), dt(2025, 3, 5, 11, 32, 5), None),
]


def test_pages_one_per_line_give_one_row_per_message_and_profile(data):
    land(data, "klaviyo", "events.pages.jsonl")
    assert counts(run(data)) == {("messages", "events.pages.jsonl"): ("loaded", 7, 7, 0),
                                 ("customers", "events.pages.jsonl"): ("loaded", 3, 3, 0)}
    assert query(data, LATEST) == EXPECTED
    # the profile's email comes from `included`: the identity table can tie the key to the shop
    assert query(data, "SELECT customer_id, email, phone FROM raw.customers ORDER BY 1") == sorted([
        (A, "anna.muller@example.com", "+4915112345678"), (B, "Ben.Okafor@Example.COM", None),
        (C, None, "+33612345678")])  # `not-an-email` is dropped with a warning
    balanced(data)
    idempotent(data)


def test_events_of_a_message_in_two_files_merge_in_either_order(data):
    land(data, "klaviyo", "events_page_2.json")
    run(data)
    land(data, "klaviyo", "events_page_1.json")
    run(data)
    assert query(data, LATEST) == EXPECTED
    balanced(data)
    idempotent(data)


def test_profiles_export_consent(data):
    land(data, "klaviyo", "profiles_export.csv", "not_a_klaviyo_export.csv", "not_a_klaviyo_export.json")
    res = run(data)
    assert counts(res)[("customers", "profiles_export.csv")] == ("loaded", 4, 4, 0)
    assert query(data, "SELECT customer_id, email_marketing_consent, sms_marketing_consent, updated_at "
                       "FROM raw.customers ORDER BY 1") == sorted([
        (A, "subscribed", "unsubscribed", dt(2025, 3, 9, 6, 59, 59)),
        (B, "unsubscribed", "never_subscribed", dt(2025, 3, 6, 18, 3, 10)),
        (C, "never_subscribed", "subscribed", dt(2025, 2, 20, 19, 12)),
        ("klaviyo:01JQ0000000000000000000004", "never_subscribed", "subscribed", dt(2025, 3, 1, 12))])
    csv_bad, json_bad = res[("klaviyo", "not_a_klaviyo_export.csv")], res[("klaviyo", "not_a_klaviyo_export.json")]
    assert csv_bad.reason_code == json_bad.reason_code == "not_a_platform_export"
    assert "needs columns Email, Phone Number, External ID" in csv_bad.message
    assert "needs keys attributes.datetime, relationships.metric, relationships.profile" in json_bad.message
    idempotent(data)


def test_real_sample_placeholder_metric_is_quarantined_naming_it(data):
    land(data, "klaviyo", sample("klaviyo/airbyte__source-klaviyo__unit_tests__get_events.json"))
    name = "airbyte__source-klaviyo__unit_tests__get_events.json"
    assert counts(run(data)) == {("messages", name): ("loaded", 1, 0, 1), ("customers", name): ("loaded", 0, 0, 0)}
    assert quarantined(data, name) == [
        ("messages", 1, "metric.name", "not_a_message_event",
         "Klaviyo metric 'string' is not a message event (retain reads sends, bounces, opens, clicks, unsubscribes "
         "and spam complaints of email, SMS and push)")]
    idempotent(data)


def test_pages_longer_than_the_detection_read_are_lines(data):
    # a page per line with a first line over 64 KiB, as a real dump has (100 events and their profiles)
    folder = land(data, "klaviyo")
    pages = [json.loads((FIXTURES / "klaviyo" / f"events_page_{n}.json").read_text()) for n in (1, 2)]
    pages[0]["meta"] = {"padding": "x" * 70_000}
    (folder / "events.pages.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pages))
    assert counts(run(data))[("messages", "events.pages.jsonl")] == ("loaded", 7, 7, 0)
    assert query(data, LATEST) == EXPECTED
