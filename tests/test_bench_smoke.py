"""The benchmark's two KPI baselines compute the same, correct numbers, so comparing their speed is honest.

Hand-written rows cover the edge cases of the KPI definitions (same-day orders,
cancelled-only customers, a missing status, offsets that move an event into the previous UTC
month, a delivery without a promise, a rejected return, NPS scores 6/7/8/9, tickets never
resolved or reopened). Alone, they must give the numbers computed by hand; mixed into a small
generated shop, `bench/kpi_sql.py` and `bench/kpi_pandas.py` must still agree on every value.
"""

from __future__ import annotations

import sys
import textwrap
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import kpi_pandas, kpi_sql  # noqa: E402
from bench.common import compare_results  # noqa: E402

EDGE_ROWS = {
    "customers": """
        customer_id,email,created_at
        EDGE-1,edge1@example.com,2024-01-05T10:00:00Z
        EDGE-2,edge2@example.com,2024-01-05T10:00:00Z
        EDGE-3,edge3@example.com,2024-01-05T10:00:00Z
        EDGE-4,edge4@example.com,2024-01-05T10:00:00Z
        EDGE-5,edge5@example.com,2024-01-05T10:00:00Z
        EDGE-6,edge6@example.com,2024-01-05T10:00:00Z
    """,
    # EDGE-1: two orders the same day, the second delivered at 00:30+01:00 = the promised day in UTC
    # EDGE-2 and EDGE-6: only cancelled orders (one in odd case and spacing)
    # EDGE-3: 01:30+02:00 on 1 March is 29 February in UTC; delivered without a promised date
    # EDGE-4: no status (placed, so valid) and a date-only timestamp
    "orders": """
        order_id,customer_id,ordered_at,status,total,promised_delivery_date,delivered_at
        EDGE-O1,EDGE-1,2024-02-10T10:00:00Z,delivered,10.00,2024-02-12,2024-02-12T23:59:00Z
        EDGE-O2,EDGE-1,2024-02-10T18:00:00Z,paid,20.50,2024-02-11,2024-02-12T00:30:00+01:00
        EDGE-O3,EDGE-2,2024-02-11T10:00:00Z,cancelled,99.00,2024-02-13,2024-02-13T10:00:00Z
        EDGE-O4,EDGE-3,2024-03-01T01:30:00+02:00,shipped,5.55,,2024-03-05T10:00:00Z
        EDGE-O5,EDGE-4,2024-02-15,,7.00,2024-02-20,
        EDGE-O6,EDGE-6,2024-02-20T10:00:00Z, Cancelled ,100.00,2024-02-25,2024-02-24T10:00:00Z
    """,
    # a rejected return request is not a return
    "returns": """
        return_id,order_id,requested_at,status
        EDGE-R1,EDGE-O1,2024-02-15T10:00:00Z,
        EDGE-R2,EDGE-O4,2024-03-06T10:00:00Z,Rejected
    """,
    "survey_responses": """
        response_id,customer_id,survey_type,score,responded_at
        EDGE-S1,EDGE-1,nps,6,2024-02-12T10:00:00Z
        EDGE-S2,EDGE-1,nps,7,2024-02-12T10:00:00Z
        EDGE-S3,EDGE-3,NPS,8,2024-02-13T10:00:00Z
        EDGE-S4,EDGE-4,nps,9,2024-02-14T10:00:00Z
        EDGE-S5,EDGE-4,csat,3,2024-02-14T10:00:00Z
        EDGE-S6,EDGE-1,csat,4,2024-03-01T00:30:00+01:00
    """,
    "reviews": """
        review_id,customer_id,product_id,rating,created_at
        EDGE-V1,EDGE-1,P-1,5,2024-02-01T00:00:00+01:00
        EDGE-V2,EDGE-3,P-1,2,2024-02-02T00:00:00Z
    """,
    # a complaint never resolved, one resolved at first contact, one reopened, one without a
    # first response, and a wismo question
    "support_tickets": """
        ticket_id,customer_id,ticket_type,category,created_at,first_response_at,resolved_at,agent_replies,reopen_count
        EDGE-T1,EDGE-1,complaint,damaged_item,2024-02-12T10:00:00Z,2024-02-12T12:00:00Z,,1,0
        EDGE-T2,EDGE-1,complaint,late_delivery,2024-02-13T10:00:00Z,2024-02-13T11:00:00Z,2024-02-13T15:00:00Z,1,0
        EDGE-T3,EDGE-3,Complaint,wrong_item,2024-02-14T10:00:00Z,2024-02-14T10:30:00Z,2024-02-16T10:00:00Z,2,1
        EDGE-T4,EDGE-3,complaint,other,2024-02-15T10:00:00Z,,2024-02-15T20:00:00Z,1,0
        EDGE-T5,EDGE-2,question,wismo,2024-02-16T10:00:00Z,2024-02-16T10:05:00Z,2024-02-16T10:05:00Z,1,0
    """,
}


