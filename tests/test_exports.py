"""CRM and ad-platform exports: headers, normalisation, hashing, safety, diffs, manifests, atomicity."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from pathlib import Path

import pytest

from pipelines.defs.resources import RESOURCES
from pipelines.outreach import (
    EXPORT_FORMATS,
    FORMATS,
    ExportError,
    build_outreach_lists,
    export,
    read_latest,
    render_export,
)
from pipelines.outreach import exporter as exporter_module
from tests.test_outreach import World, make_warehouse, standard_world

#: The recommended next products, in the formats whose tools take custom fields (name, then id).
NEXT = ["next_product_1", "next_product_1_id", "next_product_2", "next_product_2_id", "next_product_3",
        "next_product_3_id"]
EXPECTED_HEADERS = {
    "csv": ["run_id", "play", "priority", "rank", "customer_id", "channel", "action", "template", "risk_tier",
            "churn_probability", "clv_12m", "reasons", *NEXT, "first_name", "last_name", "email", "phone",
            "country", "as_of_date", "created_at"],
    "hubspot": ["Email", "First Name", "Last Name", "Phone Number", "retain_customer_id", "retain_play",
                "retain_churn_risk", "retain_clv_12m", "retain_reason", *(f"retain_{h}" for h in NEXT)],
    "klaviyo": ["Email", "Phone Number", "First Name", "Last Name", "Email Marketing Consent",
                "SMS Marketing Consent", "retain_customer_id", "retain_play", "retain_churn_risk", "retain_clv_12m",
                "retain_reason", *(f"retain_{h}" for h in NEXT)],
    "salesforce": ["FirstName", "LastName", "Email", "Phone", "HasOptedOutOfEmail", "Retain_Customer_Id__c",
                   "Retain_Play__c", "Retain_Churn_Risk__c", "Retain_CLV_12m__c", "Retain_Reason__c"],
    "mailchimp": ["Email Address", "First Name", "Last Name", "Country", "Tags", "Next Product 1",
                  "Next Product 1 ID", "Next Product 2", "Next Product 2 ID", "Next Product 3", "Next Product 3 ID"],
    "google_customer_match": ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"],
    "meta_custom_audience": ["email", "phone", "fn", "ln", "country", "zip"],
}
#: Columns that hold a validated E.164 phone (allowed to start with '+').
PHONE_COLUMNS = {"phone", "Phone Number", "Phone"}
KEY_COLUMNS = {"csv": "customer_id", "hubspot": "retain_customer_id", "klaviyo": "retain_customer_id",
               "salesforce": "Retain_Customer_Id__c"}
INJECTION_NAMES = ['=HYPERLINK("http://evil.example","x")', "+SUM(1+1)", "-2+3", "@cmd", "\tTab", "\rReturn",
                   "＝FULLWIDTH"]
E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def export_world() -> World:
    """The standard world plus customers made for the format tests (all high risk: winback)."""
    w = standard_world()
    w.customer("hashme", risk="high", clv=123.456, email=" Test.User+x@GMail.com ", phone="0151 1234 5678",
               country="de", first_name=" Jürgen ", last_name="O'Neil-Smith", postal_code=" 10117 ")
    w.customer("uk", risk="high", country="UK", phone="020 7946 0958", first_name="  Amy  ", last_name=" Pond ",
               email="amy.pond@example.co.uk", sms_marketing_consent="never_subscribed")
    w.customer("us", risk="high", clv=50.0, country="US", phone="(650) 555-1212", postal_code="94103-1234",
               email="us.customer@googlemail.com")
    for i, name in enumerate(INJECTION_NAMES):
        w.customer(f"inj{i}", risk="high", first_name=name, last_name=name,
                   reasons=(name, "=1+1", "@SUM(A1)"))
    return w


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch, request):
    """Skip fsync in throwaway folders (slow here), except where atomicity is tested."""
    if "atomic" not in request.node.name and "failed_export" not in request.node.name:
        monkeypatch.setenv("RETAIN_EXPORT_FSYNC", "0")


@pytest.fixture
def con(tmp_path):
    c = make_warehouse(tmp_path / "warehouse.duckdb", export_world())
    build_outreach_lists(c, run_id="r1")
    yield c
    c.close()


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def header(data: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def rows_of(con, play: str, fmt: str) -> list[dict[str, str]]:
    files = render_export(con, play, fmt)
    return [row for data in files.values() for row in read_csv(data)]


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_has_its_exact_header(con, fmt):
    files = render_export(con, "winback", fmt)
    assert list(files) == [f"winback-{fmt}.csv"]
    assert header(files[f"winback-{fmt}.csv"]) == EXPECTED_HEADERS[fmt]
    # Only the working list starts with a byte order mark (Excel); import files start with the header.
    assert files[f"winback-{fmt}.csv"].startswith(b"\xef\xbb\xbf") == (fmt == "csv")
    assert EXPORT_FORMATS[fmt].headers == EXPECTED_HEADERS[fmt]


def test_google_customer_match_normalises_then_hashes(con):
    row = next(r for r in rows_of(con, "winback", "google_customer_match") if r["Zip"] == "10117")
    # gmail: trimmed, lower-case, dots before @ removed (the +suffix stays); phone E.164 with '+'.
    assert row["Email"] == hashlib.sha256(b"testuser+x@gmail.com").hexdigest()
    assert row["Phone"] == hashlib.sha256(b"+4915112345678").hexdigest()
    assert row["First Name"] == sha("jürgen")
    assert row["Last Name"] == sha("o'neil-smith")
    assert row["Country"] == "DE"  # not hashed
    googlemail = next(r for r in rows_of(con, "winback", "google_customer_match") if r["Country"] == "US")
    assert googlemail["Email"] == sha("uscustomer@googlemail.com")
    assert googlemail["Zip"] == "94103-1234"
    other = rows_of(con, "winback", "google_customer_match")
    assert sha("win@example.com") in {r["Email"] for r in other}  # dots kept for other domains


def test_meta_custom_audience_normalises_then_hashes(con):
    row = next(r for r in rows_of(con, "winback", "meta_custom_audience") if r["zip"] == sha("10117"))
    assert row["email"] == sha("test.user+x@gmail.com")  # Meta keeps the dots
    assert row["phone"] == sha("4915112345678")  # digits with country code, no '+'
    assert row["fn"] == sha("jürgen")
    assert row["ln"] == sha("oneilsmith")  # letters only
    assert row["country"] == sha("de")
    us = next(r for r in rows_of(con, "winback", "meta_custom_audience") if r["country"] == sha("us"))
    assert us["zip"] == sha("94103")  # US: first five digits
    assert us["phone"] == sha("16505551212")


def test_hashed_formats_never_contain_a_raw_email_or_phone(con, tmp_path):
    export(con, "all", "google_customer_match", tmp_path / "out")
    export(con, "all", "meta_custom_audience", tmp_path / "out")
    blobs = [p.read_bytes() for p in (tmp_path / "out").rglob("*.csv")]
    assert blobs
    raw = con.execute("SELECT email, phone FROM marts.dim_customers").fetchall()
    needles = set()
    for email, phone in raw:
        if email:
            needles |= {email.strip(), email.strip().lower(), email.split("@")[0].strip().lower() + "@"}
        if phone:
            digits = re.sub(r"\D", "", phone)
            needles |= {phone, digits, digits[1:]}
    needles |= {"+4915112345678", "4915112345678", "testuser+x@gmail.com", "@"}
    for blob in blobs:
        text = blob.decode()
        for needle in needles:
            assert needle not in text, needle
        for row in read_csv(blob):
            for col in ("Email", "Phone", "First Name", "Last Name", "email", "phone", "fn", "ln"):
                assert row.get(col, "") == "" or re.fullmatch(r"[0-9a-f]{64}", row[col]), (col, row[col])


def test_hubspot_and_klaviyo_contacts(con):
    hub = {r["retain_customer_id"]: r for r in rows_of(con, "winback", "hubspot")}
    assert hub["hashme"]["Email"] == "test.user+x@gmail.com"
    assert hub["hashme"]["Phone Number"] == "+4915112345678"
    assert hub["hashme"]["First Name"] == "Jürgen"
    assert hub["hashme"]["retain_play"] == "winback" and hub["hashme"]["retain_churn_risk"] == "high"
    assert hub["hashme"]["retain_clv_12m"] == "123.46"
    assert hub["hashme"]["retain_reason"] == "days since last order 120 (typical 45); no order in 90 days"
    # No SMS consent: the phone is not handed to the tool.
    assert hub["uk"]["Phone Number"] == ""
    klav_files = render_export(con, "winback", "klaviyo")
    data = klav_files["winback-klaviyo.csv"]
    assert header(data)[0] == "Email"
    klav = {r["retain_customer_id"]: r for r in read_csv(data)}
    assert klav["us"]["Phone Number"] == "+16505551212"
    assert klav["us"]["Email Marketing Consent"] == "SUBSCRIBED" and klav["us"]["SMS Marketing Consent"] == "SUBSCRIBED"
    assert klav["uk"]["SMS Marketing Consent"] == "" and klav["uk"]["Phone Number"] == ""
    assert data.decode("utf-8")  # UTF-8 throughout


def test_salesforce_contacts(con):
    sf = {r["Retain_Customer_Id__c"]: r for r in rows_of(con, "winback", "salesforce")}
    assert sf["us"]["Phone"] == "+16505551212"
    assert sf["us"]["HasOptedOutOfEmail"] == "false"
    assert sf["us"]["LastName"] == "Us" and sf["us"]["FirstName"] == "Anna"
    assert sf["us"]["Retain_CLV_12m__c"] == "50"


def test_mailchimp_trims_uses_iso_countries_and_tags(con):
    rows = {r["Email Address"]: r for r in rows_of(con, "winback", "mailchimp")}
    uk = rows["amy.pond@example.co.uk"]
    assert uk["First Name"] == "Amy" and uk["Last Name"] == "Pond"
    assert uk["Country"] == "GB"
    assert rows["test.user+x@gmail.com"]["Country"] == "DE"
    assert uk["Tags"] == "retain,retain_winback,churn_risk_high"
    for row in rows.values():
        for value in row.values():
            assert value == value.strip()


def test_files_split_above_the_row_limit(con, tmp_path):
    assert EXPORT_FORMATS["salesforce"].max_rows_per_file == 50_000
    assert EXPORT_FORMATS["hubspot"].max_rows_per_file == 1_048_575  # plus the header: Excel's 1,048,576
    whole = rows_of(con, "winback", "salesforce")
    parts = render_export(con, "winback", "salesforce", max_rows=3)
    assert list(parts)[:2] == ["winback-salesforce-part001.csv", "winback-salesforce-part002.csv"]
    assert len(parts) == -(-len(whole) // 3)
    for data in parts.values():
        assert header(data) == EXPECTED_HEADERS["salesforce"]
        assert 1 <= len(read_csv(data)) <= 3
    assert [r for d in parts.values() for r in read_csv(d)] == whole
    result = export(con, "winback", "salesforce", tmp_path / "out", max_rows=3)[0]
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == list(parts)
    assert sum(f["rows"] for f in manifest["files"]) == manifest["rows"] == len(whole)


# --------------------------------------------------------------------------- safety


def test_injection_payloads_are_neutralised_in_every_format(con, tmp_path):
    results = export(con, "all", "all", tmp_path / "out")
    files = [p for r in results if r.path for p in r.path.rglob("*.csv")]
    assert files
    seen_payload = 0
    for path in files:
        for row in read_csv(path.read_bytes()):
            for col, value in row.items():
                if not value:
                    continue
                if col in PHONE_COLUMNS and value.startswith("+"):
                    assert E164.fullmatch(value), (path.name, col, value)
                    continue
                assert value[0] not in "=+-@\t\r＝＋－＠", (path.name, col, value)
                if value.startswith("'") and value[1:] in INJECTION_NAMES + ["=1+1", "@SUM(A1)"]:
                    seen_payload += 1
    assert seen_payload >= len(INJECTION_NAMES)
    hub = {r["retain_customer_id"]: r for r in rows_of(con, "winback", "hubspot")}
    assert hub["inj0"]["First Name"] == "'" + INJECTION_NAMES[0]
    assert hub["inj0"]["retain_reason"].startswith("'=HYPERLINK")


def test_service_recovery_goes_to_the_support_queue_csv_only(con, tmp_path):
    with pytest.raises(ExportError, match="service contact for the support queue"):
        export(con, "service_recovery", "hubspot", tmp_path / "out")
    with pytest.raises(ExportError):
        render_export(con, "service_recovery", "meta_custom_audience")
    results = export(con, "service_recovery", "all", tmp_path / "out")
    written = [r.format for r in results if not r.skipped]
    assert written == ["csv"]
    assert not (tmp_path / "out" / "service_recovery" / "hubspot").exists()
    rows = {r["customer_id"]: r for r in rows_of(con, "service_recovery", "csv")}
    # A service contact: the support team gets the email even though marketing is unsubscribed.
    assert rows["svc"]["email"] == "svc@example.com" and rows["svc"]["channel"] == "support_queue"


def test_no_suppressed_customer_in_any_file(con, tmp_path):
    results = export(con, "all", "all", tmp_path / "out")
    suppressed = {r[0] for r in con.execute("SELECT customer_id FROM exports.suppressions WHERE run_id = 'r1'")
                  .fetchall()}
    assert {"s_noconsent", "s_unsub", "s_freq", "s_ticket", "s_test", "s_erased"} <= suppressed
    emails = {cid: c["email"] for cid, c in export_world().customers.items()}  # erased ones too
    forbidden = set()
    for cid in suppressed:
        e = (emails[cid] or "").strip().lower()
        if e:
            forbidden |= {e, sha(e)}
    checked = 0
    for r in results:
        if r.skipped:
            continue
        for path in r.path.glob("*.csv"):
            data = path.read_bytes()
            text = data.decode()
            for needle in forbidden:
                assert needle not in text, (path, needle)
            key = KEY_COLUMNS.get(r.format)
            if key:
                ids = {row[key] for row in read_csv(data)}
                assert not ids & suppressed, (path, ids & suppressed)
            checked += 1
    assert checked >= 40


def test_customers_who_cannot_be_contacted_any_more_are_dropped_at_export(con, tmp_path, caplog):
    # After the list was built: one customer asks for erasure, another unsubscribes.
    con.execute("UPDATE marts.dim_customers SET erasure_requested_at = now() WHERE customer_id = 'win'")
    con.execute("UPDATE marts.dim_customers SET email_marketing_consent = 'unsubscribed' WHERE customer_id = 'us'")
    caplog.set_level(logging.DEBUG, logger="retain.outreach")
    result = export(con, "winback", "hubspot", tmp_path / "out")[0]
    ids = {r["retain_customer_id"] for r in read_csv((result.path / "winback-hubspot.csv").read_bytes())}
    assert "win" not in ids and "us" not in ids and "hashme" in ids
    assert result.dropped == 2
    assert json.loads((result.path / "manifest.json").read_text())["dropped_at_export"] == 2
    assert "2 listed customer(s) left out" in caplog.text


def test_logs_never_show_a_raw_address(con, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="retain.outreach")
    build_outreach_lists(con, run_id="r2")
    export(con, "all", "all", tmp_path / "out")
    assert caplog.text
    for email, phone in con.execute("SELECT email, phone FROM marts.dim_customers").fetchall():
        if email and "@" in email:
            assert email.strip().lower() not in caplog.text.lower()
        if phone:
            assert phone not in caplog.text


# --------------------------------------------------------------------------- folders, manifests, diffs


def test_export_folder_manifest_and_latest(con, tmp_path):
    out = tmp_path / "out"
    result = export(con, "winback", "klaviyo", out)[0]
    base = out / "winback" / "klaviyo"
    assert result.path == base / "r1"
    assert read_latest(base) == "r1"
    assert sorted(p.relative_to(result.path).as_posix() for p in result.path.rglob("*") if p.is_file()) == [
        ".snapshot.arrow", "diff/added.csv", "diff/changed.csv", "diff/removed.csv", "manifest.json",
        "winback-klaviyo.csv",
    ]
    m = json.loads((result.path / "manifest.json").read_text())
    assert m["run_id"] == "r1" and m["play"] == "winback" and m["format"] == "klaviyo"
    assert m["columns"] == EXPECTED_HEADERS["klaviyo"]
    assert m["rows"] == result.rows == len(read_csv((result.path / "winback-klaviyo.csv").read_bytes()))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["generated_at"])
    assert m["source"]["as_of_date"] == "2025-03-31"
    assert m["source"]["scores_scored_at"] and m["source"]["latest_order_at"] and m["source"]["model_version"] == "m1"
    for entry in m["files"] + m["diff"]["files"]:
        assert hashlib.sha256((result.path / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    assert m["diff"]["previous_run_id"] is None and m["diff"]["added"] == m["rows"]
    # What the dashboard downloads is byte for byte what was written.
    assert render_export(con, "winback", "klaviyo") == {"winback-klaviyo.csv":
                                                         (result.path / "winback-klaviyo.csv").read_bytes()}


def _ids(path: Path, key: str = "retain_customer_id") -> list[str]:
    return [r[key] for r in read_csv(path.read_bytes())]


def test_diffs_across_three_runs(tmp_path):
    w = export_world()
    con = make_warehouse(tmp_path / "w.duckdb", w)
    out = tmp_path / "out"
    build_outreach_lists(con, run_id="r1")
    first = export(con, "winback", "hubspot", out)[0]
    assert (first.added, first.changed, first.removed) == (first.rows, 0, 0)

    # Run 2: a new high-risk customer, a changed name, and an unsubscribe.
    w.customer("new1", risk="high")
    w.customers["win"]["first_name"] = "Winifred"
    w.customers["ok_freq_tx"]["email_marketing_consent"] = "unsubscribed"
    w.write(con)
    build_outreach_lists(con, run_id="r2")
    second = export(con, "winback", "hubspot", out)[0]
    export(con, "winback", "csv", out)
    d2 = second.path / "diff"
    assert _ids(d2 / "added.csv") == ["new1"]
    assert _ids(d2 / "changed.csv") == ["win"]
    assert read_csv((d2 / "changed.csv").read_bytes())[0]["First Name"] == "Winifred"
    assert _ids(d2 / "removed.csv") == ["ok_freq_tx"]
    assert read_csv((d2 / "removed.csv").read_bytes())[0]["Email"] == "ok_freq_tx@example.com"
    assert (second.added, second.changed, second.removed, second.previous_run_id) == (1, 1, 1, "r1")
    assert second.rows == first.rows

    # Run 3: new1 leaves, ok_freq_tx comes back, nothing else changes.
    del w.customers["new1"], w.scores["new1"]
    w.customers["ok_freq_tx"]["email_marketing_consent"] = "subscribed"
    w.write(con)
    build_outreach_lists(con, run_id="r3")
    third = export(con, "winback", "hubspot", out)[0]
    d3 = third.path / "diff"
    assert _ids(d3 / "added.csv") == ["ok_freq_tx"]
    assert _ids(d3 / "changed.csv") == []
    assert _ids(d3 / "removed.csv") == ["new1"]
    assert header((d3 / "changed.csv").read_bytes()) == EXPECTED_HEADERS["hubspot"]
    m3 = json.loads((third.path / "manifest.json").read_text())
    assert m3["diff"]["previous_run_id"] == "r2" and (m3["diff"]["added"], m3["diff"]["removed"]) == (1, 1)
    assert read_latest(out / "winback" / "hubspot") == "r3"
    assert {p.name for p in (out / "winback" / "hubspot").iterdir()} == {"r1", "r2", "r3", "LATEST"}

    # Re-exporting run 3 replaces its folder and still diffs against run 2.
    again = export(con, "winback", "hubspot", out)[0]
    assert (again.previous_run_id, again.added, again.removed) == ("r2", 1, 1)
    # csv diffs too, by customer_id.
    csv3 = export(con, "winback", "csv", out)[0]
    assert _ids(csv3.path / "diff" / "added.csv", "customer_id") == ["ok_freq_tx"]
    assert _ids(csv3.path / "diff" / "removed.csv", "customer_id") == ["new1"]
    # A new run id, date and positions in the list are not changes of a customer.
    assert _ids(csv3.path / "diff" / "changed.csv", "customer_id") == []
    con.close()


def test_an_export_from_before_the_arrow_snapshot_still_diffs(con, tmp_path):
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    first = export(con, "winback", "hubspot", out)[0]
    # As older versions wrote it: Parquet, without the row digest.
    old = feather.read_table(first.path / ".snapshot.arrow").drop_columns(["__row"])
    pq.write_table(old, first.path / ".snapshot.parquet")
    (first.path / ".snapshot.arrow").unlink()
    build_outreach_lists(con, run_id="r2")
    second = export(con, "winback", "hubspot", out)[0]
    # The columns differ (no digest), so every kept row counts as changed, none as added.
    assert (second.previous_run_id, second.added, second.removed) == ("r1", 0, 0)
    assert second.changed == second.rows == first.rows
    third = export(con, "winback", "hubspot", out, run_id="r2")[0]
    assert third.previous_run_id == "r1"


def test_a_failed_export_leaves_the_previous_one_intact(con, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = export(con, "winback", "hubspot", out)[0]
    base = out / "winback" / "hubspot"
    before = {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}
    build_outreach_lists(con, run_id="r2")

    real_write = exporter_module._write_file
    calls = {"n": 0}

    def failing_write(path, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(exporter_module, "_write_file", failing_write)
    with pytest.raises(OSError, match="No space left"):
        export(con, "winback", "hubspot", out)
    assert calls["n"] == 3
    after = {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}
    assert after == before  # same files, same bytes, LATEST still r1, nothing half-written
    assert read_latest(base) == first.run_id == "r1"
    assert [p.name for p in base.iterdir() if p.name.startswith(".")] == []

    # Failing while replacing the same run's export keeps the old one too.
    calls["n"] = 0
    with pytest.raises(OSError):
        export(con, "winback", "hubspot", out, run_id="r1")
    assert {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()} == before

    monkeypatch.setattr(exporter_module, "_write_file", real_write)
    ok = export(con, "winback", "hubspot", out)[0]
    assert ok.run_id == "r2" and read_latest(base) == "r2" and ok.previous_run_id == "r1"


def test_export_all_writes_every_play_and_format_it_may(con, tmp_path):
    results = export(con, "all", "all", tmp_path / "out")
    plays = [r[0] for r in con.execute("SELECT DISTINCT play FROM exports.outreach_lists").fetchall()]
    assert len(results) == 8 * len(FORMATS)  # the playbook's 8 plays
    skipped = {(r.play, r.format) for r in results if r.skipped}
    assert skipped == {("service_recovery", f) for f in FORMATS if f != "csv"}
    for play in plays:
        assert read_latest(tmp_path / "out" / play / "csv") == "r1"
    # Empty plays still get a file with a header (a mirror sync then removes everyone).
    empty = [r for r in results if not r.skipped and r.rows == 0]
    for r in empty:
        assert header((r.path / f"{r.play}-{r.format}.csv").read_bytes()) == EXPECTED_HEADERS[r.format]


#: Formats whose tools take custom properties or merge fields: they carry the recommended products.
RECOMMENDING_FORMATS = {"csv": "next_product_1", "hubspot": "retain_next_product_1",
                        "klaviyo": "retain_next_product_1", "mailchimp": "Next Product 1"}


def _without_holdouts():
    """The default playbook with every play's holdout at 0, so who is listed does not depend on the arm draw."""
    from dataclasses import replace

    from pipelines.outreach.playbook import load_playbook

    pb = load_playbook()
    return replace(pb, plays=tuple(replace(p, holdout=0.0) for p in pb.plays))


