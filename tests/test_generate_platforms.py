"""`retain generate --as-platforms`: the generated shop as platform export files.

One shop is generated twice, as contract files and as platform files, and the two are compared:
same rows, same amounts and times, every platform file in its documented shape.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

import pipelines.generate as gen
from pipelines.cli import app
from pipelines.generate import generate
from pipelines.generate.platforms import (
    PLATFORM_FILES,
    SHOPIFY_LINE_COLUMNS,
    SHOPIFY_ORDER_COLUMNS,
    generate_platforms,
)

CUSTOMERS, SEED = 1500, 13
END = date(2025, 6, 30)
FIXTURES = Path(__file__).parent / "fixtures" / "platforms"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The same shop as contract files and as platform files, with the row counts of each."""
    contract = tmp_path_factory.mktemp("contract")
    platforms = tmp_path_factory.mktemp("platforms")
    rows = generate(contract, customers=CUSTOMERS, seed=SEED, end=END)
    records = generate_platforms(platforms, customers=CUSTOMERS, seed=SEED, end=END)
    con = duckdb.connect()
    for name in rows:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv('{contract}/{name}/{name}.csv')")
    return contract, platforms, rows, records, con


def sha256s(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def read_pages(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def q(con, sql: str):
    return con.execute(sql).fetchone()[0]


def test_same_arguments_give_identical_files(tmp_path, shop):
    _, platforms, *_ = shop
    generate_platforms(tmp_path, customers=CUSTOMERS, seed=SEED, end=END)
    assert sha256s(tmp_path) == sha256s(platforms)


def test_every_platform_folder_and_file_is_written(shop):
    _, platforms, *_ = shop
    written = {p.relative_to(platforms).as_posix() for p in platforms.rglob("*") if p.is_file()}
    assert written == {f"{p}/{stem}.{ext}" for p, stems in PLATFORM_FILES.items() for stem, ext in stems.items()}


def test_record_counts_match_the_contract_files_of_the_same_seed(shop):
    _, _, rows, records, con = shop
    assert records["shopify/orders_export"] == rows["order_items"]
    assert records["shopify/customers_export"] == records["klaviyo/profiles_export"] == rows["customers"]
    assert records["shopify/products_export"] == 300
    assert records["zendesk/tickets.pages"] == records["zendesk/ticket_metrics.pages"] == rows["support_tickets"]
    assert records["zendesk/satisfaction_ratings.pages"] == q(
        con, "SELECT count(*) FROM support_tickets WHERE satisfaction_score IS NOT NULL")
    assert records["zendesk/users.pages"] == q(con, "SELECT count(DISTINCT customer_id) FROM support_tickets")
    assert records["judgeme/reviews_export"] == rows["reviews"]
    assert records["delighted/survey_responses"] == rows["survey_responses"]
    assert records["delighted/people"] == q(con, "SELECT count(DISTINCT customer_id) FROM survey_responses")
    # Klaviyo: one event per outbound shop message (received or bounced), plus opens (not SMS), clicks
    # (not push) and unsubscribes (not push)
    expected_events = q(con, """
        SELECT count(*) + count(opened_at) FILTER (WHERE channel <> 'sms')
               + count(clicked_at) FILTER (WHERE channel <> 'push')
               + count(unsubscribed_at) FILTER (WHERE channel <> 'push')
        FROM messages WHERE direction = 'outbound' AND message_type <> 'support_reply'
          AND channel IN ('email', 'sms', 'push')""")
    assert records["klaviyo/events.pages"] == expected_events


def test_shopify_orders_export_has_the_79_documented_columns_and_first_row_only_order_columns(shop):
    _, platforms, *_ = shop
    header, recs = read_csv(platforms / "shopify" / "orders_export.csv")
    with open(FIXTURES / "shopify" / "orders_export_79.csv", newline="", encoding="utf-8") as f:
        assert header == next(csv.reader(f)) == list(SHOPIFY_ORDER_COLUMNS)
    assert len(header) == 79
    order_level = [c for c in header if c not in SHOPIFY_LINE_COLUMNS]
    first = {}
    for rec in recs:
        assert rec["Name"].startswith("#") and rec["Created at"] and rec["Lineitem sku"]
        if rec["Name"] in first:
            assert all(rec[c] == "" for c in order_level), rec["Name"]
            assert rec["Email"] == first[rec["Name"]]["Email"]
            assert rec["Created at"] == first[rec["Name"]]["Created at"]
        else:
            first[rec["Name"]] = rec
            assert rec["Total"] and rec["Financial Status"] and rec["Id"]
    offsets = {rec["Created at"][-5:] for rec in recs}
    assert offsets == {"-0500", "-0400"}  # New York winter and summer time in one file


def test_shopify_orders_carry_the_contract_amounts_times_and_statuses(shop):
    contract, platforms, rows, _, con = shop
    con.execute(f"""CREATE OR REPLACE VIEW s AS SELECT * FROM read_csv('{platforms}/shopify/orders_export.csv',
                    all_varchar = true) WHERE "Total" IS NOT NULL""")
    compared = con.execute("""
        SELECT count(*),
               count(*) FILTER (WHERE strptime(s."Created at", '%Y-%m-%d %H:%M:%S %z')
                                      = o.ordered_at::TIMESTAMP AT TIME ZONE 'UTC'),
               count(*) FILTER (WHERE s."Subtotal"::DECIMAL(18, 2) + s."Discount Amount"::DECIMAL(18, 2)
                                      = o.subtotal AND s."Total"::DECIMAL(18, 2) = o.total
                                      AND s."Taxes"::DECIMAL(18, 2) = o.tax
                                      AND s."Shipping"::DECIMAL(18, 2) = o.shipping),
               count(*) FILTER (WHERE (s."Cancelled at" IS NOT NULL) = (o.status = 'cancelled')),
               count(*) FILTER (WHERE (s."Fulfilled at" IS NOT NULL) = (o.shipped_at IS NOT NULL))
        FROM s JOIN orders o ON s."Name" = '#' || substr(o.order_id, 2)""").fetchone()
    assert compared == (rows["orders"],) * 5
    refunded = q(con, """SELECT sum("Refunded Amount"::DECIMAL(18, 2)) FROM s""")
    assert refunded == q(con, "SELECT sum(refund_amount::DECIMAL(18, 2)) FROM returns")
    # emails link orders to the customers export
    header, customers = read_csv(platforms / "shopify" / "customers_export.csv")
    assert {"Customer ID", "Email", "Accepts Email Marketing", "Accepts SMS Marketing", "Tags"} <= set(header)
    assert sum(c["Tags"] == "test" for c in customers) == q(con, "SELECT count(*) FROM customers WHERE is_test_account")


def test_api_pages_parse_and_klaviyo_events_resolve_their_profiles_and_metrics(shop):
    _, platforms, *_ = shop
    pages = read_pages(platforms / "klaviyo" / "events.pages.jsonl")
    assert all(len(p["data"]) <= 200 for p in pages) and pages[-1]["links"]["next"] is None
    metric_names = set()
    for page in pages:
        included = {(x["type"], x["id"]): x for x in page["included"]}
        for event in page["data"]:
            profile = included[("profile", event["relationships"]["profile"]["data"]["id"])]
            metric = included[("metric", event["relationships"]["metric"]["data"]["id"])]
            assert profile["attributes"]["external_id"].startswith("C")
            assert isinstance(event["attributes"]["timestamp"], int)
            metric_names.add(metric["attributes"]["name"])
    assert {"Received Email", "Opened Email", "Clicked Email", "Bounced Email", "Unsubscribed",
            "Received SMS", "Received Push"} <= metric_names
    for stream in ("tickets", "users", "ticket_metrics", "satisfaction_ratings"):
        pages = read_pages(platforms / "zendesk" / f"{stream}.pages.jsonl")
        assert all(set(p) == {stream, "next_page", "previous_page", "count"} for p in pages)
        assert sum(len(p[stream]) for p in pages) == pages[0]["count"]
    responses = json.loads((platforms / "delighted" / "survey_responses.json").read_text(encoding="utf-8"))
    assert {r["survey_type"] for r in responses} == {"nps", "csat", "ces"}
    assert all(isinstance(r["created_at"], int) for r in responses)
    header, reviews = read_csv(platforms / "judgeme" / "reviews_export.csv")
    with open(FIXTURES / "judgeme" / "reviews_export.csv", newline="", encoding="utf-8") as f:
        assert header == next(csv.reader(f))
    assert {int(r["rating"]) for r in reviews} <= {1, 2, 3, 4, 5}


def test_split_runs_write_one_file_per_chunk_and_clean_removes_them(tmp_path, monkeypatch):
    out = tmp_path / "platforms"
    monkeypatch.setattr(gen, "CHUNK_CUSTOMERS", 150)
    records = generate_platforms(out, customers=400, seed=3, end=END)
    assert sorted(p.name for p in (out / "zendesk").iterdir())[:3] == [
        "satisfaction_ratings.pages-0000.jsonl", "satisfaction_ratings.pages-0001.jsonl",
        "satisfaction_ratings.pages-0002.jsonl"]
    assert [p.name for p in (out / "shopify").glob("products_export*")] == ["products_export.csv"]
    contract = generate(tmp_path / "contract", customers=400, seed=3, end=END)
    assert records["shopify/orders_export"] == contract["order_items"]
    assert records["zendesk/tickets.pages"] == contract["support_tickets"]
    monkeypatch.setattr(gen, "CHUNK_CUSTOMERS", 250_000)
    with pytest.raises(FileExistsError, match="clean"):
        generate_platforms(out, customers=50, seed=3, end=END)
    generate_platforms(out, customers=50, seed=3, end=END, clean=True)
    assert not list(out.rglob("*-000?.*"))


def test_cli_writes_platform_files_and_refuses_a_format(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "--customers", "60", "--as-platforms", "--out", str(tmp_path),
                                 "--shop-timezone", "Europe/Berlin"])
    assert result.exit_code == 0, result.output
    header, recs = read_csv(tmp_path / "shopify" / "orders_export.csv")
    assert {r["Created at"][-5:] for r in recs} <= {"+0100", "+0200"}
    result = runner.invoke(app, ["generate", "--as-platforms", "--format", "parquet", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--format" in result.output


def test_klaviyo_pages_built_in_batches_give_the_same_file(tmp_path, monkeypatch, shop):
    from pipelines.generate import platforms

    _, out, *_ = shop
    monkeypatch.setattr(platforms, "KLAVIYO_BATCH_PAGES", 3)
    generate_platforms(tmp_path, customers=CUSTOMERS, seed=SEED, end=END)
    events = "klaviyo/events.pages.jsonl"
    assert len(read_pages(out / events)) > 3 * 3
    assert (tmp_path / events).read_bytes() == (out / events).read_bytes()


def _rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_zendesk_delighted_judgeme_and_klaviyo_map_back_to_the_contract_as_documented(shop):
    _, platforms, _, _, con = shop
    zd = platforms / "zendesk"
    tickets = [t for p in read_pages(zd / "tickets.pages.jsonl") for t in p["tickets"]]
    metrics = {m["ticket_id"]: m for p in read_pages(zd / "ticket_metrics.pages.jsonl") for m in p["ticket_metrics"]}
    users = {u["id"]: u for p in read_pages(zd / "users.pages.jsonl") for u in p["users"]}
    contract = {r[0]: r for r in _rows(con, """
        SELECT ticket_id, customer_id, order_id, channel, ticket_type, category, priority, status,
               strftime(created_at, '%Y-%m-%dT%H:%M:%SZ'), epoch(first_response_at) - epoch(created_at),
               strftime(resolved_at, '%Y-%m-%dT%H:%M:%SZ'), agent_replies, reopen_count, satisfaction_score
        FROM support_tickets""")}
    via = {"email": "email", "chat": "chat", "voice": "phone", "facebook": "social", "web": "web_form"}
    kind = {"problem": "complaint", "question": "question", "task": "request"}
    for t in tickets:
        (_, cid, oid, channel, ttype, category, priority, status, created, reply_s, resolved, replies, reopens,
         score) = contract[f"T{t['id']}"]
        m = metrics[t["id"]]
        assert users[t["requester_id"]]["external_id"] == cid
        assert t["custom_fields"][0]["value"] == (None if oid is None else "#" + oid[1:])
        assert (via[t["via"]["channel"]], kind[t["type"]], t["tags"][0]) == (channel, ttype, category)
        assert (t["priority"], t["status"], t["created_at"]) == (priority, status, created)
        assert (m["solved_at"], m["replies"], m["reopens"]) == (resolved, replies, reopens)
        minutes = m["reply_time_in_minutes"]["calendar"]
        assert (minutes is None) == (reply_s is None)
        assert minutes is None or abs(minutes * 60 - reply_s) <= 30
        expected = "unoffered" if score is None else ("good" if score >= 4 else "bad")
        assert t["satisfaction_rating"]["score"] == expected

    dl = platforms / "delighted" / "survey_responses.json"
    assert _rows(con, f"""
        SELECT count(*) FROM read_json('{dl}') d JOIN survey_responses s ON s.response_id = 'S' || d.id
        WHERE d.score = s.score AND d.survey_type = s.survey_type AND d.created_at = epoch(s.responded_at)
          AND d.person_properties."Customer ID" = s.customer_id AND d.comment IS NOT DISTINCT FROM s.comment
          AND d.person_properties."Order ID" IS NOT DISTINCT FROM '#' || substr(s.order_id, 2)""")[0][0] == q(
        con, "SELECT count(*) FROM survey_responses")

    jm = platforms / "judgeme" / "reviews_export.csv"
    assert _rows(con, f"""
        WITH j AS (SELECT *, row_number() OVER () AS n FROM read_csv('{jm}', all_varchar = true)),
        r AS (SELECT *, row_number() OVER (ORDER BY review_id) AS n FROM reviews)
        SELECT count(*) FROM j JOIN r USING (n) JOIN customers c ON c.customer_id = r.customer_id
        WHERE j.rating::INTEGER = r.rating AND j.title IS NOT DISTINCT FROM r.title
          AND j.review_date = strftime(r.created_at, '%Y-%m-%d %H:%M:%S') || ' UTC'
          AND j.reviewer_email IS NOT DISTINCT FROM c.email
          AND j.product_id::BIGINT = 8000000000000 + substr(r.product_id, 2)::BIGINT""")[0][0] == q(
        con, "SELECT count(*) FROM reviews")

    by_metric = {}
    for page in read_pages(platforms / "klaviyo" / "events.pages.jsonl"):
        names = {x["id"]: x["attributes"]["name"] for x in page["included"] if x["type"] == "metric"}
        for e in page["data"]:
            name = names[e["relationships"]["metric"]["data"]["id"]]
            by_metric[name] = by_metric.get(name, 0) + 1
    expected = dict(_rows(con, """
        SELECT metric, count(*) FROM (
            SELECT CASE channel WHEN 'email' THEN 'Received Email' WHEN 'sms' THEN 'Received SMS'
                   ELSE 'Received Push' END AS metric FROM messages
            WHERE delivered_at IS NOT NULL AND channel IN ('email', 'sms', 'push') AND direction = 'outbound'
              AND message_type <> 'support_reply'
            UNION ALL SELECT 'Opened Email' FROM messages WHERE channel = 'email' AND opened_at IS NOT NULL
              AND message_type <> 'support_reply'
            UNION ALL SELECT 'Clicked Email' FROM messages WHERE channel = 'email' AND clicked_at IS NOT NULL
              AND message_type <> 'support_reply'
            UNION ALL SELECT 'Unsubscribed' FROM messages WHERE channel = 'email' AND unsubscribed_at IS NOT NULL)
        GROUP BY metric"""))
    for name, n in expected.items():
        assert by_metric[name] == n, name
    header, profiles = read_csv(platforms / "klaviyo" / "profiles_export.csv")
    consent = dict(_rows(con, "SELECT customer_id, upper(email_marketing_consent) FROM customers"))
    assert all(p["Email Marketing Consent"] == consent[p["External ID"]] for p in profiles)