def _write_edge_rows(landing: Path) -> None:
    for name, text in EDGE_ROWS.items():
        folder = landing / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "edge-cases.csv").write_text(textwrap.dedent(text).strip() + "\n")


def _run_both(landing: Path, out: Path) -> dict[str, pd.DataFrame]:
    """Both baselines over `landing`; they must agree. Returns the SQL results."""
    sql_run = kpi_sql.run(out / "sql", landing=landing)
    pandas_run = kpi_pandas.run(landing, out / "pandas")
    assert sql_run["rows"] == pandas_run["rows"]
    assert compare_results(out / "sql", out / "pandas") == []
    return {
        name: pd.read_parquet(out / "sql" / f"{name}.parquet")
        for name in ("kpi_monthly", "retention_cohorts", "customers")
    }


def test_sql_and_pandas_kpis_agree_on_generated_data(tmp_path):
    from pipelines.generate import generate

    # the edge cases alone, against numbers computed by hand from EDGE_ROWS
    _write_edge_rows(tmp_path / "edge")
    edge = _run_both(tmp_path / "edge", tmp_path / "edge-out")
    monthly = edge["kpi_monthly"].assign(month=lambda d: d["month"].astype(str)).set_index("month")
    # the +01:00 review falls in January (UTC), the last order on 29 February: three months
    assert monthly.index.tolist() == ["2024-01-01", "2024-02-01", "2024-03-01"]
    feb = monthly.loc["2024-02-01"]
    expected_feb = {
        "orders": 4,  # cancelled ones excluded; EDGE-O4 (1 March +02:00) is February in UTC
        "customers_ordering": 3,
        "new_customers": 3,
        "revenue": 43.05,
        "avg_order_value": 43.05 / 4,
        "repeat_purchase_rate": 1 / 3,  # EDGE-1's same-day pair makes it a repeat customer
        "on_time_delivery_rate": 1.0,  # EDGE-O2 arrived 23:30 UTC on its promised day
        "nps": 0.0,  # 6 detractor, 7 and 8 passive, 9 promoter
        "csat": 50.0,
        "avg_review_rating": 2.0,
        "complaints": 4,
        "complaint_resolution_rate": 0.75,
        "median_hours_to_first_response": 1.0,
        "median_hours_to_resolution": 10.0,
        "first_contact_resolution_rate": 2 / 3,
        "wismo_per_100_orders": 25.0,
        "return_rate": 0.5,
    }
    for column, value in expected_feb.items():
        assert feb[column] == pytest.approx(value), column
    assert pd.isna(feb["returning_customer_rate"])  # nobody ordered in January
    mar = monthly.loc["2024-03-01"]
    assert mar["orders"] == 0 and pd.isna(mar["avg_order_value"]) and pd.isna(mar["wismo_per_100_orders"])
    assert mar["returning_customer_rate"] == 0.0
    assert mar["return_rate"] == 0.0  # EDGE-O4's only return request was rejected
    assert pd.isna(mar["on_time_delivery_rate"])  # delivered without a promised date
    assert monthly.loc["2024-01-01", "avg_review_rating"] == 5.0
    assert edge["retention_cohorts"].to_dict("records") == [
        {
            "cohort_month": date(2024, 2, 1),
            "months_since_first_order": 0,
            "cohort_size": 3,
            "active_customers": 3,
            "retention_rate": 1.0,
        }
    ]
    customers = edge["customers"].set_index("customer_id").loc[[f"EDGE-{i}" for i in range(1, 7)]]
    assert customers["orders_count"].tolist() == [2, 0, 1, 1, 0, 0]
    assert customers["lifetime_revenue"].tolist() == [30.5, 0, 5.55, 7.0, 0, 0]
    assert customers["complaints_count"].tolist() == [2, 0, 2, 0, 0, 0]
    assert str(customers.loc["EDGE-3", "first_order_at"]) == "2024-02-29 23:30:00"
    assert customers["days_since_last_order"].fillna(-1).tolist() == [19, -1, 0, 14, -1, -1]

    # and a generated shop with the edge rows mixed in
    landing = tmp_path / "landing"
    generate(landing, customers=300, seed=7)
    _write_edge_rows(landing)
    mixed = _run_both(landing, tmp_path / "mixed-out")
    assert len(mixed["customers"]) >= 306
    assert len(mixed["kpi_monthly"]) >= 12
    assert mixed["kpi_monthly"]["orders"].sum() > 300