def test_recommended_products_only_in_the_formats_that_take_them(tmp_path):
    w = export_world()
    w.customer("xsell", risk="low", first_name="=cmd", last_order_days_ago=30)  # delivered 25 days ago
    con = make_warehouse(tmp_path / "warehouse.duckdb", w)
    con.execute("CREATE TABLE ml.product_recommendations (customer_id VARCHAR, rank INTEGER, product_id VARCHAR, "
                "product_name VARCHAR)")
    con.execute("""INSERT INTO ml.product_recommendations VALUES ('xsell', 1, 'P1210', 'Night Cleanser'),
                   ('xsell', 2, 'P1081', '=Leather Belt'), ('xsell', 3, 'P1167', 'Portable Charger'),
                   ('win', 1, 'P1001', 'Linen Shirt')""")
    build_outreach_lists(con, run_id="r1", playbook=_without_holdouts())
    for fmt in FORMATS:
        rows = rows_of(con, "cross_sell", fmt)
        assert len(rows) == 2, fmt  # xsell and the standard world's win_recent
        if fmt in RECOMMENDING_FORMATS:
            key = KEY_COLUMNS.get(fmt)
            row = next(r for r in rows if (r[key] == "xsell" if key else r["Email Address"] == "xsell@example.com"))
            other = next(r for r in rows if r is not row)
            first = RECOMMENDING_FORMATS[fmt]
            assert other[first] == ""  # win_recent has no recommendations: empty, not "None"
            assert row[first] == "Night Cleanser"
            assert row[first.replace("1", "3")] == "Portable Charger"
            assert row[first + (" ID" if fmt == "mailchimp" else "_id")] == "P1210"
            # a product name is text from the shop's data: neutralised like every other text column
            assert row[first.replace("1", "2")] == "'=Leather Belt"
        else:
            for row in rows:
                assert not any("product" in h.lower() for h in row), fmt
                assert "Night Cleanser" not in row.values() and "P1210" not in row.values()
        # win-back rows never carry recommendations, in any format
        for win in rows_of(con, "winback", fmt):
            assert "Linen Shirt" not in win.values()
    con.close()


