"""Zendesk importer: tickets, users, ticket metrics and satisfaction ratings (API pages and Airbyte)."""

from __future__ import annotations

import json
from datetime import datetime

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

ANNA = customer_key("anna.muller@example.com")  # requester 9100000001: keyed by the users record's email
BEN = customer_key("Ben.Okafor@Example.COM")  # 9100000002

PAGES = ["tickets_page.json", "users_page.json", "ticket_metrics_page.json", "satisfaction_ratings_page.json"]


def test_api_pages_load_with_metrics_from_the_other_file(data):
    land(data, "zendesk", *PAGES)
    assert counts(run(data)) == {
        ("support_tickets", "tickets_page.json"): ("loaded", 5, 5, 0),
        ("customers", "users_page.json"): ("loaded", 4, 3, 1),
        ("zendesk", "ticket_metrics_page.json"): ("loaded", 5, 0, 0),
        ("survey_responses", "satisfaction_ratings_page.json"): ("loaded", 3, 2, 1),
    }
    # ticket 101: created 08:00, first reply after 125 minutes, solved 12:10, rated good
    assert query(data, "SELECT customer_id, channel, ticket_type, category, status, created_at, first_response_at, "
                       "resolved_at, agent_replies, reopen_count, satisfaction_score FROM raw.support_tickets "
                       "WHERE ticket_id = 'zendesk:101'") == [
        (ANNA, "email", "question", "wismo", "closed", datetime(2025, 3, 5, 8),
         datetime(2025, 3, 5, 10, 5), datetime(2025, 3, 5, 12, 10), 1, 0, 5)]
    assert query(data, "SELECT ticket_id, reopen_count, satisfaction_score FROM raw.support_tickets "
                       "WHERE ticket_id = 'zendesk:102'") == [("zendesk:102", 1, 1)]
    # the users row has the same key, its email and the Zendesk id (for the identity table)
    assert query(data, "SELECT email, _extra->>'platform_customer_id' FROM raw.customers "
                       "WHERE customer_id = ?", [ANNA]) == [("anna.muller@example.com", "zendesk:9100000001")]
    assert query(data, "SELECT response_id, survey_type, score FROM raw.survey_responses ORDER BY 1") == [
        ("zendesk:7700000001", "csat", 5), ("zendesk:7700000002", "csat", 1)]
    assert quarantined(data, "satisfaction_ratings_page.json") == [
        ("survey_responses", 3, "score", "not_a_response",
         "satisfaction rating 'offered' is not an answer (the survey was offered, or not sent, and not rated)")]
    assert quarantined(data, "users_page.json") == [
        ("customers", 4, "role", "not_a_customer", "a Zendesk agent (staff), not a customer")]
    balanced(data)
    idempotent(data)


def test_files_that_are_not_zendesk_exports_are_rejected_and_the_others_load(data):
    land(data, "zendesk", "tickets_page.json", "not_a_zendesk_export.json", "not_a_zendesk_export.csv")
    res = run(data)
    assert res[("support_tickets", "tickets_page.json")].rows_loaded == 5
    bad = res[("zendesk", "not_a_zendesk_export.json")]
    assert bad.status == "rejected" and bad.reason_code == "not_a_platform_export"
    assert "Zendesk tickets (API tickets.json or Airbyte stream tickets) needs keys requester_id, via, status" \
        in bad.message and "found keys: organizations" in bad.message
    assert res[("zendesk", "not_a_zendesk_export.csv")].status == "rejected"
    idempotent(data)


def test_airbyte_records_a_cut_off_line_is_quarantined_and_float_ids_are_integers(data):
    land(data, "zendesk", "airbyte_records.jsonl")
    res = counts(run(data))
    assert res[("support_tickets", "airbyte_records.jsonl")] == ("loaded", 5, 5, 0)
    assert res[("survey_responses", "airbyte_records.jsonl")] == ("loaded", 3, 2, 1)
    bad = [q for q in quarantined(data, "airbyte_records.jsonl") if q[3] == "malformed_json"]
    assert len(bad) == 1 and bad[0][4].startswith("line 10 is not a JSON object")
    # requester_id 9100000002.0 is the user 9100000002; metrics come from the same file
    assert query(data, "SELECT customer_id, first_response_at FROM raw.support_tickets "
                       "WHERE ticket_id = 'zendesk:102'") == [(BEN, datetime(2025, 3, 6, 12, 9))]
    balanced(data)
    idempotent(data)


def test_pages_one_per_line(data):
    land(data, "zendesk", "tickets.pages.jsonl", "ticket_metrics_page.json")
    res = run(data)
    assert counts(res)[("support_tickets", "tickets.pages.jsonl")] == ("loaded", 5, 5, 0)
    message = res[("support_tickets", "tickets.pages.jsonl")].message
    assert "looked up ticket_metrics from ticket_metrics_page.json" in message
    assert query(data, "SELECT count(*), count(first_response_at) FROM raw.support_tickets") == [(5, 4)]


def test_real_airbyte_sample(data):
    land(data, "zendesk", sample("zendesk/airbyte__source-zendesk-support__expected_records.jsonl"))
    name = "airbyte__source-zendesk-support__expected_records.jsonl"
    res = run(data)
    assert counts(res) == {
        ("support_tickets", name): ("loaded", 3, 3, 0),
        ("customers", name): ("loaded", 3, 3, 0),
        # 3 ratings, all `offered`, and line 35 (not JSON) quarantined once
        ("survey_responses", name): ("loaded", 4, 0, 4),
    }
    assert "ticket_comments (2 records)" in res[("support_tickets", name)].message  # other streams counted
    reasons = [(row, code) for _s, row, _c, code, _m in quarantined(data, name)]
    assert reasons == [(32, "not_a_response"), (33, "not_a_response"), (34, "not_a_response"), (35, "malformed_json")]
    assert query(data, "SELECT ticket_id, customer_id, channel, status FROM raw.support_tickets "
                       "ORDER BY created_at") == [
        ("zendesk:1", "zendesk:360839922496", None, "closed"),
        ("zendesk:145", "zendesk:5527111815439", "phone", "open"),
        ("zendesk:146", "zendesk:361089721035", "web_form", "open")]
    balanced(data)
    idempotent(data)


def test_tickets_page_with_sideloaded_metric_sets(data):
    # GET /api/v2/tickets.json?include=metric_sets: the metrics travel in the page
    page = json.loads((FIXTURES / "zendesk" / "tickets_page.json").read_text())
    page["metric_sets"] = json.loads((FIXTURES / "zendesk" / "ticket_metrics_page.json").read_text())["ticket_metrics"]
    (land(data, "zendesk") / "tickets_with_metrics.json").write_text(json.dumps(page))
    res = run(data)
    assert counts(res) == {("support_tickets", "tickets_with_metrics.json"): ("loaded", 5, 5, 0)}
    assert res[("support_tickets", "tickets_with_metrics.json")].message is None  # nothing read from other files
    assert query(data, "SELECT first_response_at, resolved_at FROM raw.support_tickets "
                       "WHERE ticket_id = 'zendesk:101'") == [
        (datetime(2025, 3, 5, 10, 5), datetime(2025, 3, 5, 12, 10))]