MACHINE = {"cpu": "x", "cores": 2, "memory_gb": 24, "os": "x", "python": "3.11", "versions": {}}


def _record(size: str = "L", customers: int = 1_000_000) -> dict:
    """A results record as `bench.run` writes it, with a full run, floors and a daily run."""
    ok = {"ok": True, "peak_mb": 4000.0}
    return {
        "size": size,
        "customers": customers,
        "started_at": "2026-11-23T19:00:00+00:00",
        "machine": MACHINE,
        "speed_reference_seconds": 1.3,
        "commit": "abc1234",
        "steps": {"full_run": {**ok, "seconds": 170.0}, "incremental_run": {**ok, "seconds": 50.0}},
        "stages": [{"stage": "ingest", "seconds": 30.0}, {"stage": "dbt", "seconds": 60.0},
                   {"stage": "train", "seconds": 40.0}, {"stage": "score", "seconds": 20.0},
                   {"stage": "publish", "seconds": 10.0}],
        "floors": {"ingest": {**ok, "seconds": 25.0, "wall_seconds": 27.0},
                   "train": {**ok, "seconds": 8.0, "wall_seconds": 12.0},
                   "score": {**ok, "seconds": 2.0, "wall_seconds": 9.0},
                   "publish": {**ok, "seconds": 4.0, "wall_seconds": 5.0}},
        "comparison": {"dbt_seconds": 60.0, "sql_csv_seconds": 3.0, "pandas_seconds": 13.5,
                       "pandas_vs_sql_csv": 4.5},
        "dbt_vs_hand_sql": {
            "steps": {"dbt build (KPI marts)": {"seconds": 50.0, "peak_mb": 900},
                      "hand SQL": {"seconds": 40.0, "peak_mb": 800}},
            "ratio_kpi_build_to_hand_sql": 1.25,
            "mismatches": {"kpi_monthly": 0, "fct_orders": 0},
        },
    }


def _rows(result: dict) -> dict:
    from bench.run import target_rows

    return {row["target"].split(" (")[0].split(":")[0]: row for row in target_rows(result)}


def test_sql_kpis_read_parquet_landing_files_as_they_read_csv(tmp_path):
    """`bench.run --landing-format parquet` (XL's disk): the hand-written SQL reference reads the
    same shop's Parquet files to the same KPIs as its CSV files."""
    from pipelines.generate import generate

    for fmt in ("csv", "parquet"):
        generate(tmp_path / fmt / "landing", customers=300, seed=7, fmt=fmt)
        kpi_sql.run(tmp_path / fmt / "out", landing=tmp_path / fmt / "landing")
    assert list((tmp_path / "parquet" / "landing" / "orders").glob("*.parquet"))
    assert compare_results(tmp_path / "csv" / "out", tmp_path / "parquet" / "out") == []


