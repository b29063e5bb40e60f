"""Review importers: Judge.me, Yotpo, Okendo and Trustpilot exports into reviews."""

from __future__ import annotations

from datetime import datetime

from tests import platform_imports
from tests.platform_imports import balanced, counts, idempotent, land, quarantined, query, run, sample

data = platform_imports.data  # the pytest fixture: an empty data folder


def test_judgeme_export(data):
    land(data, "judgeme", "reviews_export.csv", "not_a_judgeme_export.csv")
    res = run(data)
    assert counts(res)[("reviews", "reviews_export.csv")] == ("loaded", 6, 5, 1)
    assert quarantined(data, "reviews_export.csv") == [
        ("reviews", 4, "curated", "spam", "the review is curated as spam in Judge.me")]
    rows = query(data, "SELECT customer_id, product_id, rating, title, body, source, created_at FROM raw.reviews "
                       "ORDER BY created_at")
    assert [r[2] for r in rows] == [5, 2, 4, 1, 5]
    assert rows[1][4] == "The box was crushed.\nOne candle broken.\n\nSupport replaced it, though."
    assert rows[2][0].startswith("anon_judgeme_") and rows[2][6] == datetime(2025, 3, 20)  # no email: kept
    assert rows[4][3:5] == ("Schön", "Sehr schöne Qualität — danke! ✓")
    # a reviewer's email key has a customers row, so the identity table can tie it to the shop
    assert query(data, "SELECT email FROM raw.customers WHERE customer_id = ?", [rows[1][0]]) == [
        ("Ben.Okafor@Example.COM",)]
    bad = res[("judgeme", "not_a_judgeme_export.csv")]
    assert bad.status == "rejected" and "needs columns title, body, rating, review_date" in bad.message
    balanced(data)
    idempotent(data)


def test_judgeme_real_sample_ratings_outside_the_scale_are_quarantined_not_rescaled(data):
    land(data, "judgeme", sample("judgeme/CastForge__judgeme_reviews.csv"))
    name = "CastForge__judgeme_reviews.csv"
    assert counts(run(data))[("reviews", name)] == ("loaded", 55, 0, 55)
    rows = quarantined(data, name)
    assert {r[2:4] for r in rows} == {("rating", "rating_out_of_scale")}
    assert [r[1] for r in rows] == list(range(1, 56))  # every review parsed: multi-line cells stay one row
    assert rows[0][4] == "rating 10 is outside Judge.me's 1-5 scale (not rescaled: check the file's scale)"
    record = query(data, "SELECT record FROM raw._quarantine WHERE source_row = 2")[0][0]
    assert "\\r\\nMuchas gracias" in record  # CRLF inside a quoted cell kept as written
    balanced(data)
    idempotent(data)


def test_yotpo_api_export_and_airbyte(data):
    land(data, "yotpo", "reviews_api.json", "reviews_export.csv", "not_a_yotpo_export.csv",
         sample("yotpo/airbyte__source-yotpo__expected_records.jsonl"))
    res = counts(run(data))
    assert res[("reviews", "reviews_api.json")] == ("loaded", 5, 4, 1)
    assert res[("reviews", "reviews_export.csv")] == ("loaded", 4, 4, 0)
    assert res[("reviews", "airbyte__source-yotpo__expected_records.jsonl")] == ("loaded", 1, 1, 0)
    assert res[("yotpo", "not_a_yotpo_export.csv")][0] == "rejected"
    assert quarantined(data, "reviews_api.json") == [
        ("reviews", 4, "deleted", "deleted", "the review is deleted in Yotpo")]
    assert query(data, "SELECT DISTINCT review_id, product_id, rating FROM raw.reviews "
                       "WHERE review_id IN ('yotpo:460000005', 'yotpo:460312221') ORDER BY 1") == [
        ("yotpo:460000005", "shop", 5), ("yotpo:460312221", "13", 5)]
    balanced(data)
    idempotent(data)


def test_okendo_export(data):
    land(data, "okendo", "reviews_export.csv", "not_a_okendo_export.csv")
    res = run(data)
    assert counts(res)[("reviews", "reviews_export.csv")] == ("loaded", 5, 4, 1)
    assert quarantined(data, "reviews_export.csv") == [
        ("reviews", 4, "Status", "rejected", "the review was rejected in Okendo's moderation")]
    assert query(data, "SELECT customer_id FROM raw.reviews WHERE review_id LIKE '%0003'") == [
        ("anon_okendo_a1f00000-0000-4000-8000-000000000003",)]
    assert res[("okendo", "not_a_okendo_export.csv")].status == "rejected"
    balanced(data)
    idempotent(data)


def test_trustpilot_service_reviews_are_reviews_of_the_shop(data):
    land(data, "trustpilot", "service_reviews_export.csv", "not_a_trustpilot_export.csv")
    res = run(data)
    assert counts(res)[("reviews", "service_reviews_export.csv")] == ("loaded", 5, 5, 0)
    assert query(data, "SELECT DISTINCT product_id FROM raw.reviews") == [("shop",)]
    # no email: Trustpilot's consumer id keeps the reviewer apart
    assert query(data, "SELECT customer_id, created_at FROM raw.reviews WHERE review_id LIKE '%0004'") == [
        ("trustpilot:5f0000000000000000000004", datetime(2025, 3, 25, 7, 45))]
    assert res[("trustpilot", "not_a_trustpilot_export.csv")].status == "rejected"
    balanced(data)
    idempotent(data)