def test_old_exports_are_pruned(con, tmp_path):
    out = tmp_path / "out"
    for run_id in ("r1", "r2", "r3"):
        if run_id != "r1":
            build_outreach_lists(con, run_id=run_id)
        export(con, "winback", "mailchimp", out, keep=2)
    base = out / "winback" / "mailchimp"
    assert sorted(p.name for p in base.iterdir()) == ["LATEST", "r2", "r3"]


def test_unknown_play_format_or_run(con, tmp_path):
    with pytest.raises(ExportError, match="no play 'nope'"):
        export(con, "nope", "csv", tmp_path)
    with pytest.raises(ValueError, match="unknown export format 'excel'"):
        export(con, "winback", "excel", tmp_path)
    with pytest.raises(ExportError, match="no outreach run 'r9'"):
        export(con, "winback", "csv", tmp_path, run_id="r9")


def test_no_lists_yet(tmp_path):
    con = make_warehouse(tmp_path / "w.duckdb", World())
    with pytest.raises(ExportError, match="no outreach lists yet"):
        render_export(con, "winback", "csv")
    con.close()


# --------------------------------------------------------------------------- Dagster


def outreach_data_dir(tmp_path, monkeypatch):
    """A data folder under tmp_path whose warehouse holds `export_world()`; its settings."""
    from pipelines.core.config import settings

    for var in ("RETAIN_WAREHOUSE", "RETAIN_EXPORTS", "RETAIN_AS_OF", "RETAIN_PLAYBOOK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path / "data"))
    s = settings()
    s.warehouse.parent.mkdir(parents=True)
    make_warehouse(s.warehouse, export_world()).close()
    return s


def test_dagster_assets_build_lists_and_export_every_format(tmp_path, monkeypatch):
    import dagster as dg

    from pipelines.defs.outreach import asset_checks, assets

    s = outreach_data_dir(tmp_path, monkeypatch)
    result = dg.materialize([*assets, *asset_checks], selection=dg.AssetSelection.all(), resources=RESOURCES)
    assert result.success
    lists = result.asset_materializations_for_node("exports__outreach_lists")[0].metadata
    assert lists["listed"].value > 0 and lists["as_of_date"].value == "2025-03-31"
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert read_latest(s.exports / "winback" / "meta_custom_audience") is not None
    assert read_latest(s.exports / "service_recovery" / "csv") is not None
    assert not (s.exports / "service_recovery" / "hubspot").exists()

    # The check re-hashes every latest file: a changed or missing file fails it.
    from pipelines.defs.outreach.assets import crm_exports_check

    base = s.exports / "winback" / "hubspot"
    target = base / read_latest(base) / "winback-hubspot.csv"
    target.write_bytes(target.read_bytes() + b"tampered\n")
    result = crm_exports_check()
    assert not result.passed
    assert any("does not match its sha256" in p for p in result.metadata["problems"].value)
    target.unlink()
    assert any("is missing" in p for p in crm_exports_check().metadata["problems"].value)
