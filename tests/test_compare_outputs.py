"""bench/compare_outputs.py reports identical, changed, missing, added and volatile outputs correctly.

Two tiny data folders are built by hand (a warehouse, a published snapshot, export files, a
model's metadata): the same outputs with different run ids, timestamps and data folder paths
must compare identical; a changed value, a missing table or a reordered export file must not.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import compare_outputs  # noqa: E402

EXPORT_RUN = {1: "20260101T101010Z-aaaaaa", 2: "20260202T202020Z-bbbbbb"}
MODEL_RUN = {1: "20260101T100000-111111", 2: "20260202T200000-222222"}
STAMP = {1: "2026-01-01 10:10:10", 2: "2026-02-02 20:20:20"}
SNAPSHOT = {1: "snapshot-20260101T101011123456Z.duckdb", 2: "snapshot-20260202T202021654321Z.duckdb"}


def make_data_dir(root: Path, run: int = 1, *, revenue_c2: float = 20.5, drop_table: bool = False,
                  extra_table: bool = False, reverse_export: bool = False, manifest_rows: int = 2,
                  source_row: int = 1) -> Path:
    """A small retain-like data folder; `run` picks the volatile values (ids, times) of one run."""
    dd = root / f"data{run}-{revenue_c2}-{drop_table}-{extra_table}-{reverse_export}-{manifest_rows}-{source_row}"
    dd.mkdir(parents=True)
    rid, mid, ts = EXPORT_RUN[run], MODEL_RUN[run], STAMP[run]
    increment = ["O2-20261101", "O3-20261101"] if run == 1 else ["O3-20261101", "O2-20261101"]
    con = duckdb.connect(str(dd / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA marts; CREATE SCHEMA ml; CREATE SCHEMA exports")
    # the line numbers of increment rows follow that order too: volatile for increment files only
    con.execute("CREATE TABLE raw.orders (order_id VARCHAR, _source_file VARCHAR, _source_row BIGINT)")
    con.execute("INSERT INTO raw.orders VALUES ('O1', 'orders/orders.csv', ?)", [source_row])
    con.execute("INSERT INTO raw.orders SELECT unnest(?), 'orders/increment-2026-11-01.csv', unnest([1, 2])",
                [increment])
    con.execute("CREATE TABLE marts.dim_customers (customer_id VARCHAR, name VARCHAR, revenue DOUBLE, orders INT)")
    con.execute("INSERT INTO marts.dim_customers VALUES ('C1', 'Ann', 10.25, 1), ('C2', 'Bob', ?, 3), "
                "('C3', NULL, 0.0, 0)", [revenue_c2])
    if not drop_table:
        con.execute("CREATE TABLE marts.kpi_monthly (month DATE, orders INT)")
        con.execute("INSERT INTO marts.kpi_monthly VALUES ('2026-01-01', 4), ('2026-02-01', 0)")
    if extra_table:
        con.execute("CREATE TABLE marts.new_mart AS SELECT 1 AS x")
    con.execute("CREATE TABLE ml.churn_scores (customer_id VARCHAR, scored_at TIMESTAMP, churn_probability DOUBLE, "
                "model_version VARCHAR)")
    con.execute("INSERT INTO ml.churn_scores VALUES ('C1', ?, 0.25, ?), ('C2', ?, 0.75, ?)", [ts, mid, ts, mid])
    # durations are dropped: two of them may round alike in one run and not in the other
    con.execute("CREATE TABLE ml.recommendation_backtests (cutoff_date DATE, run_id VARCHAR, created_at TIMESTAMP, "
                "ndcg_at_3 DOUBLE, seconds DOUBLE)")
    con.execute("INSERT INTO ml.recommendation_backtests SELECT DATE '2026-01-01' + i::INT, ?, ?, 0.5, s "
                "FROM (SELECT unnest(range(3)) AS i, unnest(?) AS s)",
                [mid, ts, [1.0, 1.0, 2.0] if run == 1 else [1.0, 2.0, 3.0]])
    con.execute("CREATE TABLE ml.model_runs (run_id VARCHAR, trained_at TIMESTAMP, model_path VARCHAR, auc DOUBLE)")
    con.execute("INSERT INTO ml.model_runs VALUES (?, ?, ?, 0.8)", [mid, ts, f"{dd}/models/{mid}"])
    con.execute("CREATE TABLE exports.outreach_lists (run_id VARCHAR, created_at TIMESTAMP, play VARCHAR, "
                "customer_id VARCHAR)")
    con.execute("INSERT INTO exports.outreach_lists VALUES (?, ?, 'winback', 'C1'), (?, ?, 'winback', 'C2')",
                [rid, ts, rid, ts])
    con.close()
    (dd / "published").mkdir()
    snap = duckdb.connect(str(dd / "published" / SNAPSHOT[run]))
    snap.execute("CREATE SCHEMA marts; CREATE SCHEMA meta")
    snap.execute("CREATE TABLE marts.dim_customers AS SELECT 'C1' AS customer_id, 1 AS orders")
    snap.execute("CREATE TABLE meta.snapshot (info VARCHAR)")
    snap.execute("INSERT INTO meta.snapshot VALUES (?)",
                 [json.dumps({"published_at": ts, "tables": 2, "watermarks": {"marts.x._built_at": ts}})])
    snap.close()
    (dd / "published" / "CURRENT").write_text(SNAPSHOT[run])
    status = {"last_run": {"run_id": f"0000000{run}-aaaa-bbbb-cccc-dddddddddddd", "started_at": ts,
                           "stages": [{"stage": "ingest", "rows_in": 5, "seconds": 1.5 * run}]}}
    (dd / "published" / "status.json").write_text(json.dumps(status))
    rows = [("ann@example.com", "C1", "0.25"), ("bob@example.com", "C2", "0.75")]
    if reverse_export:
        rows.reverse()
    for fmt in ("hubspot", "csv"):
        base = dd / "exports" / "winback" / fmt / rid
        base.mkdir(parents=True)
        if fmt == "csv":
            text = '"run_id","email","customer_id","churn","created_at"\n' + "".join(
                f'"{rid}","{e}","{c}",{p},"{ts.replace(" ", "T")}Z"\n' for e, c, p in rows)
        else:
            text = '"Email","retain_customer_id","retain_churn"\n' + "".join(f'"{e}","{c}",{p}\n' for e, c, p in rows)
        (base / f"winback-{fmt}.csv").write_text(text)
        manifest = {"run_id": rid, "generated_at": ts, "rows": manifest_rows, "source": {"model_version": mid}}
        (base / "manifest.json").write_text(json.dumps(manifest, indent=2))
        (base.parent / "LATEST").write_text(rid + "\n")
    (dd / "models" / mid).mkdir(parents=True)
    (dd / "models" / mid / "metadata.json").write_text(json.dumps({"run_id": mid, "trained_at": ts, "auc": 0.8}))
    (dd / "models" / mid / "model.joblib").write_bytes(b"pickle %d" % run)
    (dd / "models" / "current.json").write_text(json.dumps({"run_id": mid}))
    (dd / "landing" / "orders").mkdir(parents=True)
    (dd / "landing" / "orders" / "orders.csv").write_text("order_id\nO1\n")
    # `retain generate --next-day` writes the same rows in a varying order: compared as a set of lines
    (dd / "landing" / "orders" / "increment-2026-11-01.csv").write_text("order_id\n" + "\n".join(increment) + "\n")
    return dd


def dump(dd: Path, out: Path) -> Path:
    assert compare_outputs.main(["dump", "--data-dir", str(dd), "--out", str(out)]) == 0
    return out


def compare(a: Path, b: Path, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = compare_outputs.main(["compare", str(a), str(b), *extra])
    return code, capsys.readouterr().out


def status_of(out: str, name: str) -> str:
    for line in out.splitlines():
        if line.endswith(name) or f" {name}  " in line or line.split()[-1:] == [name]:
            return line.split()[0]
    raise AssertionError(f"{name} not in output:\n{out}")


def test_same_outputs_of_two_runs_are_identical(tmp_path, capsys):
    a = dump(make_data_dir(tmp_path, 1), tmp_path / "a")
    b = dump(make_data_dir(tmp_path, 2), tmp_path / "b")
    code, out = compare(a, b, capsys)
    assert code == 0, out
    assert "DIFFERENT" not in out.replace("RESULT: DIFFERENT", "")
    assert "RESULT: IDENTICAL" in out
    # run ids in paths became labels, so the export files of both runs pair up
    assert status_of(out, "file:exports/winback/csv/<export-run-1>/winback-csv.csv") == "identical"
    assert status_of(out, "file:models/<model-run-1>/metadata.json") == "identical"
    assert status_of(out, "snapshot:meta.snapshot") == "identical"
    assert status_of(out, "warehouse:ml.model_runs") == "identical"
    assert status_of(out, "file:published/status.json") == "identical"
    assert status_of(out, "input:landing/orders/increment-2026-11-01.csv") == "identical"
    assert status_of(out, "warehouse:raw.orders") == "identical"
    assert status_of(out, "warehouse:ml.recommendation_backtests") == "identical"
    # the summary says which values were volatile and why
    summary = json.loads((a / "dump.json").read_text())
    scores = summary["objects"]["warehouse:ml.churn_scores"]
    assert scores["volatile"]["scored_at"]["how"] == "label" and scores["volatile"]["scored_at"]["why"]
    assert summary["objects"]["file:models/<model-run-1>/model.joblib"]["kind"] == "skipped"
    assert status_of(out, "file:models/<model-run-1>/model.joblib") == "not-compared"


def test_changed_value_is_shown_with_its_row_and_column(tmp_path, capsys):
    a = dump(make_data_dir(tmp_path, 1), tmp_path / "a")
    b = dump(make_data_dir(tmp_path, 2, revenue_c2=20.75), tmp_path / "b")
    code, out = compare(a, b, capsys)
    assert code == 1
    assert status_of(out, "warehouse:marts.dim_customers") == "DIFFERENT"
    assert "rows matched on customer_id" in out
    assert "customer_id='C2': revenue: 20.5 -> 20.75" in out
    assert "RESULT: DIFFERENT" in out


def test_float_tolerance(tmp_path, capsys):
    a = dump(make_data_dir(tmp_path, 1), tmp_path / "a")
    b = dump(make_data_dir(tmp_path, 2, revenue_c2=20.5 * (1 + 1e-14)), tmp_path / "b")
    code, _ = compare(a, b, capsys)
    assert code == 1  # exact by default
    code, out = compare(a, b, capsys, "--rel-tol", "1e-12")
    assert code == 0, out
    assert "within the tolerance" in out


def test_missing_table_fails_and_added_table_does_not(tmp_path, capsys):
    a = dump(make_data_dir(tmp_path, 1), tmp_path / "a")
    b = dump(make_data_dir(tmp_path, 2, drop_table=True), tmp_path / "b")
    code, out = compare(a, b, capsys)
    assert code == 1
    assert status_of(out, "warehouse:marts.kpi_monthly") == "ONLY-BEFORE"
    code, out = compare(b, a, capsys)
    assert code == 0, out
    assert "only-after   warehouse:marts.kpi_monthly" in out
    c = dump(make_data_dir(tmp_path, 2, extra_table=True), tmp_path / "c")
    code, out = compare(a, c, capsys)
    assert code == 0 and "only-after   warehouse:marts.new_mart" in out


def test_reordered_export_file_and_changed_manifest_are_differences(tmp_path, capsys):
    a = dump(make_data_dir(tmp_path, 1), tmp_path / "a")
    b = dump(make_data_dir(tmp_path, 2, reverse_export=True, manifest_rows=3), tmp_path / "b")
    code, out = compare(a, b, capsys)
    assert code == 1
    name = "file:exports/winback/hubspot/<export-run-1>/winback-hubspot.csv"
    assert status_of(out, name) == "DIFFERENT"
    assert "same rows, different bytes" in out
    assert status_of(out, "file:exports/winback/hubspot/<export-run-1>/manifest.json") == "DIFFERENT"
    assert "rows: 2 -> 3" in out
    # the table of outreach lists did not change: only the files' order did
    assert status_of(out, "warehouse:exports.outreach_lists") == "identical"


def test_line_numbers_outside_increment_files_still_count(tmp_path, capsys):
    a = dump(make_data_dir(tmp_path, 1), tmp_path / "a")
    b = dump(make_data_dir(tmp_path, 2, source_row=2), tmp_path / "b")
    code, out = compare(a, b, capsys)
    assert code == 1
    assert status_of(out, "warehouse:raw.orders") == "DIFFERENT"
    assert "order_id='O1': _source_row: 1 -> 2" in out


def test_summary_only_dump_and_private_copies(tmp_path, capsys):
    a = dump(make_data_dir(tmp_path, 1), tmp_path / "a")
    for p in (a / "tables").glob("*.parquet"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE((a / "tables").stat().st_mode) == 0o700
    b = dump(make_data_dir(tmp_path, 2, revenue_c2=1.0), tmp_path / "b.json")
    assert b.is_file() and not (tmp_path / "tables").exists()
    code, out = compare(a, b, capsys)
    assert code == 1
    assert "columns whose values differ: revenue" in out


@pytest.mark.parametrize("command", ["dump", "compare", "volatile"])
def test_every_option_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        compare_outputs.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in {"dump": ["--data-dir", "--out", "--schemas", "--no-inputs"],
                   "compare": ["--rel-tol", "--abs-tol", "--ignore", "--examples", "--problems-only"],
                   "volatile": []}[command]:
        assert option in out
