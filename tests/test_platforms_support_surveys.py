"""Gorgias tickets and Delighted survey responses and people."""

from __future__ import annotations

from datetime import datetime

from tests import platform_imports
from tests.platform_imports import balanced, counts, customer_key, idempotent, land, match_rates, query, run, sample

data = platform_imports.data  # the pytest fixture: an empty data folder


def test_gorgias_tickets(data):
    land(data, "gorgias", "tickets.json", "not_a_gorgias_export.json", "not_a_gorgias_export.csv")
    res = run(data)
    assert counts(res)[("support_tickets", "tickets.json")] == ("loaded", 5, 5, 0)
    assert query(data, "SELECT ticket_id, channel, ticket_type, category, priority, status, first_response_at, "
                       "resolved_at, satisfaction_score FROM raw.support_tickets ORDER BY 1") == [
        ("gorgias:4001", "email", "question", "wismo", "normal", "closed", datetime(2025, 3, 5, 8, 5),
         datetime(2025, 3, 5, 12, 10), 5),
        ("gorgias:4002", "chat", "complaint", "damaged_item", "high", "closed", datetime(2025, 3, 6, 12, 1),
         datetime(2025, 3, 10, 9), 2),
        ("gorgias:4003", "phone", "question", "other", "low", "open", None, None, None),
        ("gorgias:4004", "social", "complaint", "return_refund", "urgent", "open", datetime(2025, 3, 10, 6),
         None, None),
        ("gorgias:4005", "web_form", "question", "billing", "normal", "closed", datetime(2025, 3, 8, 9),
         datetime(2025, 3, 8, 9), None)]
    bad = res[("gorgias", "not_a_gorgias_export.json")]
    assert bad.status == "rejected" and "needs keys customer, channel, created_datetime" in bad.message
    balanced(data)
    idempotent(data)


def test_delighted_api_and_export(data):
    land(data, "delighted", "survey_responses.json", "people.json", "responses_export.csv",
         "not_a_delighted_export.json", "not_a_delighted_export.csv")
    res = run(data)
    assert counts(res)[("survey_responses", "survey_responses.json")] == ("loaded", 6, 6, 0)
    assert counts(res)[("customers", "people.json")] == ("loaded", 3, 3, 0)
    assert counts(res)[("survey_responses", "responses_export.csv")] == ("loaded", 4, 4, 0)
    assert {res[("delighted", f)].status for f in ("not_a_delighted_export.json", "not_a_delighted_export.csv")} == {
        "rejected"}
    # respondents keyed by the email of their people.json record (the framework's key rule)
    anna, ben = customer_key("anna.muller@example.com"), customer_key("Ben.Okafor@Example.COM")
    assert query(data, "SELECT response_id, customer_id, survey_type, score, comment, responded_at "
                       "FROM raw.survey_responses WHERE _source_file LIKE '%.json' ORDER BY 1") == [
        ("delighted:210000001", anna, "nps", 9, "Fast delivery, lovely shirt.",
         datetime(2025, 3, 14, 10)),
        ("delighted:210000002", ben, "nps", 3, "Parcel arrived days after the promised date.",
         datetime(2025, 3, 11, 20, 14)),
        ("delighted:210000003", anna, "nps", 10, None, datetime(2025, 3, 20, 11, 30)),
        ("delighted:210000004", anna, "csat", 5, "Support was quick.", datetime(2025, 3, 6, 9)),
        # person 1100000099 is in no people file: kept under its own key
        ("delighted:210000005", "delighted:1100000099", "nps", 7, None, datetime(2025, 3, 15, 8)),
        ("delighted:210000006", ben, "ces", 2, "Had to call three times.",
         datetime(2025, 3, 12, 10))]
    balanced(data)
    idempotent(data)


def test_delighted_real_sample_orphans_are_kept_and_counted(data):
    land(data, "delighted", sample("delighted/airbyte__source-delighted__expected_records.txt"))
    name = "airbyte__source-delighted__expected_records.txt"
    res = run(data)
    assert counts(res) == {("survey_responses", name): ("loaded", 10, 10, 0), ("customers", name): ("loaded", 5, 5, 0)}
    assert "bounces (5 records), unsubscribes (10 records)" in res[("survey_responses", name)].message
    # none of the responses' people is in the people stream: every response kept, none dropped
    assert query(data, "SELECT count(*) FROM raw.survey_responses WHERE customer_id NOT IN "
                       "(SELECT customer_id FROM raw.customers)") == [(10,)]
    assert match_rates(data)[("survey_responses", "delighted")] == (10, 0, 10)
    balanced(data)
    idempotent(data)