def test_report_judges_each_stage_against_its_floor_at_l():
    from bench.run import render_markdown

    rows = _rows(_record())
    assert rows["full run ≤ 180 s"]["ok"] is True and rows["full run peak ≤ 6 GB"]["ok"] is True
    # ingest 30 s against a bare read_csv of 25 s: 1.2×, within 1.5×
    assert (rows["ingest ≤ 1.5× its floor"]["floor"], rows["ingest ≤ 1.5× its floor"]["ratio"]) == ("25.00 s", "1.20×")
    assert rows["ingest ≤ 1.5× its floor"]["ok"] is True
    # dbt is judged on `dbt build` of the same marts (50 s), not on the whole stage (60 s)
    dbt = rows["dbt ≤ 1.3× its floor"]
    assert (dbt["measured"], dbt["floor"], dbt["ratio"], dbt["ok"]) == ("50.0 s", "40.00 s", "1.25×", True)
    # training, scoring and publish: ratio shown, no target
    assert rows["train against its floor"]["ratio"] == "5.00×" and rows["train against its floor"]["ok"] is None
    assert rows["score against its floor"]["ratio"] == "10.00×" and rows["publish against its floor"]["ok"] is None
    assert rows["daily run ≤ 45 s"]["ok"] is False  # 50 s
    # retired targets are gone; pandas against the hand-written SQL stays, for reference only
    assert not any("pandas" in t and "dbt" in t for t in rows)
    assert rows["for reference only"]["ratio"] == "4.50×" and rows["for reference only"]["ok"] is None

    slow = _record()
    slow["dbt_vs_hand_sql"]["mismatches"]["fct_orders"] = 3  # different numbers never meet a target
    slow["floors"]["ingest"]["seconds"] = 15.0  # 2×
    rows = _rows(slow)
    dbt = rows["dbt ≤ 1.3× its floor"]
    assert dbt["ok"] is False and "(results differ)" in dbt["measured"]
    assert rows["ingest ≤ 1.5× its floor"]["ok"] is False
    report = render_markdown([slow])
    assert "Rows that differ, per mart: {'fct_orders': 3}." in report
    assert "| L | ingest ≤ 1.5× its floor | 30.0 s | 15.00 s | 2.00× | ✘ |" in report


def test_targets_are_judged_only_at_their_size():
    s = _rows(_record("S", 10_000))
    assert all(row["ok"] is None for row in s.values())  # S shows the numbers, judges nothing
    assert s["ingest against its floor"]["ratio"] == "1.20×"
    xl = _record("XL", 10_000_000)
    xl["steps"]["full_run"] = {"ok": True, "seconds": 1700.0, "peak_mb": 17_000.0}
    xl["dashboard"] = {"pages": [{"page": "overview", "filters": "all", "cold": 2.0, "warm": 0.4, "max": 0.5},
                                 {"page": "customer_360", "filters": "all", "cold": 2.0, "warm": 1.2, "max": 1.3}]}
    rows = _rows(xl)
    assert rows["full run ≤ 30 min"]["ok"] is True and rows["full run peak ≤ 16 GB"]["ok"] is False
    page = rows["every dashboard page ≤ 1 s warm"]
    assert page["ok"] is False and "customer_360" in page["measured"]
    assert rows["ingest against its floor"]["ok"] is None  # the floor ratios are judged at L


def test_report_shows_the_trend_and_renders_results_written_before_floors():
    from bench.run import key_numbers, render_markdown

    old = _record()
    for key in ("floors", "commit", "dbt_vs_hand_sql"):  # as the code before floors wrote it
        old.pop(key)
    new = _record()
    new["steps"]["full_run"]["seconds"] = 150.0
    new["previous"] = key_numbers(old)
    assert new["previous"]["full_run_seconds"] == 170.0 and new["previous"]["stages"]["ingest"] == 30.0
    rows = _rows(new)
    assert rows["full run ≤ 180 s"]["previous → now"] == "170.0 → 150.0 s"
    assert rows["dbt ≤ 1.3× its floor"]["previous → now"] == "– → 50.0 s"  # not measured then
    # the old record alone: missing measurements are –, never an error
    report = render_markdown([old, {**new, "size": "M", "customers": 100_000}])
    assert "| L | ingest ≤ 1.5× its floor | 30.0 s | – | – | – | – |" in report
    assert "| full run s | 170.0 | 150.0 | 0.88× |" in report  # M's trend table
    assert "| full run | 1,500.0 | 170.0 | – |" in report  # seconds per million customers, M and L


def test_report_names_the_slowest_steps_of_each_run_from_its_output(tmp_path):
    from bench.run import render_markdown, step_seconds
    from pipelines.progress import step_end_line

    log = tmp_path / "full_run.log"
    log.write_text(  # the lines `retain run` prints, among others that must not count
        "\n".join(["▶ raw__customers", step_end_line("raw__customers", True, 26.54),
                   "  dbt's output: /x/logs/dbt-1.log", step_end_line("retain_dbt_models", True, 97.0),
                   step_end_line("ml__churn_model", False, 3.2),
                   step_end_line("published__dashboard_snapshot", True, 0.9),
                   "│ dbt │ 55 │ done in 1 s │"]) + "\n",
        encoding="utf-8",
    )
    assert step_seconds(log) == {"raw__customers": 26.5, "retain_dbt_models": 97.0,
                                 "published__dashboard_snapshot": 0.9}
    assert step_seconds(tmp_path / "missing.log") == {} and step_seconds(None) == {}
    record = {**_record(), "step_seconds": step_seconds(log),
              "incremental_stages": [{"stage": "score", "seconds": 20.0}],
              "incremental_step_seconds": {"ml__churn_scores": 19.5}}
    report = render_markdown([record])
    assert ("Slowest steps (Dagster ops, from the run's output): `retain_dbt_models` 97.0 s, "
            "`raw__customers` 26.5 s, `published__dashboard_snapshot` 0.9 s.") in report
    assert "Slowest steps (Dagster ops, from the run's output): `ml__churn_scores` 19.5 s." in report


