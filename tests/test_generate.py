"""The synthetic data generator: determinism, contract conformance, consistency, planted effects."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

import pipelines.generate as gen
from pipelines.core.contract import SOURCE_NAMES, load_contract, source
from pipelines.generate import convert_cdnow, generate, journeys
from pipelines.generate.effects import measure_effects, reader_sql, register_views, source_files

END = date(2026, 10, 31)
CDNOW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cdnow" / "CDNOW_master.txt"

# Text shapes in csv files.
TEXT_SHAPES = {
    "timestamp": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "decimal": r"^-?\d+\.\d{2}$",
    "integer": r"^-?\d+$",
    "boolean": r"^(true|false)$",
}
FORMAT_RULES = {
    "email": r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    "phone": r"^\+[1-9]\d{6,14}$",
    "country": r"^[A-Z]{2}$",
}
# optional columns with a format carry some planted bad values, but only a few percent
MAX_BAD_FORMAT_SHARE = 0.06


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """One generated shop shared by the module: big enough for the planted effects to show."""
    out = tmp_path_factory.mktemp("shop")
    return out, generate(out, customers=8000, seed=11, end=END)


def sha256s(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def q(con: duckdb.DuckDBPyConnection, sql: str):
    """First value of a query."""
    return con.execute(sql).fetchone()[0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_arguments_give_identical_files(tmp_path, monkeypatch, fmt):
    # small chunks so the run is split into parts and written by the background writer
    monkeypatch.setattr(gen, "CHUNK_CUSTOMERS", 400)
    first = generate(tmp_path / "a", customers=900, seed=5, fmt=fmt)
    second = generate(tmp_path / "b", customers=900, seed=5, fmt=fmt)
    assert first == second
    a, b = sha256s(tmp_path / "a"), sha256s(tmp_path / "b")
    assert len(a) == 3 * len(SOURCE_NAMES)  # customers-0000 .. -0002 for each source
    assert "customers/customers-0002." + fmt in a
    assert a == b


def test_different_seed_gives_different_files(tmp_path):
    generate(tmp_path / "a", customers=300, seed=1)
    generate(tmp_path / "b", customers=300, seed=2)
    a, b = sha256s(tmp_path / "a"), sha256s(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def contract_problems(out: Path, end: date) -> list[str]:
    """Every way the files under `out` break the data contract (empty list: they conform).

    Generic over pipelines.core.contract: column order, required values, type and text shape,
    allowed values, ranges, formats, no timestamp after `end` (dates, which hold promises,
    at most a week after), primary keys, foreign keys, row checks.
    """
    problems: list[str] = []
    limit = end + timedelta(days=1)
    with duckdb.connect() as con:
        # read every file once: typed tables under the source names, text tables as txt_<source>
        for name in SOURCE_NAMES:
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {reader_sql(out, name)}")
        for name, src in load_contract().items():
            files, fmt = source_files(out, name)
            text = f"txt_{name}"
            con.execute(f"CREATE TEMP TABLE {text} AS SELECT * FROM {reader_sql(out, name, typed=False)}")
            if fmt == "parquet":
                described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({[str(f) for f in files]})").fetchall()
                found = [(r[0], r[1]) for r in described]
                expected = [(c.name, c.duckdb_type.replace(" ", "")) for c in src.columns]
                if [(n, t.replace(" ", "")) for n, t in found] != expected:
                    problems.append(f"{name}: parquet schema {found} != {expected}")
                con.execute(f"DROP TABLE {text}")
                text = name
            else:
                for f in files:
                    header = con.execute(f"DESCRIBE SELECT * FROM read_csv('{f}', header = true, all_varchar = true)"
                                         if fmt.startswith("csv") else
                                         f"DESCRIBE SELECT * FROM read_json('{f}', format = 'newline_delimited')"
                                         ).fetchall()
                    if [r[0] for r in header] != src.column_names:
                        problems.append(f"{f.name}: columns {[r[0] for r in header]} != {src.column_names}")
            rows = q(con, f"SELECT count(*) FROM {text}")
            for col in src.columns:
                problems += column_problems(con, name, text, col, fmt, rows, limit)
            key = ", ".join(src.primary_key)
            dupes = q(con, f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY ALL HAVING count(*) > 1)")
            if dupes:
                problems.append(f"{name}: {dupes} duplicate primary keys ({key})")
            for chk in src.checks:
                n = q(con, f"SELECT count(*) FROM {name} WHERE NOT ({chk.condition})")
                if n:
                    problems.append(f"{name}: {n} rows break {chk.code}: {chk.message}")
    return problems


def column_problems(con, name: str, text: str, col, fmt: str, rows: int, limit: date) -> list[str]:
    """The contract rules of one column, checked on the text (csv, jsonl) or typed (parquet) rows."""
    problems: list[str] = []
    v = f'"{col.name}"'
    s = f"{v}::VARCHAR"

    def bad(condition: str, what: str) -> None:
        n = q(con, f"SELECT count(*) FROM {text} WHERE {v} IS NOT NULL AND ({condition})")
        if n:
            example = q(con, f"SELECT {s} FROM {text} WHERE {v} IS NOT NULL AND ({condition}) LIMIT 1")
            problems.append(f"{name}.{col.name}: {n} rows {what}, e.g. {example!r}")

    if col.required:
        n = q(con, f"SELECT count(*) FROM {text} WHERE {v} IS NULL OR trim({s}) = ''")
        if n:
            problems.append(f"{name}.{col.name}: {n} rows miss a required value")
    bad(f"TRY_CAST({s} AS {col.duckdb_type}) IS NULL", f"are not {col.type}")
    if fmt.startswith("csv"):
        bad(f"NOT regexp_full_match({s}, '{TEXT_SHAPES.get(col.type, '.*')}')", f"are not written as {col.type} text")
    if col.allowed:
        allowed = ", ".join(f"'{a}'" for a in col.allowed)
        bad(f"lower(trim({s})) NOT IN ({allowed})", "have a value that is not allowed")
    numeric = col.type in ("integer", "decimal")  # date bounds: the limits below, and the loader's tests
    if col.min is not None and numeric:
        bad(f"TRY_CAST({s} AS DOUBLE) < {col.min}", f"are below {col.min}")
    if col.max is not None and numeric:
        bad(f"TRY_CAST({s} AS DOUBLE) > {col.max}", f"are above {col.max}")
    if col.type == "timestamp":
        bad(f"TRY_CAST({s} AS TIMESTAMP) >= DATE '{limit}'", f"are after {limit - timedelta(days=1)}")
    if col.type == "date":  # promised delivery dates of the last orders lie a few days ahead
        bad(f"TRY_CAST({s} AS DATE) >= DATE '{limit + timedelta(days=7)}'", "are long after the end")
    if col.format:
        rule = f"NOT regexp_full_match({s}, '{FORMAT_RULES[col.format]}')"
        if col.required:
            bad(rule, f"break the {col.format} format")
        else:
            n = q(con, f"SELECT count(*) FROM {text} WHERE {v} IS NOT NULL AND {rule}")
            if rows and n / rows > MAX_BAD_FORMAT_SHARE:
                problems.append(f"{name}.{col.name}: {n / rows:.1%} break the {col.format} format")
    if col.references:
        ref_src, ref_col = col.references.split(".")
        n = q(con, f"SELECT count(*) FROM {name} WHERE {v} IS NOT NULL AND {v} NOT IN "
                   f"(SELECT {ref_col} FROM {ref_src})")
        if n:
            problems.append(f"{name}.{col.name}: {n} rows do not resolve to {col.references}")
    return problems


def test_every_file_conforms_to_the_contract(shop):
    out, counts = shop
    assert set(counts) == set(SOURCE_NAMES)
    assert all(counts[name] > 0 for name in SOURCE_NAMES), counts
    assert contract_problems(out, END) == []


def test_conformance_check_catches_a_broken_file(tmp_path):
    """The generic check is not vacuous: a file with a bad status and a late timestamp fails."""
    generate(tmp_path, customers=200, seed=3)
    path = tmp_path / "orders" / "orders.csv"
    lines = path.read_text().splitlines()
    first = lines[1].split(",")
    first[3] = "teleported"
    first[2] = "2031-01-01T00:00:00Z"
    path.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    problems = contract_problems(tmp_path, END)
    assert any("orders.status" in p and "not allowed" in p for p in problems), problems
    assert any("orders.ordered_at" in p and "after" in p for p in problems), problems


def test_sources_are_consistent_with_each_other(shop):
    out, counts = shop
    with duckdb.connect() as con:
        register_views(con, out)
        assert [r[0] for r in con.execute("SELECT count(*) FROM customers").fetchall()] == [counts["customers"]]
        # order amounts: subtotal is the sum of lines, total follows from the parts
        assert q(con, """
            SELECT count(*) FROM orders o JOIN (SELECT order_id, sum(quantity * unit_price) s FROM order_items
                                                GROUP BY 1) i USING (order_id)
            WHERE o.subtotal <> i.s OR o.total <> o.subtotal - o.discount + o.shipping + o.tax""") == 0
        assert q(con, "SELECT count(*) FROM orders WHERE order_id NOT IN (SELECT order_id FROM order_items)") == 0
        # status follows the timestamps
        assert q(con, "SELECT count(*) FROM orders WHERE status = 'shipped' AND (delivered_at IS NOT NULL "
                      "OR shipped_at IS NULL)") == 0
        assert q(con, "SELECT count(*) FROM orders WHERE status = 'delivered' AND delivered_at IS NULL") == 0
        assert q(con, "SELECT count(*) FROM orders WHERE status = 'cancelled' AND shipped_at IS NOT NULL") == 0
        assert q(con, "SELECT count(*) FROM orders WHERE shipped_at < ordered_at OR delivered_at < shipped_at "
                      "OR updated_at < ordered_at") == 0
        assert q(con, "SELECT count(*) FROM orders WHERE promised_delivery_date IS NOT NULL AND "
                      "promised_delivery_date - ordered_at::DATE NOT BETWEEN 2 AND 5") == 0
        # returns: of returned or delivered orders, never more than paid, refunded ones have a time
        assert q(con, """
            SELECT count(*) FROM returns r JOIN orders o USING (order_id)
            WHERE o.status NOT IN ('returned', 'delivered') OR r.refund_amount > o.total
               OR r.requested_at < o.delivered_at
               OR (r.status = 'refunded') <> (r.refunded_at IS NOT NULL)""") == 0
        assert q(con, "SELECT count(*) FROM orders WHERE status = 'returned' AND order_id NOT IN "
                      "(SELECT order_id FROM returns WHERE status <> 'rejected')") == 0
        # tickets: status matches resolution, responses in order
        assert q(con, """
            SELECT count(*) FROM support_tickets
            WHERE (status IN ('solved', 'closed')) <> (resolved_at IS NOT NULL)
               OR first_response_at < created_at OR resolved_at < created_at
               OR (first_response_at IS NULL AND agent_replies > 0)
               OR updated_at < created_at""") == 0
        # messages: engagement after sending; consent matches unsubscribe events; no marketing after it
        assert q(con, "SELECT count(*) FROM messages WHERE delivered_at < sent_at OR opened_at < delivered_at "
                      "OR clicked_at < sent_at OR unsubscribed_at < sent_at") == 0
        assert q(con, """
            SELECT count(*) FROM messages m JOIN customers c USING (customer_id)
            WHERE m.unsubscribed_at IS NOT NULL AND (
                (m.channel = 'email' AND c.email_marketing_consent <> 'unsubscribed')
                OR (m.channel = 'sms' AND c.sms_marketing_consent <> 'unsubscribed'))""") == 0
        assert q(con, """
            SELECT count(*) FROM messages m JOIN messages u
              ON u.customer_id = m.customer_id AND u.channel = m.channel AND u.unsubscribed_at IS NOT NULL
            WHERE m.message_type IN ('newsletter', 'promotion', 'winback_offer', 'cross_sell', 'loyalty')
              AND m.sent_at > u.unsubscribed_at""") == 0
        assert q(con, """
            SELECT count(*) FROM messages m JOIN customers c USING (customer_id)
            WHERE m.message_type IN ('newsletter', 'promotion') AND m.channel = 'email'
              AND c.email_marketing_consent = 'never_subscribed'""") == 0
        assert q(con, "SELECT count(*) FROM messages m JOIN customers c USING (customer_id) "
                      "WHERE m.sent_at > c.erasure_requested_at") == 0
        # surveys answer an invite that was sent; reviews are of a product in the order
        assert q(con, """
            SELECT count(*) FROM survey_responses s
            WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.customer_id = s.customer_id
                              AND m.message_type = 'survey_invite' AND m.sent_at = s.sent_at)
               OR s.responded_at < s.sent_at""") == 0
        assert q(con, """
            SELECT count(*) FROM reviews r
            WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = r.order_id
                              AND i.product_id = r.product_id)""") == 0
        # customers: a few bad contact details, test accounts and erasure requests, all planted
        share = con.execute("""
            SELECT avg(CASE WHEN email IS NULL OR NOT regexp_full_match(email, '[^@\\s]+@[^@\\s]+\\.[^@\\s]+')
                       THEN 1.0 ELSE 0.0 END),
                   avg(CASE WHEN is_test_account THEN 1.0 ELSE 0.0 END),
                   count(erasure_requested_at),
                   count(DISTINCT email_marketing_consent)
            FROM customers""").fetchone()
        assert 0.01 < share[0] < 0.04 and 0.002 < share[1] < 0.01 and share[2] > 0 and share[3] == 3
        assert q(con, "SELECT count(*) FROM customers WHERE updated_at < created_at") == 0


def test_planted_effects_are_visible(shop):
    out, _ = shop
    e = measure_effects(out, END)
    complaint = e["repurchase_after_complaint"]
    assert complaint["fast"] > complaint["slow"] and complaint["fast"] > complaint["unresolved"], complaint
    wismo = e["wismo_rate"]
    assert wismo["late"] > 5 * wismo["on_time"], wismo
    assert e["late_delivery_complaint_rate"]["late"] > 0.2
    nps = e["repurchase_after_nps"]
    assert nps["promoter"] > nps["detractor"], nps
    assert e["nps_by_delivery"]["on_time"] > e["nps_by_delivery"]["late"] + 1
    assert e["nov_dec_volume_ratio"] and all(r > 1.3 for r in e["nov_dec_volume_ratio"].values()), e
    guide = e["repurchase_after_how_to_guide"]
    assert guide["guide"] > guide["no_guide"], guide
    unsub = e["unsubscribe_rate_by_monthly_marketing"]
    assert unsub["6+"] > unsub["1-3"], unsub
    orders = e["orders"]
    assert 0.08 <= orders["late_share"] <= 0.13
    assert 0.01 < orders["cancelled_share"] < 0.06
    late_by_carrier = e["late_rate_by_carrier"]
    assert max(late_by_carrier.values()) > 2 * min(late_by_carrier.values())
    assert e["spend"]["corr_first_vs_later_order_value"] > 0.1
    # planted product journeys (pipelines/generate/journeys.py)
    nxt = e["next_product_share"]
    for trigger, partner in journeys.AFFINITIES:
        assert nxt[f"{trigger} -> {partner}"] > 0.3 > 5 * nxt[f"any -> {partner}"], nxt
    by_first = e["repeat_90d_by_first_category"]
    planted = by_first.pop(gen.Params().first_category)
    assert planted > max(by_first.values()) + 0.02, (planted, by_first)


@pytest.mark.parametrize("fmt", ["jsonl", "csv.gz"])
def test_other_formats_load_with_duckdb_readers_and_match_csv(tmp_path, fmt):
    csv_counts = generate(tmp_path / "csv", customers=300, seed=4)
    counts = generate(tmp_path / fmt, customers=300, seed=4, fmt=fmt)
    assert counts == csv_counts
    reader = "read_json_auto" if fmt == "jsonl" else "read_csv_auto"
    with duckdb.connect() as con:
        for name in SOURCE_NAMES:
            path = tmp_path / fmt / name / f"{name}.{fmt}"
            assert q(con, f"SELECT count(*) FROM {reader}('{path}')") == counts[name]
        # same content as the csv files, column by column, once typed through the contract
        for name in ("orders", "messages", "customers"):
            a = f"(SELECT * FROM {reader_sql(tmp_path / 'csv', name)})"
            b = f"(SELECT * FROM {reader_sql(tmp_path / fmt, name)})"
            assert q(con, f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})") == 0, name
    assert contract_problems(tmp_path / fmt, END) == []


def test_parquet_has_native_types(tmp_path):
    generate(tmp_path, customers=200, seed=4, fmt="parquet")
    assert contract_problems(tmp_path, END) == []


def test_clean_removes_earlier_output_and_stale_files_are_refused(tmp_path):
    generate(tmp_path, customers=100, seed=1)
    own = tmp_path / "orders" / "cdnow.csv"
    own.write_text("customer_id,ordered_at,total\n1,2024-01-01,1.00\n")
    with pytest.raises(FileExistsError, match="clean=True"):
        generate(tmp_path, customers=100, seed=1, fmt="parquet")
    generate(tmp_path, customers=100, seed=1)  # same files again: simply overwritten
    generate(tmp_path, customers=100, seed=1, fmt="parquet", clean=True)
    assert sorted(p.name for p in (tmp_path / "orders").iterdir()) == ["cdnow.csv", "orders.parquet"]
    assert not list(tmp_path.rglob(".*.tmp"))


def test_progress_reports_every_source_and_rejects_bad_arguments(tmp_path):
    seen: dict[str, int] = {}
    counts = generate(tmp_path, customers=150, seed=2, progress=lambda stage, rows: seen.__setitem__(stage, rows))
    assert seen.pop("simulate") == 150
    assert seen == counts
    with pytest.raises(ValueError, match="format"):
        generate(tmp_path, customers=10, fmt="xlsx")
    with pytest.raises(ValueError, match="after"):
        generate(tmp_path, customers=10, start=date(2024, 1, 1), end=date(2023, 1, 1))


def test_tiny_and_short_runs_still_write_every_source(tmp_path):
    counts = generate(tmp_path / "it's one", customers=1, seed=1)  # a quote in the path, too
    assert counts["customers"] == 1 and set(counts) == set(SOURCE_NAMES)
    counts = generate(tmp_path / "month", customers=300, seed=1, start=date(2026, 10, 1), end=END)
    assert counts["orders"] > 0
    with duckdb.connect() as con:
        register_views(con, tmp_path / "month")
        assert q(con, "SELECT min(ordered_at) >= DATE '2026-10-01' AND max(ordered_at) < DATE '2026-11-01' "
                      "FROM orders")
    assert contract_problems(tmp_path / "month", END) == []


def test_convert_cdnow_first_rows(tmp_path):
    if not CDNOW.is_file():
        pytest.skip(f"CDNOW dataset not found at {CDNOW}")
    head = tmp_path / "CDNOW_head.txt"
    head.write_text("".join(CDNOW.read_text().splitlines(keepends=True)[:6]))
    assert convert_cdnow(head, tmp_path / "landing") == 5
    lines = (tmp_path / "landing" / "orders" / "cdnow.csv").read_text().splitlines()
    wanted = ("customer_id", "ordered_at", "status", "total")
    assert lines[0].split(",") == [c for c in source("orders").column_names if c in wanted]
    assert lines[1:4] == ["00001,1997-01-01,delivered,11.77", "00002,1997-01-12,delivered,12.00",
                          "00002,1997-01-12,delivered,77.00"]


def test_convert_cdnow_full_file(tmp_path):
    if not CDNOW.is_file():
        pytest.skip(f"CDNOW dataset not found at {CDNOW}")
    assert convert_cdnow(CDNOW, tmp_path) == 69_659
    with duckdb.connect() as con:
        row = con.execute(f"""
            SELECT count(DISTINCT customer_id), min(ordered_at), max(ordered_at), sum(total)
            FROM read_csv('{tmp_path / "orders" / "cdnow.csv"}', types = {{'customer_id': 'VARCHAR'}})""").fetchone()
    assert row[0] == 23_570
    assert (str(row[1]), str(row[2])) == ("1997-01-01", "1998-06-30")
    assert float(row[3]) > 2_000_000
