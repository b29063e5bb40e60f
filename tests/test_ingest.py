"""Ingestion without Dagster: typing, lineage, formats, idempotency, atomicity, reports."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

import pipelines.ingest.loader as loader
from pipelines.core.config import PROJECT_ROOT
from pipelines.core.contract import load_contract, source
from pipelines.ingest import (
    connect,
    ensure_schema,
    format_summary,
    ingest,
    ingest_file,
    quarantine_report,
)

ORDERS_HEADER = "order_id,customer_id,ordered_at,status,currency,total,updated_at"
ORDER_ROWS = [
    "O1,C1,2024-01-05T10:00:00Z,paid,EUR,19.90,2024-01-05T10:00:00Z",
    "O2,C1,2024-02-01 09:30:00+01:00,Delivered,EUR,5.00,2024-02-03T08:00:00Z",
    "O3,C2,2024-02-10,cancelled,EUR,0,2024-02-10T00:00:00Z",
]


def write(path: Path, text: str) -> Path:
    """Write a landing file (creating its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A data folder of its own, found through RETAIN_DATA_DIR as in production."""
    for var in list(os.environ):
        if var.startswith("RETAIN_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(loader, "FAULT_HOOK", None)
    landing = tmp_path / "landing"
    landing.mkdir()
    return landing, tmp_path / "warehouse.duckdb"


def rows(warehouse: Path, sql: str, params=None) -> list[tuple]:
    """Run a query on the warehouse read-only."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def invariant_holds(warehouse: Path) -> None:
    """Every ledger row balances, and tables hold exactly what the ledger says."""
    assert rows(warehouse, "SELECT count(*) FROM raw._loads WHERE rows_read <> rows_loaded + rows_quarantined") == [
        (0,)
    ]
    for name in load_contract():
        (in_table,) = rows(warehouse, f"SELECT count(*) FROM raw.{name}")[0]
        (ledger,) = rows(
            warehouse, "SELECT coalesce(sum(rows_loaded), 0) FROM raw._loads WHERE source = ? AND status = 'loaded'",
            [name],
        )[0]
        assert in_table == ledger, name
    (quarantined,) = rows(warehouse, "SELECT count(*) FROM raw._quarantine")[0]
    assert quarantined == rows(warehouse, "SELECT coalesce(sum(rows_quarantined), 0) FROM raw._loads")[0][0]


def test_paths_come_from_settings_and_rows_load_typed_with_lineage(env):
    landing, warehouse = env
    write(landing / "orders" / "2024-01.csv", "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n")
    results = ingest()  # no paths: RETAIN_DATA_DIR decides
    assert warehouse.exists()
    [r] = results
    assert (r.source, r.file, r.status, r.rows_read, r.rows_loaded) == ("orders", "orders/2024-01.csv", "loaded", 3, 3)
    types = dict(rows(warehouse, "SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = 'raw' AND table_name = 'orders'"))
    for col in source("orders").columns:
        assert types[col.name].replace(" ", "") == col.duckdb_type.replace(" ", "")
    assert types["_load_id"] == "BIGINT" and types["_source_row"] == "BIGINT" and types["_loaded_at"] == "TIMESTAMP"
    got = rows(warehouse, "SELECT order_id, ordered_at::VARCHAR, status, total::VARCHAR, _source_file, _source_row, "
                          "_load_id, _extra, _loaded_at IS NOT NULL FROM raw.orders ORDER BY _source_row")
    assert got == [
        ("O1", "2024-01-05 10:00:00", "paid", "19.90", "orders/2024-01.csv", 1, r.load_id, None, True),
        ("O2", "2024-02-01 08:30:00", "delivered", "5.00", "orders/2024-01.csv", 2, r.load_id, None, True),
        ("O3", "2024-02-10 00:00:00", "cancelled", "0.00", "orders/2024-01.csv", 3, r.load_id, None, True),
    ]
    ledger = rows(warehouse, "SELECT load_id, source, file_path, file_size, sha256, format, status, rows_read, "
                             "rows_loaded, rows_quarantined, started_at <= finished_at FROM raw._loads")
    size = (landing / "orders" / "2024-01.csv").stat().st_size
    assert ledger == [(r.load_id, "orders", "orders/2024-01.csv", size, r.sha256, "csv", "loaded", 3, 3, 0, True)]
    # Every source has its table, even without files, so dbt sources always resolve.
    tables = {t for (t,) in rows(warehouse, "SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'raw'")}
    assert set(load_contract()) | {"_loads", "_quarantine", "_rejected_files", "_warnings"} <= tables


def test_every_format_loads_the_same_rows(env):
    landing, warehouse = env
    csv_text = "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n"
    write(landing / "orders" / "a.csv", csv_text)
    with gzip.open(landing / "orders" / "b.csv.gz", "wt") as fh:
        fh.write(csv_text.replace("O", "B"))
    header = ORDERS_HEADER.split(",")
    with open(landing / "orders" / "c.jsonl", "w") as fh:
        for line in ORDER_ROWS:
            record = dict(zip(header, line.replace("O", "J").split(","), strict=True))
            record["total"] = float(record["total"])  # JSON numbers, not strings
            fh.write(json.dumps(record) + "\n")
    shutil.copy(landing / "orders" / "c.jsonl", landing / "orders" / "d.ndjson")
    (landing / "orders" / "d.ndjson").write_text((landing / "orders" / "d.ndjson").read_text().replace("J", "N"))
    with duckdb.connect() as con:
        con.execute(f"""COPY (SELECT replace(order_id, 'O', 'P') AS order_id, * EXCLUDE (order_id)
                             FROM read_csv('{landing / "orders" / "a.csv"}', all_varchar = true))
                        TO '{landing / "orders" / "e.parquet"}' (FORMAT parquet)""")
    results = ingest(landing=landing, warehouse=warehouse)
    assert [(r.file, r.status, r.rows_loaded, r.rows_quarantined) for r in results] == [
        (f"orders/{name}", "loaded", 3, 0) for name in ("a.csv", "b.csv.gz", "c.jsonl", "d.ndjson", "e.parquet")
    ]
    per_file = rows(warehouse, """
        SELECT _source_file, list((customer_id, ordered_at, status, currency, total, updated_at, _source_row)
                                  ORDER BY _source_row)
        FROM raw.orders GROUP BY 1""")
    contents = {content.__repr__() for _, content in per_file}
    assert len(per_file) == 5 and len(contents) == 1
    invariant_holds(warehouse)


def test_second_run_loads_nothing_and_records_nothing(env):
    landing, warehouse = env
    write(landing / "orders" / "o.csv", "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n")
    write(landing / "customers" / "c.csv", "customer_id,email\nC1,a@example.com\nC2,b@example.com\n")
    write(landing / "orders" / "broken.csv", "")
    first = ingest(landing=landing, warehouse=warehouse)
    assert sorted(r.status for r in first) == ["loaded", "loaded", "rejected"]
    before = rows(warehouse, "SELECT count(*) FROM raw._loads")
    second = ingest(landing=landing, warehouse=warehouse)
    assert [r.status for r in second] == ["unchanged"] * 3
    assert sum(r.rows_loaded for r in second) == 0
    assert rows(warehouse, "SELECT count(*) FROM raw._loads") == before
    assert rows(warehouse, "SELECT count(*) FROM raw.orders") == [(3,)]
    # Touching a file (new mtime, same bytes) still loads nothing: the sha256 decides.
    os.utime(landing / "orders" / "o.csv", (1e9, 1e9))
    third = ingest(sources=["orders"], landing=landing, warehouse=warehouse)
    assert {r.status for r in third} == {"unchanged"}
    assert rows(warehouse, "SELECT count(*) FROM raw._loads") == before


def test_same_content_under_a_new_name_is_skipped_and_recorded_once(env):
    landing, warehouse = env
    text = "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n"
    write(landing / "orders" / "2024-01.csv", text)
    ingest(landing=landing, warehouse=warehouse)
    write(landing / "orders" / "copy" / "2024-01 (1).csv", text)
    [old, dup] = ingest(landing=landing, warehouse=warehouse)
    assert old.status == "unchanged"
    assert dup.status == "skipped_duplicate" and "orders/2024-01.csv" in dup.message
    assert rows(warehouse, "SELECT status, rows_read FROM raw._loads WHERE file_path = ?",
                ["orders/copy/2024-01 (1).csv"]) == [("skipped_duplicate", 0)]
    assert [r.status for r in ingest(landing=landing, warehouse=warehouse)] == ["unchanged", "unchanged"]
    assert rows(warehouse, "SELECT count(*) FROM raw._loads") == [(2,)]
    assert rows(warehouse, "SELECT count(*) FROM raw.orders") == [(3,)]


def test_changed_file_loads_as_new_version_and_latest_version_rule(env):
    landing, warehouse = env
    path = write(landing / "orders" / "orders.csv", "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n")
    ingest(landing=landing, warehouse=warehouse)
    changed = [*ORDER_ROWS[:2], "O3,C2,2024-02-10,delivered,EUR,12.00,2024-02-12T00:00:00Z",
               "O4,C3,2024-03-01,paid,EUR,7.00,2024-03-01T00:00:00Z"]
    path.write_text("\n".join([ORDERS_HEADER, *changed]) + "\n")
    [r] = ingest(landing=landing, warehouse=warehouse)
    assert (r.status, r.rows_loaded) == ("loaded", 4)
    assert rows(warehouse, "SELECT count(*), count(DISTINCT _load_id) FROM raw.orders") == [(7, 2)]
    # The rule staging applies: per key the highest updated_at, then the latest load and row.
    latest = rows(warehouse, """
        SELECT order_id, status, total::VARCHAR FROM raw.orders
        QUALIFY row_number() OVER (PARTITION BY order_id
                                   ORDER BY updated_at DESC NULLS LAST, _load_id DESC, _source_row DESC) = 1
        ORDER BY order_id""")
    assert latest == [("O1", "paid", "19.90"), ("O2", "delivered", "5.00"), ("O3", "delivered", "12.00"),
                      ("O4", "paid", "7.00")]
    # reload=True loads every file again as a new version.
    [again] = ingest(landing=landing, warehouse=warehouse, reload=True)
    assert (again.status, again.rows_loaded) == ("loaded", 4)
    invariant_holds(warehouse)


def test_transaction_log_gets_stable_derived_order_ids(env):
    landing, warehouse = env
    write(landing / "orders" / "log-a.csv", "customer_id,ordered_at,total\nC1,2024-01-01,10\nC1,2024-01-01,10\n"
                                            "C2,2024-01-02,5\n")
    # The same purchases exported again in another order, with different number formatting.
    write(landing / "orders" / "log-b.csv", "customer_id,ordered_at,total\nC2,2024-01-02T00:00:00Z,5.00\n"
                                            "C1,2024-01-01,10.0\nC1,2024-01-01,10\n")
    ingest(landing=landing, warehouse=warehouse)
    ids = rows(warehouse, "SELECT _source_file, list(order_id ORDER BY order_id) FROM raw.orders GROUP BY 1 ORDER BY 1")
    assert len(ids) == 2 and ids[0][1] == ids[1][1] and len(set(ids[0][1])) == 3
    assert all(len(i) == 32 for i in ids[0][1])


@pytest.mark.parametrize("stage", ["after_data_insert", "after_quarantine_insert", "before_commit"])
def test_failure_inside_a_file_leaves_nothing_and_the_rerun_completes(env, monkeypatch, stage):
    landing, warehouse = env
    write(landing / "orders" / "a.csv", "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n")
    write(landing / "orders" / "b.csv", f"{ORDERS_HEADER}\nB1,C1,2024-01-01,paid,EUR,-1,\nB2,C2,2024-01-01,,EUR,2,\n")

    def boom(at: str) -> None:
        if at == stage:  # a resource error fails the run (any other error rejects the file)
            raise MemoryError(f"simulated crash at {at}")

    ingest(sources=["customers"], landing=landing, warehouse=warehouse)  # schema exists before the crash
    monkeypatch.setattr(loader, "FAULT_HOOK", boom)
    with pytest.raises(MemoryError, match="simulated crash"):
        ingest(landing=landing, warehouse=warehouse)
    for table in ("raw.orders", "raw._quarantine", "raw._loads", "raw._rejected_files"):
        assert rows(warehouse, f"SELECT count(*) FROM {table}") == [(0,)], table
    monkeypatch.setattr(loader, "FAULT_HOOK", None)
    results = ingest(landing=landing, warehouse=warehouse)
    assert [(r.file, r.status, r.rows_loaded, r.rows_quarantined) for r in results] == [
        ("orders/a.csv", "loaded", 3, 0), ("orders/b.csv", "loaded", 1, 1)]
    invariant_holds(warehouse)


def test_one_unreadable_file_never_stops_the_batch(env):
    """A CSV whose lines end in CR CR LF is rejected on its own; the other files of the batch load."""
    landing, warehouse = env
    for i in range(22):
        row = f"D{i},C{i},2024-01-05T10:00:00Z,paid,EUR,{i}.50,"
        write(landing / "orders" / f"day-{i:02d}.csv", f"{ORDERS_HEADER}\n{row}\n")
    bad = landing / "orders" / "day-10b.csv"
    bad.write_bytes(f"{ORDERS_HEADER}\r\r\nX1,C1,2024-01-05T10:00:00Z,paid,EUR,1.00,\r\r\n".encode())
    results = ingest(landing=landing, warehouse=warehouse)
    assert [r.status for r in results].count("loaded") == 22
    [rejected] = [r for r in results if r.status == "rejected"]
    assert rejected.file == "orders/day-10b.csv" and rejected.reason_code == "unreadable"
    assert rows(warehouse, "SELECT count(*) FROM raw.orders") == [(22,)]
    [(path, code, message)] = rows(warehouse, "SELECT file_path, reason_code, message FROM raw._rejected_files")
    assert (path, code) == ("orders/day-10b.csv", "unreadable")
    assert "day-10b.csv" in message and "CR CR LF" in message
    assert rows(warehouse, "SELECT status, error IS NOT NULL FROM raw._loads WHERE file_path = ?", [path]) == [
        ("rejected", True)]
    invariant_holds(warehouse)
    assert [r.status for r in ingest(landing=landing, warehouse=warehouse)] == ["unchanged"] * 23


def _fail_inside_the_transaction(monkeypatch, error: type[BaseException] | None, file: str) -> None:
    """Make the load of `file` run an SQL statement that fails (so DuckDB aborts the open
    transaction), then raise `error` instead of DuckDB's error if given."""
    original = loader._mark_duplicates

    def failing(con, src, table, load_id):
        sql = f"SELECT bool_or(_source_file = '{file}') FROM {table} WHERE _load_id = {load_id}"
        if con.execute(sql).fetchone()[0]:
            try:
                con.execute("SELECT CAST('not a number' AS INTEGER)")  # aborts the transaction
            except duckdb.Error:
                if error is None:
                    raise
                raise error("simulated failure") from None
        return original(con, src, table, load_id)

    monkeypatch.setattr(loader, "_mark_duplicates", failing)


def test_an_error_that_aborts_the_transaction_rejects_that_file_alone(env, monkeypatch):
    landing, warehouse = env
    write(landing / "orders" / "a.csv", "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n")
    write(landing / "orders" / "b.csv", f"{ORDERS_HEADER}\nB1,C1,2024-01-01,paid,EUR,1,\n")
    write(landing / "orders" / "c.csv", f"{ORDERS_HEADER}\nC1,C3,2024-01-01,paid,EUR,2,\n")
    _fail_inside_the_transaction(monkeypatch, None, "orders/b.csv")
    results = ingest(landing=landing, warehouse=warehouse)
    assert [(r.file, r.status, r.reason_code) for r in results] == [
        ("orders/a.csv", "loaded", None), ("orders/b.csv", "rejected", "load_failed"), ("orders/c.csv", "loaded", None)]
    assert "orders/b.csv" in results[1].message and "ConversionException" in results[1].message
    rejected = rows(warehouse, "SELECT file_path, reason_code FROM raw._rejected_files")
    assert rejected == [("orders/b.csv", "load_failed")]
    assert rows(warehouse, "SELECT count(*) FROM raw.orders WHERE _source_file = 'orders/b.csv'") == [(0,)]
    invariant_holds(warehouse)


@pytest.mark.parametrize("error", [MemoryError, duckdb.OutOfMemoryException, KeyboardInterrupt])
def test_a_resource_error_fails_the_run_and_the_next_run_loads_the_file(env, monkeypatch, error):
    landing, warehouse = env
    write(landing / "orders" / "a.csv", "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n")
    write(landing / "orders" / "b.csv", f"{ORDERS_HEADER}\nB1,C1,2024-01-01,paid,EUR,1,\n")
    _fail_inside_the_transaction(monkeypatch, error, "orders/b.csv")
    with pytest.raises(error, match="simulated failure"):
        ingest(landing=landing, warehouse=warehouse)
    assert rows(warehouse, "SELECT file_path FROM raw._loads") == [("orders/a.csv",)]
    assert rows(warehouse, "SELECT count(*) FROM raw._rejected_files") == [(0,)]
    monkeypatch.undo()
    monkeypatch.setattr(loader, "FAULT_HOOK", None)
    results = ingest(landing=landing, warehouse=warehouse)
    assert [(r.file, r.status) for r in results] == [("orders/a.csv", "unchanged"), ("orders/b.csv", "loaded")]
    invariant_holds(warehouse)


def test_killed_process_mid_file_leaves_nothing_and_the_rerun_completes(env):
    landing, warehouse = env
    write(landing / "orders" / "a.csv", "\n".join([ORDERS_HEADER, *ORDER_ROWS]) + "\n")
    script = textwrap.dedent(f"""
        import os
        import pipelines.ingest.loader as loader
        def die(stage):
            if stage == "after_quarantine_insert":
                os._exit(9)  # like kill -9: no rollback, no cleanup
        loader.FAULT_HOOK = die
        loader.ingest(landing={str(landing)!r}, warehouse={str(warehouse)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert rows(warehouse, "SELECT count(*) FROM raw.orders") == [(0,)]
    assert rows(warehouse, "SELECT count(*) FROM raw._loads") == [(0,)]
    [r] = ingest(landing=landing, warehouse=warehouse)
    assert (r.status, r.rows_loaded) == ("loaded", 3)
    invariant_holds(warehouse)


def _numbered_orders(n: int, broken: set[int]) -> str:
    lines = [ORDERS_HEADER]
    for i in range(1, n + 1):
        status = ("paid", "shipped", "delivered", "cancelled")[i % 4]
        line = f"N{i},C{i % 97},2024-01-01T00:00:00Z,{status},EUR,{i % 50}.25,"
        lines.append(line + ",surplus" if i in broken else line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("in_lists_as_joins", [False, True])
def test_row_numbers_match_the_file_even_if_duckdb_plans_a_join(env, in_lists_as_joins):
    """_source_row is the row's position in the file, with and without parser rejects.

    DuckDB may plan IN lists as joins, which can reorder rows; the loader detects such a
    plan and stages the file first. With the optimizer on, that fallback path runs here.
    """
    landing, warehouse = env
    broken = {7, 5000, 19999}
    write(landing / "orders" / "big.csv", _numbered_orders(20_000, broken))
    write(landing / "orders" / "clean.csv", _numbered_orders(20_000, set()).replace("N", "M"))
    con = connect(warehouse)
    if in_lists_as_joins:
        con.execute("RESET disabled_optimizers")
    ensure_schema(con)
    for name in ("big.csv", "clean.csv"):
        r = ingest_file(con, source("orders"), landing / "orders" / name, landing)
        assert r.rows_read == 20_000 and r.rows_loaded == 20_000 - (len(broken) if name == "big.csv" else 0)
    con.close()
    wrong = rows(warehouse, "SELECT count(*) FROM raw.orders WHERE _source_row <> substr(order_id, 2)::BIGINT")
    assert wrong == [(0,)]
    assert rows(warehouse, "SELECT list(source_row ORDER BY source_row) FROM raw._quarantine") == [(sorted(broken),)]


def test_unknown_source_is_refused(env):
    landing, warehouse = env
    with pytest.raises(KeyError, match="invoices"):
        ingest(sources=["invoices"], landing=landing, warehouse=warehouse)


def test_contract_column_added_later_is_added_to_the_table(env):
    _, warehouse = env
    con = connect(warehouse)
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.reviews (review_id VARCHAR, customer_id VARCHAR)")
    ensure_schema(con)
    cols = [c for (c,) in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_schema = 'raw' AND table_name = 'reviews'").fetchall()]
    con.close()
    assert set(source("reviews").column_names) <= set(cols)


def test_dates_outside_the_contract_range_are_quarantined_or_nulled(env):
    """Required dates out of range quarantine the row; optional ones (promised delivery) are nulled with a warning."""
    landing, warehouse = env
    header = "order_id,customer_id,ordered_at,total,promised_delivery_date,shipped_at"
    write(landing / "orders" / "dates.csv", "\n".join([
        header,
        "R1,C1,2024-01-05T10:00:00Z,10,2024-01-08,2024-01-06T08:00:00Z",
        "R2,C1,9999-12-31,10,,",
        "R3,C2,1900-01-01T00:00:00Z,10,,",
        "R4,C2,2024-02-01,10,9999-12-31,1900-01-01",
        "R5,C3,2024-02-02,10,1900-01-01,",
        "R6,C3,1989-12-31T23:59:59Z,10,,",
        "R7,C3,1990-01-01T00:00:00Z,10,,",
    ]) + "\n")
    [r] = ingest(landing=landing, warehouse=warehouse)
    assert (r.rows_loaded, r.rows_quarantined, r.values_nulled) == (4, 3, 3)
    quarantined = rows(warehouse, "SELECT source_file, source_row, column_name, reason_code, message "
                                  "FROM raw._quarantine ORDER BY source_row")
    assert [q[:4] for q in quarantined] == [
        ("orders/dates.csv", 2, "ordered_at", "out_of_range"), ("orders/dates.csv", 3, "ordered_at", "out_of_range"),
        ("orders/dates.csv", 6, "ordered_at", "out_of_range")]
    assert quarantined[0][4].startswith("ordered_at: '9999-12-31' is outside the allowed range 1990-01-01 00:00 … ")
    assert "(contract: 1990-01-01 … now+1d)" in quarantined[0][4]
    assert "'1900-01-01T00:00:00Z'" in quarantined[1][4]
    loaded = rows(warehouse, "SELECT order_id, promised_delivery_date, shipped_at FROM raw.orders ORDER BY 1")
    assert [o[0] for o in loaded] == ["R1", "R4", "R5", "R7"]
    assert loaded[1][1:] == (None, None) and loaded[2][1] is None and loaded[0][1] is not None
    warnings = rows(warehouse, "SELECT source_file, source_row, column_name, warning_code, message FROM raw._warnings "
                               "ORDER BY source_row, column_name")
    assert [w[:4] for w in warnings] == [
        ("orders/dates.csv", 4, "promised_delivery_date", "out_of_range"),
        ("orders/dates.csv", 4, "shipped_at", "out_of_range"),
        ("orders/dates.csv", 5, "promised_delivery_date", "out_of_range")]
    assert "'9999-12-31' is outside the allowed range 1990-01-01 … " in warnings[0][4]
    assert "(contract: 1990-01-01 … now+2y); the value was left empty" in warnings[0][4]
    invariant_holds(warehouse)


def test_date_bounds_resolve_relative_to_the_load_time():
    from datetime import datetime

    from pipelines.core.contract import resolve_bound

    now = datetime(2024, 2, 29, 12, 0)
    assert resolve_bound("now", now) == now
    assert resolve_bound("now+1d", now) == datetime(2024, 3, 1, 12, 0)
    assert resolve_bound("now-30d", now) == datetime(2024, 1, 30, 12, 0)
    assert resolve_bound("now+2y", now) == datetime(2026, 2, 28, 12, 0)
    assert resolve_bound("1990-01-01", now) == datetime(1990, 1, 1)
    with pytest.raises(ValueError):
        resolve_bound("next week", now)
    lo, hi = source("orders").column("promised_delivery_date").date_range(now)
    assert (lo, hi) == (datetime(1990, 1, 1), datetime(2026, 2, 28))
    for src in load_contract().values():  # every date and timestamp column has a range
        for col in src.columns:
            if col.type in ("date", "timestamp"):
                assert col.min is not None and col.max is not None, (src.name, col.name)


def test_summary_and_quarantine_report(env):
    landing, warehouse = env
    write(landing / "orders" / "o.csv", f"{ORDERS_HEADER}\nO1,C1,2024-01-01,paid,EUR,1,\nO2,,2024-01-01,paid,EUR,1,\n")
    write(landing / "reviews" / "r.csv", "review_id,customer_id,product_id,rating,created_at\n"
                                         "R1,C1,P1,9,2024-01-01\n")
    write(landing / "returns" / "x.csv", "what,ever\n1,2\n")
    results = ingest(landing=landing, warehouse=warehouse)
    console = Console(record=True, width=200)
    console.print(format_summary(results))
    text = console.export_text()
    assert "orders" in text and "reviews" in text and "returns" in text and "total" in text
    with duckdb.connect(str(warehouse), read_only=True) as con:
        report = quarantine_report(con)
        assert [(r.source, r.file, r.row, r.column, r.reason_code) for r in report] == [
            ("reviews", "reviews/r.csv", 1, "rating", "out_of_range"),  # newest load first
            ("returns", "returns/x.csv", None, None, "no_known_columns"),
            ("orders", "orders/o.csv", 2, "customer_id", "missing_required"),
        ]
        only_orders = quarantine_report(con, source="orders")
        assert len(only_orders) == 1 and only_orders.total == 1
        assert len(quarantine_report(con, limit=2)) == 2
        console.print(report)
    assert "rating: 9 is above the maximum 5" in console.export_text()
    with duckdb.connect() as empty:
        assert list(quarantine_report(empty)) == []


def test_generated_shop_loads_clean_and_twice_loads_nothing(env):
    """The generator's files load without quarantine; a second run loads 0 rows."""
    generate = pytest.importorskip("pipelines.generate").__dict__.get("generate")
    if generate is None:
        pytest.skip("pipelines.generate.generate is not available yet")
    landing, warehouse = env
    counts = generate(landing, customers=300, seed=3)
    first = ingest(landing=landing, warehouse=warehouse)
    assert first and all(r.status == "loaded" for r in first), [(r.file, r.message) for r in first]
    loaded: dict[str, int] = {}
    for r in first:
        loaded[r.source] = loaded.get(r.source, 0) + r.rows_loaded
    assert sum(r.rows_quarantined for r in first) == 0, rows(warehouse, "SELECT * FROM raw._quarantine LIMIT 5")
    for name, n in counts.items():
        assert loaded.get(name, 0) == n, name
    second = ingest(landing=landing, warehouse=warehouse)
    assert sum(r.rows_loaded for r in second) == 0
    assert {r.status for r in second} == {"unchanged"}
    invariant_holds(warehouse)