def test_committed_results_hold_no_path_of_the_machine_that_ran_them(tmp_path):
    from bench.run import ROOT, portable_json

    out = tmp_path / "bench"
    result = {"steps": {"full_run": {"log": str(out / "l" / "bench-logs" / "full_run.log")}},
              "script": str(ROOT / "bench" / "run.py")}
    text = portable_json(result, out)
    assert str(tmp_path) not in text and str(ROOT) not in text
    assert "<bench data>/l/bench-logs/full_run.log" in text and "./bench/run.py" in text
    for committed in (ROOT / "bench" / "results").rglob("*.json"):
        assert "/work/" not in committed.read_text() and str(ROOT) not in committed.read_text(), committed


def test_references_count_one_customer_per_person_like_the_marts(tmp_path):
    """Customers sharing a normalised email (or, without an email, an E.164 phone) are one
    customer in the marts (raw._customer_identity, read by staging); the references agree."""
    import duckdb

    from pipelines.generate import generate
    from pipelines.ingest import ingest

    landing = tmp_path / "landing"
    generate(landing, customers=300, seed=7)
    con = duckdb.connect()
    people = con.execute(
        f"""select customer_id, email, phone from read_csv('{landing}/customers/*.csv', all_varchar = true)
        where email like '%@%.%' and phone like '+%' order by customer_id limit 3"""
    ).fetchall()
    (a, a_email, _), (b, _, b_phone), (c, c_email, _) = people
    # DUP-1: A's email in other case and spacing; DUP-2: no email, B's phone written as 00...;
    # DUP-3 and DUP-4: C's email twice more; DUP-5: an invalid email and no phone, alone
    _write(landing / "customers" / "dupes.csv", f"""
        customer_id,email,phone
        DUP-1,"  {a_email.upper()} ",
        DUP-2,,00{b_phone[1:]}
        DUP-3,{c_email},
        DUP-4,{c_email.upper()},+1 613-555-0127
        DUP-5,not-an-email,
    """)
    _write(landing / "orders" / "dupes.csv", """
        order_id,customer_id,ordered_at,status,total,promised_delivery_date,delivered_at
        DUP-O1,DUP-1,2020-01-10T10:00:00Z,delivered,10.00,2020-01-12,2020-01-11T10:00:00Z
        DUP-O2,DUP-2,2020-01-11T10:00:00Z,paid,20.00,,
        DUP-O3,DUP-3,2020-02-11T10:00:00Z,paid,30.00,,
        DUP-O4,DUP-4,2020-02-12T10:00:00Z,paid,40.00,,
        DUP-O5,DUP-5,2020-02-13T10:00:00Z,paid,50.00,,
    """)
    _write(landing / "support_tickets" / "dupes.csv", """
        ticket_id,customer_id,ticket_type,category,created_at,first_response_at,resolved_at,agent_replies,reopen_count
        DUP-T1,DUP-1,complaint,other,2020-01-12T10:00:00Z,2020-01-12T11:00:00Z,,1,0
    """)
    warehouse = tmp_path / "warehouse.duckdb"
    ingest(landing=landing, warehouse=warehouse)

    # what the marts count: the loader's identity table, as staging reads every customer_id
    wh = duckdb.connect(str(warehouse), read_only=True)
    loader = dict(wh.execute("select customer_key, customer_id from raw._customer_identity").fetchall())
    wh.close()
    assert {k: loader[k] for k in ("DUP-1", "DUP-2", "DUP-3", "DUP-4", "DUP-5")} == {
        "DUP-1": min(a, "DUP-1"), "DUP-2": min(b, "DUP-2"), "DUP-3": min(c, "DUP-3"), "DUP-4": min(c, "DUP-3"),
        "DUP-5": "DUP-5",
    }
    marts_like = tmp_path / "marts-like"
    mcon = kpi_sql.connect()
    kpi_sql.load_warehouse(mcon, warehouse)
    mcon.execute(f"attach '{warehouse}' as wh (read_only)")
    mcon.execute("create table identity as select customer_key, customer_id from wh.raw._customer_identity")
    mcon.execute("detach wh")
    mcon.execute(kpi_sql.APPLY_IDENTITY_SQL)
    kpi_sql.compute(mcon)
    marts_like.mkdir()
    for name in ("kpi_monthly", "retention_cohorts", "customers"):
        mcon.execute(f"copy {name} to '{marts_like / name}.parquet' (format parquet)")
    mcon.close()

    # the references re-implement the rule: over the CSV files, over the raw tables, in pandas
    ours = _run_both(landing, tmp_path / "out")
    raw = kpi_sql.run(tmp_path / "out" / "raw", warehouse=warehouse)
    assert compare_results(tmp_path / "out" / "sql", tmp_path / "out" / "raw") == []
    assert compare_results(tmp_path / "out" / "sql", marts_like) == []
    assert len(ours["customers"]) == raw["rows"]["customers"] == len(set(loader.values())) == 300 + 5 - 4
    merged = ours["customers"].set_index("customer_id")
    assert "DUP-1" not in merged.index and "DUP-4" not in merged.index
    assert merged.loc[min(c, "DUP-3"), "orders_count"] >= 2 and merged.loc[min(a, "DUP-1"), "complaints_count"] >= 1
    jan = ours["kpi_monthly"].assign(month=lambda d: d["month"].astype(str)).set_index("month").loc["2020-01-01"]
    assert jan["customers_ordering"] == 2 and jan["new_customers"] == 2


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).strip() + "\n")


