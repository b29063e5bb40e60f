"""Every hostile landing file in tests/fixtures/hostile gets the outcome expected.yaml names.

One ingest run over the whole corpus (plus a few generated files too big or binary to
commit); then, per file: status, rows loaded and quarantined, reason codes, a message
substring, and the ledger invariant rows read = loaded + quarantined. Rejected files must
leave no rows anywhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.ingest import ingest

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
EXPECTED = yaml.safe_load((HOSTILE / "expected.yaml").read_text())
ALL = {**EXPECTED["files"], **EXPECTED["generated"]}

HUGE = 10_000_000


def _generate(landing: Path) -> None:
    """Write the files listed under `generated` in expected.yaml."""
    orders = landing / "orders"
    with open(orders / "huge_field.csv", "w") as fh:
        fh.write("order_id,customer_id,ordered_at,total\n")
        fh.write("H1,C1,2024-03-01T10:00:00Z,10.00\n")
        fh.write("H2," + "x" * HUGE + ",2024-03-01T10:00:00Z,10.00\n")
        fh.write("H3,C3,2024-03-01T10:00:00Z,10.00\n")
    reviews = landing / "reviews"
    with open(reviews / "huge_value.jsonl", "w") as fh:
        base = {"customer_id": "C1", "product_id": "P1", "rating": 5, "created_at": "2024-03-01T10:00:00Z"}
        fh.write(json.dumps({"review_id": "HJ1", **base, "body": "fine"}) + "\n")
        fh.write(json.dumps({"review_id": "HJ2", **base, "body": "y" * HUGE}) + "\n")
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT 'PW' || i AS review_id, 'C1' AS customer_id, 'P1' AS product_id, 4 AS rating,
                         (1709287200 + i)::BIGINT AS created_at FROM range(3) t(i))
            TO '{reviews / "wrong_type.parquet"}' (FORMAT parquet)"""
    )
    con.execute(
        f"""COPY (SELECT * FROM (VALUES ('PF1', 5.0::DOUBLE), ('PF2', 4.5), ('PF3', 4.0)) v(review_id, rating)
                  CROSS JOIN (SELECT 'C1' AS customer_id, 'P1' AS product_id,
                              TIMESTAMPTZ '2024-03-01 10:00:00+01' AS created_at))
            TO '{reviews / "fractional_rating.parquet"}' (FORMAT parquet)"""
    )
    (landing / "returns").mkdir(exist_ok=True)
    full = landing / "returns" / "full.parquet.tmp"
    con.execute(
        f"""COPY (SELECT 'RT' || i AS return_id, 'O' || i AS order_id, TIMESTAMP '2024-03-01' AS requested_at
                  FROM range(100) t(i)) TO '{full}' (FORMAT parquet)"""
    )
    data = full.read_bytes()
    (landing / "returns" / "truncated.parquet").write_bytes(data[: len(data) // 2])
    full.unlink()
    con.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Ingest the whole corpus once; yield (results by file, read-only connection)."""
    root = tmp_path_factory.mktemp("hostile")
    landing = root / "landing"
    shutil.copytree(HOSTILE / "landing", landing)
    _generate(landing)
    warehouse = root / "warehouse.duckdb"
    results = {r.file: r for r in ingest(landing=landing, warehouse=warehouse)}
    con = duckdb.connect(str(warehouse), read_only=True)
    yield results, con
    con.close()


def test_corpus_is_big_enough():
    assert len(EXPECTED["files"]) >= 20
    for rel in EXPECTED["files"]:
        assert (HOSTILE / "landing" / rel).exists(), rel


@pytest.mark.parametrize("rel", sorted(ALL))
def test_hostile_file(corpus, rel):
    results, con = corpus
    exp = ALL[rel]
    if exp["status"] == "ignored":
        assert rel not in results
        assert not con.execute("SELECT count(*) FROM raw._loads WHERE file_path = ?", [rel]).fetchone()[0]
        return
    r = results[rel]
    assert r.status == exp["status"], (r.status, r.reason_code, r.message)
    ledger = con.execute(
        "SELECT status, rows_read, rows_loaded, rows_quarantined, extra_columns, error FROM raw._loads "
        "WHERE file_path = ?",
        [rel],
    ).fetchall()
    assert len(ledger) == 1
    status, read, loaded, quarantined, extra, error = ledger[0]
    assert status == exp["status"]
    assert read == loaded + quarantined
    source = rel.split("/")[0]
    rows_in_table = con.execute(f"SELECT count(*) FROM raw.{source} WHERE _source_file = ?", [rel]).fetchone()[0]
    q_rows = con.execute(
        "SELECT reason_code, message, source_row FROM raw._quarantine WHERE source_file = ?", [rel]
    ).fetchall()
    if exp["status"] == "rejected":
        assert (read, loaded, quarantined) == (0, 0, 0)
        assert rows_in_table == 0 and q_rows == []
        code, message = con.execute(
            "SELECT reason_code, message FROM raw._rejected_files WHERE file_path = ?", [rel]
        ).fetchone()
        assert [code] == exp["reasons"] == [r.reason_code]
        assert exp["message"] in message, message
        assert message == error == r.message
        assert Path(rel).name in message  # the message names the file
        return
    assert (loaded, quarantined) == (exp["loaded"], exp["quarantined"]) == (r.rows_loaded, r.rows_quarantined)
    assert rows_in_table == loaded
    assert len(q_rows) == quarantined
    assert {c for c, _, _ in q_rows} == set(exp.get("reasons", []))
    assert all(row is not None and row >= 1 for _, _, row in q_rows)
    if "message" in exp:
        assert any(exp["message"] in m for _, m, _ in q_rows), [m for _, m, _ in q_rows]
    if "extra_columns" in exp:
        assert list(extra) == exp["extra_columns"]
    warnings = {c for (c,) in con.execute("SELECT warning_code FROM raw._warnings WHERE source_file = ?", [rel])
                .fetchall()}
    assert warnings == set(exp.get("warnings", []))


def test_no_rows_from_rejected_or_unknown_files(corpus):
    """Data tables only hold rows of files the ledger says were loaded."""
    _, con = corpus
    for source in ("orders", "customers", "messages", "survey_responses", "reviews", "support_tickets", "returns"):
        stray = con.execute(
            f"SELECT count(*) FROM raw.{source} d LEFT JOIN raw._loads l ON l.load_id = d._load_id "
            "WHERE l.status IS DISTINCT FROM 'loaded'"
        ).fetchone()[0]
        assert stray == 0, source


def test_hostile_values_land_as_expected(corpus):
    """Spot checks of what the good rows of hostile files look like once loaded."""
    _, con = corpus
    mixed = dict(con.execute(
        "SELECT order_id, ordered_at::VARCHAR FROM raw.orders WHERE _source_file = 'orders/mixed_dates.csv'"
    ).fetchall())
    assert mixed == {
        "M1": "2024-03-01 10:00:00",
        "M2": "2024-03-01 08:00:00",  # +02:00 converted to UTC
        "M3": "2024-03-01 00:00:00",  # date only
        "M4": "2024-03-01 04:30:00.123456",  # +05:30 with microseconds
        "M5": "2024-03-01 10:00:00",  # no offset: taken as UTC
    }
    assert con.execute(
        "SELECT status FROM raw.orders WHERE _source_file = 'orders/unknown_enum.csv'"
    ).fetchall() == [("paid",)]  # '  PAID ' trimmed and lower-cased
    # The ragged file's good rows keep their real row numbers (1 and 4), around the bad ones.
    assert con.execute(
        "SELECT order_id, _source_row FROM raw.orders WHERE _source_file = 'orders/ragged_rows.csv' ORDER BY 2"
    ).fetchall() == [("R1", 1), ("R4", 4)]
    customers = con.execute(
        "SELECT customer_id, email, phone, country, email_marketing_consent FROM raw.customers ORDER BY 1"
    ).fetchall()
    assert customers == [
        ("K1", "anna@example.com", "+4915112345678", "DE", "subscribed"),
        ("K2", None, "0151 1234 5678", "DE", "subscribed"),
        ("K3", None, None, None, "never_subscribed"),
    ]
    # Personal data is masked in messages: the bad email itself is not printed.
    messages = [m for (m,) in con.execute("SELECT message FROM raw._warnings").fetchall()]
    assert messages and not any("not-an-email" in m or "bob@@example" in m for m in messages)
    drift = con.execute(
        "SELECT order_id, _extra FROM raw.orders WHERE _source_file = 'orders/schema_drift.csv' ORDER BY 1"
    ).fetchall()
    assert drift == [("S1", '{"gift_wrap":"yes","Loyalty Tier":"gold"}'), ("S2", None)]
    huge = con.execute(
        "SELECT order_id, _source_row FROM raw.orders WHERE _source_file = 'orders/huge_field.csv' ORDER BY 2"
    ).fetchall()
    assert huge == [("H1", 1), ("H3", 3)]
    assert con.execute(
        "SELECT created_at::VARCHAR FROM raw.reviews WHERE review_id = 'PF1'"
    ).fetchone() == ("2024-03-01 09:00:00",)