def test_reference_identity_over_raw_platform_tables_matches_the_loaders(tmp_path):
    """Over the raw tables the SQL reference applies the platform part of the rule too (platform
    ids, Shopify, Klaviyo and helpdesk keys): same resolved id per key as raw._customer_identity."""
    import duckdb

    from pipelines.generate.platforms import generate_platforms
    from pipelines.ingest import ingest

    generate_platforms(tmp_path / "landing", customers=200, seed=7)
    warehouse = tmp_path / "warehouse.duckdb"
    ingest(landing=tmp_path / "landing", warehouse=warehouse)
    con = kpi_sql.connect()
    kpi_sql.load_warehouse(con, warehouse)
    con.execute(kpi_sql.IDENTITY_SQL)
    ours = dict(con.execute("select customer_key, customer_id from identity").fetchall())
    con.close()
    wh = duckdb.connect(str(warehouse), read_only=True)
    loader = dict(wh.execute("select customer_key, customer_id from raw._customer_identity").fetchall())
    platforms = {r[0] for r in wh.execute("select split_part(_source_file, '/', 1) from raw.customers").fetchall()}
    wh.close()
    assert {"shopify", "klaviyo"} <= platforms
    assert len(set(loader.values())) < len(loader)  # some keys do merge
    assert ours == loader


def test_floors_copy_what_publish_copies_and_read_every_landing_file(tmp_path):
    import duckdb

    from bench import floors

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        for schema in ("raw", "marts", "ml", "exports"):
            con.execute(f"create schema {schema}")
        con.execute("create table raw.orders as select range as id from range(5)")  # not published
        con.execute("create table marts.fct_orders as select range as id from range(7)")
        con.execute("create view marts.fct_messages as select 1 as id")  # left out of snapshots
        con.execute("create view marts.fct_customer_events as select * from marts.fct_orders")  # copied as a table
        con.execute("create table ml.churn_scores as select range as id from range(3)")
        con.execute("create table exports.outreach_lists as select range as id from range(2)")
    out = floors.floor_publish(warehouse, tmp_path / "copy.duckdb")
    assert (out["tables"], out["rows"]) == (4, 7 + 7 + 3 + 2)
    assert out["seconds"] > 0 and not (tmp_path / "copy.duckdb").exists()

    landing = tmp_path / "landing"
    for source, rows in (("orders", 3), ("customers", 2)):
        (landing / source).mkdir(parents=True)
        (landing / source / "a.csv").write_text("id,x\n" + "".join(f"{i},{i}\n" for i in range(rows)))
    (landing / "orders" / "b.csv").write_text("id,x\n9,9\n")
    out = floors.floor_ingest(landing, tmp_path / "ingest.duckdb")
    assert (out["files"], out["rows"], out["format"]) == (3, 3 + 1 + 2, "csv")
