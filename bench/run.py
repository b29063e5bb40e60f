"""retain's benchmark suite: wall time and peak memory per stage, each stage against its floor.

    python -m bench.run --sizes S            # 10,000 customers, a few minutes
    python -m bench.run --sizes S,M,L        # then 100,000 and 1,000,000 customers
    python -m bench.run --sizes XL           # 10,000,000 customers (hours; the XL targets)

For each size, in a fresh data folder `<out>/<size>`:

1. `retain generate --customers N --seed 7 --clean` (measured in its own process; CSV landing
   files, or `--landing-format parquet`: 14% of the CSV size, for XL's disk);
2. `retain run` (the full Dagster job), and the per-stage seconds, rows and peak memory the
   run recorded in `published/status.json`;
3. the floor of each stage, on the same data, each in its own process (`bench.floors`): a bare
   `read_csv` of the landing files (ingest), the fit and the `predict_proba` of the same
   scikit-learn estimator on a matrix already in memory (train, score), a plain copy of the
   tables a publish copies (publish); the dbt stage's floor is step 5;
4. the same KPIs (the `kpi_monthly` set, `retention_cohorts`, a customer summary) by
   hand-written DuckDB SQL over the landing CSV files, by the same SQL over the warehouse's
   `raw` tables, and by pandas over the CSV files (for reference), each in its own process;
   the results must agree (and are compared with the marts the run published);
5. `dbt build` of the KPI marts against hand-written SQL that builds the same marts from the
   same raw tables (`bench.bench_dbt`): the dbt stage's floor;
6. the dashboard's page queries on the published snapshot (`bench.bench_dashboard`), and
   importing a Shopify orders export of as many line items as the size has customers against
   loading the same rows from contract CSV files (`bench.bench_import`);
7. one more day of data (the last day's orders and related rows copied one day later with new
   ids) and `retain run --job daily_job`: the daily run.

Writes `bench/results/<size>.json` (keeping the key numbers of the run it replaces under
`previous`) and regenerates `docs/benchmarks.md` from every results file present, with the
machine's details, each target's measured value, floor, ratio and whether it is met, seconds
per million customers across sizes, and the trend against the previous run of each size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    RESULT_KEYS,
    Measured,
    compare_frames,
    compare_results,
    machine_info,
    run_measured,
    speed_reference,
    tail,
)
from pipelines.generate.next_day import append_next_day

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
SIZES = {"S": 10_000, "M": 100_000, "L": 1_000_000, "XL": 10_000_000}
SEED = 7

#: Stage names (asset groups) that make up the dbt build.
DBT_GROUPS = {"staging", "intermediate", "marts"}

#: Targets of the suite on 2 cores and 24 GB. Each is judged only at the sizes named here; at
#: other sizes the same numbers are shown for reference (fixed start-up costs dominate S and M).
#: Full run: (seconds, peak MB) per size.
TARGET_FULL_RUN = {"L": (180, 6 * 1024), "XL": (30 * 60, 16 * 1024)}
#: The daily run (`retain run --job daily_job` after one more day of data), seconds per size.
TARGET_DAILY_SECONDS = {"L": 45}
#: A stage of the full run at most this many times its floor (measured in the same benchmark run).
TARGET_STAGE_VS_FLOOR = {"ingest": 1.5, "dbt": 1.3}
FLOOR_TARGET_SIZES = ("L",)
#: Every dashboard page, warm (a running dashboard), at most this many seconds.
TARGET_DASHBOARD_WARM_SECONDS = 1.0
DASHBOARD_TARGET_SIZES = ("XL",)
#: Importing a Shopify orders export (1M line items at L) ≤ this × loading the same rows as contract CSVs.
TARGET_IMPORT_VS_CONTRACT = 2.0
IMPORT_TARGET_SIZES = ("L",)
#: Seconds the product marts, recommendations and their backtest may add to the full run at L.
TARGET_RECOMMEND_SECONDS = 20

#: The stages with a floor, in run order, and what the floor is (bench/floors.py; dbt: bench/bench_dbt.py).
FLOORS = {
    "ingest": "bare `read_csv` of the same landing files, one table per source, no validation",
    "dbt": "hand-written SQL building the same marts from the same raw tables (against `dbt build` of those marts)",
    "train": "fit + calibration of the same estimator on the training matrix already in memory",
    "score": "one `predict_proba` of the promoted model on every customer's matrix already in memory",
    "publish": "`CREATE TABLE ... AS SELECT *` of the same tables into a new DuckDB file",
}
#: Sizes whose seconds per million customers are compared (S is all start-up).
PER_MILLION_SIZES = ("M", "L", "XL")


def retain_command() -> list[str]:
    """The `retain` CLI of the running interpreter's environment."""
    script = Path(sys.executable).with_name("retain")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipelines.cli"]


def child_env(data_dir: Path) -> dict[str, str]:
    """The environment for measured commands: storage under `data_dir` and nothing else of RETAIN_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    env["RETAIN_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    # as if the virtualenv were activated: tools it installs (dbt) resolve from PATH
    env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p)
    return env


def say(message: str) -> None:
    """Progress on stdout, flushed at once (the suite runs for minutes)."""
    print(message, flush=True)


def measured_step(name: str, cmd: list[str], data_dir: Path, logs: Path, timeout: float | None = None) -> Measured:
    """Run one measured command with its output in `logs/<name>.log`, and say how it went."""
    m = run_measured(cmd, log=logs / f"{name}.log", env=child_env(data_dir), cwd=ROOT, timeout=timeout)
    state = "ok" if m.ok else ("TIMED OUT" if m.timed_out else f"FAILED (exit {m.returncode})")
    say(f"  {name:<18} {m.seconds:8.1f} s  peak {m.peak_mb:8.0f} MB  {state}")
    if not m.ok and not m.timed_out:
        say("    " + tail(m.log, 15).replace("\n", "\n    "))
    return m


def portable_json(result: dict, out: Path) -> str:
    """The results as JSON without the running machine's absolute paths.

    Log files and data folders are written relative to the benchmark's data root
    (`<bench data>/l/bench-logs/full_run.log`) or the repository (`./...`), so a committed
    results file says nothing about where it ran.
    """
    text = json.dumps(result, indent=2, default=str) + "\n"
    for root, name in ((Path(out).resolve(), "<bench data>"), (ROOT, ".")):
        text = text.replace(json.dumps(str(root))[1:-1], name)
    return text


def last_json_line(log: str | None) -> dict:
    """The JSON line a KPI script printed (its in-process seconds and row counts)."""
    for line in reversed(tail(log, 50).splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


def kpi_record(m: Measured) -> dict:
    """A KPI script's measurement: `seconds` is its own compute time (wall time if it failed)."""
    return {**m.as_dict(), "wall_seconds": m.seconds, **(last_json_line(m.log) if m.ok else {})}


def run_status(data_dir: Path) -> dict:
    """The last run recorded in `published/status.json` (empty if none)."""
    path = data_dir / "published" / "status.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text()).get("last_run", {}) or {}
    except json.JSONDecodeError:
        return {}


def step_seconds(log: str | Path | None) -> dict[str, float]:
    """Seconds of each Dagster step of a measured `retain run`, from the lines it printed."""
    from pipelines.progress import steps_done

    try:
        return steps_done(Path(log).read_text(encoding="utf-8", errors="replace")) if log else {}
    except OSError:
        return {}


def is_dbt_stage(stage: str) -> bool:
    """A stage of the dbt build: made only of the staging, intermediate and marts groups.

    A dbt step that failed before materialising anything is named after its step key.
    """
    return set(stage.split("+")) <= DBT_GROUPS or "dbt" in stage


def dbt_seconds(stages: list[dict]) -> float | None:
    """Seconds of the dbt build: the sum over its stages; None if it did not run or failed."""
    dbt = [s for s in stages if is_dbt_stage(s["stage"])]
    if not dbt or any(s.get("failed_steps") for s in dbt):
        return None
    return round(sum(s["seconds"] for s in dbt), 3)


def raw_orders(warehouse: Path) -> int:
    """Rows in the warehouse's `raw.orders` (0 if there is no warehouse or no such table yet)."""
    import duckdb

    if not warehouse.exists():
        return 0
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute("select count(*) from raw.orders").fetchone()[0]
    except duckdb.Error:
        return 0


def current_snapshot(data_dir: Path) -> Path | None:
    """The published snapshot the dashboard would read."""
    pointer = data_dir / "published" / "CURRENT"
    if not pointer.exists():
        return None
    path = data_dir / "published" / pointer.read_text().strip()
    return path if path.exists() else None


def git_commit() -> str | None:
    """The short commit of the code being measured, with `+changes` when the worktree is dirty."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if dirty else "")


def stage_seconds(stages: list[dict], name: str) -> float | None:
    """Seconds of one stage of a run (the dbt stage: all of its steps); None if it is not there."""
    if name == "dbt":
        return dbt_seconds(stages)
    found = [s["seconds"] for s in stages if s["stage"] == name]
    return round(sum(found), 3) if found else None


def key_numbers(record: dict) -> dict:
    """The numbers of a results record that the next run of the same size is compared with."""
    steps = record.get("steps", {})
    full, daily = steps.get("full_run") or {}, steps.get("incremental_run") or {}
    same = (record.get("dbt_vs_hand_sql") or {}).get("steps") or {}
    stages = record.get("stages") or []
    return {
        "started_at": record.get("started_at"),
        "commit": record.get("commit"),
        "speed_reference_seconds": record.get("speed_reference_seconds"),
        "load_average_at_start": record.get("load_average_at_start"),
        "full_run_seconds": full.get("seconds") if full.get("ok") else None,
        "full_run_peak_mb": full.get("peak_mb") if full.get("ok") else None,
        "daily_seconds": daily.get("seconds") if daily.get("ok") else None,
        "stages": {s["stage"]: round(s["seconds"], 3) for s in stages},
        "daily_stages": {s["stage"]: round(s["seconds"], 3) for s in record.get("incremental_stages") or []},
        "floors": {k: v.get("seconds") for k, v in (record.get("floors") or {}).items() if v.get("ok")},
        "dbt_build_same_marts_seconds": (same.get("dbt build (KPI marts)") or {}).get("seconds"),
        "hand_sql_seconds": (same.get("hand SQL") or {}).get("seconds"),
    }


def measure_floors(data_dir: Path, landing: Path, logs: Path, run_ok: bool) -> tuple[dict, list[str]]:
    """Each stage's floor on the data of the full run just measured (`bench.floors`), each in its own process.

    The ingest floor needs only the landing files; the others need the finished run's
    warehouse (and the score floor its promoted model). Returns the records and the problems.
    """
    scratch = data_dir / "bench-floors"
    scratch.mkdir(exist_ok=True)
    warehouse, models = data_dir / "warehouse.duckdb", data_dir / "models"
    todo = {"ingest": ["--landing", landing, "--scratch", scratch / "ingest.duckdb"]}
    if run_ok:
        todo["train"] = ["--warehouse", warehouse]
        if (models / "current.json").exists():
            todo["score"] = ["--warehouse", warehouse, "--models", models]
        todo["publish"] = ["--warehouse", warehouse, "--scratch", scratch / "publish.duckdb"]
    floors, problems = {}, []
    for stage, args in todo.items():
        m = measured_step(f"floor_{stage}", [sys.executable, "-m", "bench.floors", stage, *map(str, args)],
                          data_dir, logs)
        floors[stage] = kpi_record(m)
        if not m.ok:
            problems.append(f"the {stage} floor failed: " + tail(m.log, 5))
    shutil.rmtree(scratch, ignore_errors=True)
    return floors, problems


# --------------------------------------------------------------------------- one size


def _as_list(value) -> list[str]:
    """Differences as a list; a string (e.g. "not published") is one gap in the comparison."""
    return value if isinstance(value, list) else [value]


def compare_with_marts(snapshot: Path, sql_dir: Path) -> dict:
    """Compare the hand-written SQL's results with the marts in `snapshot` (a DuckDB file), where they exist."""
    import duckdb
    import pandas as pd

    marts = {"kpi_monthly": "kpi_monthly", "retention_cohorts": "retention_cohorts", "customers": "dim_customers"}
    # the marts a `retain run` left: the snapshot it published, or the warehouse itself
    out: dict[str, list[str] | str] = {}
    with duckdb.connect(str(snapshot), read_only=True) as con:
        tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
        for name, table in marts.items():
            if table not in tables:
                out[name] = "not published"
                continue
            ours = pd.read_parquet(sql_dir / f"{name}.parquet")
            theirs = con.execute(f"select * from marts.{table}").df()
            common = [c for c in ours.columns if c in theirs.columns]
            if not set(RESULT_KEYS[name]) <= set(common):
                out[name] = f"marts.{table} lacks the key columns {RESULT_KEYS[name]}"
                continue
            out[name] = compare_frames(
                f"{name} (SQL vs marts.{table})", ours[common], theirs[common], RESULT_KEYS[name], rtol=1e-6, atol=1e-6
            )
    return out


def dashboard_queries(data_dir: Path, logs: Path) -> dict | None:
    """Time the dashboard's page queries on the published snapshot with `bench.bench_dashboard`.

    Skipped (None) when that script or a snapshot is missing. Its table (page, filters, cold,
    warm and max seconds) is parsed from its output; exit code 1 means a page missed its target.
    """
    if not (ROOT / "bench" / "bench_dashboard.py").exists() or current_snapshot(data_dir) is None:
        return None
    cmd = [sys.executable, "-m", "bench.bench_dashboard", "--data-dir", str(data_dir)]
    m = measured_step("dashboard_queries", cmd, data_dir, logs, timeout=900)
    pages = []
    for line in tail(m.log, 200).splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in ("ok", "SLOW"):
            try:
                cold, warm, worst = (float(x) for x in parts[2:5])
            except ValueError:
                continue
            pages.append({"page": parts[0], "filters": parts[1], "cold": cold, "warm": warm, "max": worst})
    record = m.as_dict()
    record["ok"] = m.returncode in (0, 1) and not m.timed_out  # 1: a page slower than its target
    record["pages"] = pages
    record["slowest_warm"] = max((p["warm"] for p in pages), default=None)
    return record


def bench_size(
    label: str,
    customers: int,
    out_root: Path,
    keep: bool,
    skip_pandas: bool,
    pandas_timeout: float | None,
    skip_dbt_vs_sql: bool = False,
    skip_import: bool = False,
    landing_format: str = "csv",
) -> dict:
    """Run every step for one size and return the results record.

    `landing_format`: the generated landing files' format (`csv`, or `parquet` for sizes whose
    CSV files would not fit the disk; the pandas comparison reads CSV only and is then skipped).
    """
    data_dir = (out_root / label.lower()).resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)  # a fresh warehouse, Dagster instance and landing folder each time
    landing, logs, kpi_dir = data_dir / "landing", data_dir / "bench-logs", data_dir / "bench-kpi"
    logs.mkdir(parents=True)
    retain = retain_command()
    say(f"== size {label}: {customers:,} customers, data in {data_dir}")
    result: dict = {
        "size": label,
        "customers": customers,
        "seed": SEED,
        "landing_format": landing_format,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        # other work on the machine inflates every time: say how busy it was
        "load_average_at_start": round(os.getloadavg()[0], 2),
        # and how fast the machine is today: the same workload on every run (bench.common)
        "speed_reference_seconds": speed_reference(),
        "commit": git_commit(),
        "steps": {},
        "problems": [],
    }
    steps = result["steps"]

    gen = measured_step(
        "generate",
        [
            *retain,
            "generate",
            "--customers",
            str(customers),
            "--seed",
            str(SEED),
            "--format",
            landing_format,
            "--out",
            str(landing),
            "--clean",
            "--data-dir",
            str(data_dir),
        ],
        data_dir,
        logs,
    )
    steps["generate"] = gen.as_dict()
    if not gen.ok:
        result["problems"].append("generate failed: " + tail(gen.log, 5))
        return result
    result["landing_mb"] = round(sum(f.stat().st_size for f in landing.rglob("*") if f.is_file()) / 2**20, 1)

    full = measured_step("full_run", [*retain, "run", "--data-dir", str(data_dir)], data_dir, logs)
    steps["full_run"] = full.as_dict()
    status = run_status(data_dir)
    result["stages"] = status.get("stages", [])
    result["step_seconds"] = step_seconds(full.log)
    result["run_success"] = bool(status.get("success")) and full.ok
    if not result["run_success"]:
        result["problems"].append(f"full run failed: {status.get('error') or tail(full.log, 5)}")
    for st in result["stages"]:
        say(
            f"    {st['stage']:<28} {st['seconds']:8.1f} s  peak {st.get('peak_rss_mb', 0):8.0f} MB  "
            f"rows out {st.get('rows_out', 0):>12,}"
        )

    # each stage's floor on the same data, right after the run (the dbt stage's: dbt_vs_hand_sql below)
    result["floors"], problems = measure_floors(data_dir, landing, logs, result["run_success"])
    result["problems"] += problems
    for stage, rec in result["floors"].items():
        ran = stage_seconds(result["stages"], stage)
        if rec["ok"] and ran is not None and rec.get("seconds"):
            say(f"    {stage:<8} stage {ran:8.1f} s ÷ floor {rec['seconds']:7.2f} s = {ran / rec['seconds']:6.2f}×")

    # the KPIs three ways; each in its own process, so each peak is its own
    kpi = {}
    m = measured_step(
        "kpi_sql_csv",
        [sys.executable, "-m", "bench.kpi_sql", "--landing", str(landing), "--out", str(kpi_dir / "sql_csv")],
        data_dir,
        logs,
    )
    kpi["sql_csv"] = kpi_record(m)
    warehouse = data_dir / "warehouse.duckdb"
    if raw_orders(warehouse):
        m = measured_step(
            "kpi_sql_raw",
            [sys.executable, "-m", "bench.kpi_sql", "--warehouse", str(warehouse), "--out", str(kpi_dir / "sql_raw")],
            data_dir,
            logs,
        )
        kpi["sql_raw"] = kpi_record(m)
    if not skip_pandas and landing_format == "csv":
        m = measured_step(
            "kpi_pandas",
            [sys.executable, "-m", "bench.kpi_pandas", "--landing", str(landing), "--out", str(kpi_dir / "pandas")],
            data_dir,
            logs,
            timeout=pandas_timeout,
        )
        kpi["pandas"] = kpi_record(m)
    result["kpi"] = kpi

    agreement: dict = {}
    if kpi["sql_csv"]["ok"] and kpi.get("pandas", {}).get("ok"):
        agreement["sql_vs_pandas"] = compare_results(kpi_dir / "sql_csv", kpi_dir / "pandas")
    if kpi["sql_csv"]["ok"] and kpi.get("sql_raw", {}).get("ok"):
        # ingestion may quarantine rows the plain CSV read keeps: differences here are data, not speed
        agreement["sql_csv_vs_raw"] = compare_results(kpi_dir / "sql_csv", kpi_dir / "sql_raw")
    # the published marts; after a run that failed downstream of dbt, the warehouse's own
    snapshot = current_snapshot(data_dir) or (warehouse if warehouse.exists() else None)
    reference = "sql_raw" if "sql_raw" in kpi else "sql_csv"  # the marts are built from the raw tables
    if snapshot is not None and kpi[reference]["ok"]:
        versus_marts = compare_with_marts(snapshot, kpi_dir / reference)
        if any(isinstance(v, list) for v in versus_marts.values()):  # else no mart was built
            agreement["sql_vs_marts"] = versus_marts
    result["agreement"] = agreement
    for name, problems in agreement.items():
        flat = problems if isinstance(problems, list) else [p for v in problems.values() for p in _as_list(v)]
        say(f"  {name:<18} {'agree' if not flat else f'{len(flat)} difference(s)'}")
        for p in flat[:8]:
            say(f"    {p}")
    if agreement.get("sql_vs_pandas"):
        result["problems"].append("hand-written SQL and pandas disagree")

    dbt = dbt_seconds(result["stages"])
    sql_s = kpi["sql_csv"].get("seconds") if kpi["sql_csv"]["ok"] else None
    raw_s = kpi.get("sql_raw", {}).get("seconds") if kpi.get("sql_raw", {}).get("ok") else None
    pandas_s = kpi.get("pandas", {}).get("seconds") if kpi.get("pandas", {}).get("ok") else None
    result["comparison"] = {
        "dbt_seconds": dbt,
        "sql_csv_seconds": sql_s,
        "sql_raw_seconds": raw_s,
        "pandas_seconds": pandas_s,
        "pandas_timed_out": kpi.get("pandas", {}).get("timed_out", False),
        "dbt_vs_sql_csv": round(dbt / sql_s, 2) if dbt and sql_s else None,
        "dbt_vs_sql_raw": round(dbt / raw_s, 2) if dbt and raw_s else None,
        "pandas_vs_dbt": round(pandas_s / dbt, 2) if dbt and pandas_s else None,
        "pandas_vs_sql_csv": round(pandas_s / sql_s, 2) if sql_s and pandas_s else None,
    }

    # dbt against hand-written SQL that builds the same marts from the same raw tables, both
    # checked to give the same numbers (bench/bench_dbt.py); on copies, so the warehouse is untouched
    if raw_orders(warehouse) and not skip_dbt_vs_sql:
        work = data_dir / "bench-dbt"
        m = measured_step(
            "dbt_vs_hand_sql",
            [sys.executable, "-m", "bench.bench_dbt", "--raw", str(warehouse), "--skip-full", "--keep", str(work)],
            data_dir,
            logs,
        )
        record = last_json_line(m.log)
        result["dbt_vs_hand_sql"] = {"ok": m.ok, "wall_seconds": m.seconds, "peak_mb": m.peak_mb, **record}
        if record.get("steps"):
            built, hand = record["steps"]["dbt build (KPI marts)"]["seconds"], record["steps"]["hand SQL"]["seconds"]
            say(f"    dbt      build {built:8.1f} s ÷ floor {hand:7.2f} s = {built / hand:6.2f}× (the same marts)")
        if record.get("mismatches") and any(record["mismatches"].values()):
            result["problems"].append(f"dbt and the hand-written SQL disagree: {record['mismatches']}")
        elif not m.ok:
            result["problems"].append("dbt vs hand-written SQL failed: " + tail(m.log, 5))
        shutil.rmtree(work, ignore_errors=True)  # three warehouse copies

    result["dashboard"] = dashboard_queries(data_dir, logs)

    # a platform export against the contract files holding the same rows (bench/bench_import.py):
    # as many line items as the size has customers (L: 1,000,000, the target size)
    if not skip_import:
        work = data_dir / "bench-import"
        m = measured_step(
            "platform_import",
            [sys.executable, "-m", "bench.bench_import", "--line-items", str(customers), "--out", str(work),
             "--json", str(work / "record.json")],
            data_dir,
            logs,
        )
        if m.ok and (work / "record.json").exists():
            result["platform_import"] = json.loads((work / "record.json").read_text())
        else:
            result["problems"].append("Shopify import benchmark failed: " + tail(m.log, 5))
        shutil.rmtree(work, ignore_errors=True)

    if result["run_success"]:
        try:
            result["increment"] = append_next_day(landing)
        except Exception as exc:  # a broken increment should not lose the numbers above
            result["problems"].append(f"could not append a day: {exc}")
        else:
            say(f"  appended {result['increment']['day']}: {result['increment']['rows']}")
            inc = measured_step(
                "incremental_run", [*retain, "run", "--job", "daily_job", "--data-dir", str(data_dir)], data_dir, logs
            )
            steps["incremental_run"] = inc.as_dict()
            inc_status = run_status(data_dir)
            result["incremental_stages"] = inc_status.get("stages", [])
            result["incremental_step_seconds"] = step_seconds(inc.log)
            if not (inc.ok and inc_status.get("success")):
                result["problems"].append(f"incremental run failed: {inc_status.get('error') or tail(inc.log, 5)}")
    else:
        result["problems"].append("incremental run skipped: the full run failed")

    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if not keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------- report


def _fmt(value, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{suffix}"


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("✔" if ok else "✘")


def _trend(previous: float | None, now: float | None, unit: str = " s", digits: int = 1) -> str:
    """"previous → now" (– on a side that was not measured)."""
    if previous is None and now is None:
        return "–"
    return f"{_fmt(previous, digits)} → {_fmt(now, digits)}{unit}"


def _row(target: str, measured: str, ok: bool | None, floor: str = "–", ratio: str = "–", trend: str = "–") -> dict:
    return {"target": target, "measured": measured, "floor": floor, "ratio": ratio, "ok": ok, "previous → now": trend}


def stage_floors(result: dict) -> list[dict]:
    """Each stage with a floor: its seconds in the full run, what is compared with the floor, the ratio.

    `measured` is the stage's seconds in the run, except for dbt: `dbt build` of the same marts
    the hand-written SQL builds (`bench_dbt`), the whole stage building more than those.
    """
    stages, floors = result.get("stages") or [], result.get("floors") or {}
    prev = result.get("previous") or {}
    out = []
    for name in FLOORS:
        in_run = stage_seconds(stages, name)
        row = {"stage": name, "in_run": in_run, "measured": in_run, "floor": None, "agree": True,
               "floor_record": floors.get(name), "previous": (prev.get("stages") or {}).get(name)}
        if name == "dbt":
            same = result.get("dbt_vs_hand_sql") or {}
            steps = same.get("steps") or {}
            row["measured"] = (steps.get("dbt build (KPI marts)") or {}).get("seconds")
            row["floor"] = (steps.get("hand SQL") or {}).get("seconds")
            row["agree"] = not any((same.get("mismatches") or {}).values())
            row["marts"] = len(same.get("mismatches") or {})
        elif floors.get(name, {}).get("ok"):
            row["floor"] = floors[name].get("seconds")
        row["ratio"] = row["measured"] / row["floor"] if row["measured"] is not None and row["floor"] else None
        if in_run is None and row["floor"] is None and row["measured"] is None:
            continue
        out.append(row)
    return out


def target_rows(result: dict) -> list[dict]:
    """One size's targets: target, measured, floor, ratio, met (None: not judged here) and previous → now.

    Each target is judged only at the sizes it is set for (TARGET_*); elsewhere its row shows
    the numbers for reference, met "–".
    """
    size = result.get("size")
    steps, comp = result.get("steps", {}), result.get("comparison", {})
    prev = result.get("previous") or {}
    full, inc = steps.get("full_run"), steps.get("incremental_run")
    rows: list[dict] = []
    trend = _trend if prev else (lambda *_, **__: "–")  # no previous run on record: nothing to compare

    goal = TARGET_FULL_RUN.get(size)
    where = ", ".join(f"{k} ≤ {_duration(v[0])}" for k, v in TARGET_FULL_RUN.items())
    peaks = ", ".join(f"{k} ≤ {v[1] // 1024} GB" for k, v in TARGET_FULL_RUN.items())
    if full:
        failed = "" if full["ok"] else " (failed)"
        rows.append(_row(
            f"full run ≤ {_duration(goal[0])}" if goal else f"full run (for reference; targets {where})",
            f"{full['seconds']:,.1f} s{failed}",
            (full["ok"] and full["seconds"] <= goal[0]) if goal else None,
            trend=trend(prev.get("full_run_seconds"), full["seconds"] if full["ok"] else None),
        ))
        rows.append(_row(
            f"full run peak ≤ {goal[1] // 1024} GB" if goal else f"full run peak (for reference; targets {peaks})",
            f"{full['peak_mb']:,.0f} MB",
            full["peak_mb"] <= goal[1] if goal else None,
            trend=trend(prev.get("full_run_peak_mb"), full["peak_mb"] if full["ok"] else None, " MB", 0),
        ))

    judged = size in FLOOR_TARGET_SIZES
    for row in stage_floors(result):
        name, limit = row["stage"], TARGET_STAGE_VS_FLOOR.get(row["stage"])
        target = f"{name} ≤ {limit:g}× its floor" if limit is not None and judged else f"{name} against its floor"
        previous = row["previous"]
        measured = f"{_fmt(row['measured'])} s"
        if name == "dbt":
            marts = f"{row['marts']} " if row.get("marts") else ""
            target += f": `dbt build` of the same {marts}marts ÷ hand-written SQL"
            measured += "" if row["agree"] else " (results differ)"
            previous = prev.get("dbt_build_same_marts_seconds")
        if limit is None:
            target += " (no target)"
        elif not judged:
            target += f" (for reference; target at {', '.join(FLOOR_TARGET_SIZES)}: ≤ {limit:g}×)"
        ok = None
        if limit is not None and judged and row["ratio"] is not None:
            ok = row["agree"] and row["ratio"] <= limit
        rows.append(_row(target, measured, ok, floor=_fmt(row["floor"], 2, " s"), ratio=_fmt(row["ratio"], 2, "×"),
                         trend=trend(previous, row["measured"])))

    goal = TARGET_DAILY_SECONDS.get(size)
    where = ", ".join(f"{k} ≤ {v} s" for k, v in TARGET_DAILY_SECONDS.items())
    rows.append(_row(
        f"daily run ≤ {goal} s" if goal else f"daily run (for reference; target {where})",
        _fmt(inc and inc["seconds"], 1, " s") + ("" if not inc or inc["ok"] else " (failed)"),
        None if not inc or not goal else inc["ok"] and inc["seconds"] <= goal,
        trend=trend(prev.get("daily_seconds"), inc["seconds"] if inc and inc["ok"] else None),
    ))

    pages = (result.get("dashboard") or {}).get("pages") or []
    if pages:
        slowest = max(pages, key=lambda p: p["warm"])
        judged = size in DASHBOARD_TARGET_SIZES
        rows.append(_row(
            f"every dashboard page ≤ {TARGET_DASHBOARD_WARM_SECONDS:g} s warm"
            + ("" if judged else f" (for reference; target at {', '.join(DASHBOARD_TARGET_SIZES)})"),
            f"slowest {slowest['warm']:.3f} s ({slowest['page']}, {slowest['filters']})",
            slowest["warm"] <= TARGET_DASHBOARD_WARM_SECONDS if judged else None,
        ))

    imp = result.get("platform_import")
    if imp:
        judged = size in IMPORT_TARGET_SIZES
        rows.append(_row(
            f"Shopify orders export ({imp['line_items']:,} line items) ≤ {TARGET_IMPORT_VS_CONTRACT:g}× "
            "the same rows as contract CSVs"
            + ("" if judged else f" (for reference; target at {', '.join(IMPORT_TARGET_SIZES)})"),
            f"{imp['import']['seconds']:,.1f} s",
            imp["ratio"] <= TARGET_IMPORT_VS_CONTRACT if judged else None,
            floor=f"{imp['contract']['seconds']:,.1f} s", ratio=f"{imp['ratio']:.2f}×",
        ))

    pandas, sql = comp.get("pandas_seconds"), comp.get("sql_csv_seconds")
    rows.append(_row(
        "for reference only: pandas against hand-written SQL on the KPI set (the most any engine can gain over pandas)",
        f"pandas {_fmt(pandas, 2)} s",
        None,
        floor=_fmt(sql, 2, " s"),
        ratio=_fmt(comp.get("pandas_vs_sql_csv"), 2, "×"),
    ))
    return rows


def _duration(seconds: float) -> str:
    return f"{seconds // 60:g} min" if seconds >= 600 and seconds % 60 == 0 else f"{seconds:g} s"


def per_million_section(results: list[dict]) -> list[str]:
    """Seconds per million customers of the full run, each stage and the daily run, at M, L and XL."""
    by_size = {r["size"]: r for r in results if r["size"] in PER_MILLION_SIZES}
    if not by_size:
        return []
    sizes = list(PER_MILLION_SIZES)
    names: list[str] = []
    for size in sizes:
        for st in (by_size.get(size) or {}).get("stages") or []:
            if st["stage"] not in names:
                names.append(st["stage"])

    def per_million(size: str, what: str) -> float | None:
        r = by_size.get(size)
        if not r:
            return None
        steps = r.get("steps", {})
        if what == "full run":
            m = steps.get("full_run")
            secs = m["seconds"] if m and m["ok"] else None
        elif what == "daily run":
            m = steps.get("incremental_run")
            secs = m["seconds"] if m and m["ok"] else None
        else:
            secs = stage_seconds(r.get("stages") or [], what)
        return None if secs is None else secs / (r["customers"] / 1e6)

    def growth(a: float | None, b: float | None) -> str:
        return _fmt(b / a, 2, "×") if a and b is not None else "–"

    lines = [
        "",
        "### Seconds per million customers",
        "",
        "Each time ÷ the size's millions of customers. If the data alone drove the cost, a row would be the",
        "same at every size; *growth* is the next size's seconds per million ÷ this size's (above 1×: cost",
        "grows faster than the data, below: fixed costs are being spread). Sizes measured on different",
        "days or commits compare only in the light of their speed reference.",
        "",
        "| | " + " | ".join(sizes) + " | growth M → L | growth L → XL |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " | ---: | ---: |",
    ]
    whats = ["full run", *names, "daily run"]
    for what in whats:
        vals = [per_million(s, what) for s in sizes]
        label = f"stage {what}" if what in names else what
        lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in vals)
                     + f" | {growth(vals[0], vals[1])} | {growth(vals[1], vals[2])} |")
    def measured(r: dict) -> str:
        speed = _fmt(r.get("speed_reference_seconds"), 2, " s")
        return f"{r['started_at'][:10]} ({r.get('commit') or 'commit not recorded'}; {speed})"

    lines.append("| measured on (commit; speed reference) | "
                 + " | ".join(measured(by_size[s]) if s in by_size else "–" for s in sizes) + " | | |")
    return lines


#: Hand-written notes on the targets: why those not met are not, from their floors, designs that would
#: meet them, and the check that the speed work changed no result.
NOTES = ROOT / "bench" / "notes.md"


def notes_section(path: Path = NOTES) -> list[str]:
    """`bench/notes.md` as it stands, under the targets (it quotes the results it was written from)."""
    if not path.exists():
        return []
    return ["", *path.read_text(encoding="utf-8").rstrip().splitlines()]


def import_section(results: list[dict], imports: list[dict]) -> list[str]:
    """The platform import comparisons: every size's, and those `bench_import --record` kept."""
    rows = [(f"size {r['size']}", r["platform_import"]) for r in results if r.get("platform_import")]
    rows += [("`bench_import`", rec) for rec in imports]
    if not rows:
        return []
    lines = [
        "",
        "## Platform import",
        "",
        "Importing a Shopify orders export (79 columns, one row per line item, order-level values on an",
        "order's first row) with `ingest()` against loading the same rows, written as contract CSV files",
        "(orders, order_items, customers, returns), with `ingest()` (`bench/bench_import.py`; target:",
        f"at most {TARGET_IMPORT_VS_CONTRACT:g}× at 1,000,000 line items). Each side in its own process; seconds",
        "are the fastest of the runs, every run is listed; both sides include the ledger, sha256 and",
        "identity resolution. Where the import's time goes, and its floor: "
        "[importing.md](importing.md#speed).",
        "",
        "| from | line items | export MB | contract MB | import s | contract s | ratio | peak MB import / contract "
        "| runs (import; contract) | load avg before / after | speed ref s | measured |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |",
    ]
    for source, rec in sorted(rows, key=lambda r: (r[1]["line_items"], r[1]["measured_at"])):
        runs = (", ".join(f"{x:.1f}" for x in rec["import"]["runs"]) + "; "
                + ", ".join(f"{x:.1f}" for x in rec["contract"]["runs"]))
        lines.append(
            f"| {source} | {rec['line_items']:,} | {rec['export_mb']:,.0f} | {rec['contract_mb']:,.0f} "
            f"| {rec['import']['seconds']:,.2f} | {rec['contract']['seconds']:,.2f} | {rec['ratio']:.2f} "
            f"| {rec['import']['peak_mb']:,} / {rec['contract']['peak_mb']:,} | {runs} "
            f"| {rec['load_average'][0]:.1f} / {rec['load_average'][1]:.1f} | {rec['speed_reference_seconds']:.2f} "
            f"| {rec['measured_at']} |"
        )
    return lines


def recommend_section(records: list[dict]) -> list[str]:
    """What the next-product recommendations add to a run at each kept measurement (`bench_recommend --record`)."""
    if not records:
        return []
    lines = [
        "",
        "## Next-product recommendations",
        "",
        "What the product marts, the recommendations and their backtest add to a run, on the warehouse",
        "of a finished full run (`bench/bench_recommend.py`; target: at most "
        f"{TARGET_RECOMMEND_SECONDS:g} s added to the full run at 1,000,000",
        "customers). *product marts*: `dbt run` of the five product models, dbt's elapsed time (a full",
        "refresh where the code has an incremental `fct_order_lines`: what a first full run pays);",
        "*incremental*: the same without `--full-refresh` and no new data; *added to the full run* =",
        "product marts + recommendations + backtest (the full run trains, so it backtests);",
        "*added to the daily run* = incremental + recommendations (the daily run never backtests; a",
        "new day's customers add their share to the incremental marts). The machine is shared: compare",
        "rows by the speed reference and the load, and before/after pairs measured back to back.",
        "[churn-model.md](churn-model.md#speed-at-1m-customers) says what changed.",
        "",
        "| code | customers | order lines | load avg before / after | speed ref s | product marts s (wall) "
        "| incremental s | recommendations s | backtest s | added to the full run s | added to the daily run s "
        "| measured |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for rec in sorted(records, key=lambda r: r["measured_at"]):
        incremental = rec.get("dbt_product_models_incremental_seconds")
        daily = rec.get("daily_added_seconds")
        lines.append(
            f"| {rec['code']} | {rec['customers']:,} | {rec['order_lines']:,} "
            f"| {rec['load_average_1m']:.1f} / {rec['load_average_1m_after']:.1f} | {rec['speed_reference_s']:.2f} "
            f"| {rec['dbt_product_models_seconds']:.1f} ({rec['dbt_product_models_wall_seconds']:.1f}) "
            f"| {_fmt(incremental, 1)} | {rec['recommend_seconds']:.1f} | {rec['backtest_seconds']:.1f} "
            f"| {rec['added_seconds']:.1f} | {_fmt(daily, 1)} | {rec['measured_at']} |"
        )
    return lines


def render_markdown(results: list[dict], imports: list[dict] | None = None,
                    recommends: list[dict] | None = None) -> str:
    """docs/benchmarks.md from the results of every size present (and the kept import comparisons)."""
    order = {k: i for i, k in enumerate(SIZES)}
    results = sorted(results, key=lambda r: (order.get(r["size"], len(order)), r["customers"]))
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench.run --sizes S,M,L` (see `bench/README.md`); do not edit by hand.",
        "Every step runs in its own process: *seconds* is its wall time, *peak MB* the largest summed",
        "resident memory of its process tree. Stage rows come from the run's own record",
        "(`published/status.json`); a stage's peak MB is the run process's own memory during the stage",
        "(dbt runs in a child process, which only the full run's peak includes). Sizes: "
        + ", ".join(f"{k} = {v:,}" for k, v in SIZES.items()),
        f"generated customers (seed {SEED}).",
        "",
    ]
    if results:
        mi = results[-1]["machine"]
        lines += [
            "## Machine",
            "",
            "| | |",
            "| --- | --- |",
            f"| CPU | {mi['cpu']} |",
            f"| cores | {mi['cores']} |",
            f"| memory | {mi['memory_gb']} GB |",
            f"| OS | {mi['os']} |",
            f"| Python | {mi['python']} |",
            *[f"| {k} | {v} |" for k, v in mi["versions"].items()],
            "",
        ]
    full_targets = "; ".join(f"{k}: ≤ {_duration(v[0])}, peak ≤ {v[1] // 1024} GB" for k, v in TARGET_FULL_RUN.items())
    lines += [
        "## Targets",
        "",
        f"On 2 cores and 24 GB. Full run {full_targets}. At {', '.join(FLOOR_TARGET_SIZES)}: ingest ≤ "
        f"{TARGET_STAGE_VS_FLOOR['ingest']:g}× its floor, dbt ≤ {TARGET_STAGE_VS_FLOOR['dbt']:g}× its floor, "
        f"daily run ≤ {TARGET_DAILY_SECONDS['L']} s, Shopify import ≤ {TARGET_IMPORT_VS_CONTRACT:g}× contract CSVs. "
        f"At {', '.join(DASHBOARD_TARGET_SIZES)}: every dashboard page ≤ {TARGET_DASHBOARD_WARM_SECONDS:g} s warm.",
        "Training, scoring and publish are reported against their floors without a target. A target is",
        "judged (✔ met, ✘ not met) only at the size it is set for; elsewhere the row shows the same numbers",
        "for reference (–), as fixed start-up costs dominate the small sizes. – in a number: not measured",
        "(results written before that measurement existed, or a step that failed). *ratio* = measured ÷ floor;",
        "*previous → now*: the same number in the run this one replaced (section *Trend* of each size).",
        "",
        "| size | target | measured | floor | ratio | met | previous → now |",
        "| --- | --- | ---: | ---: | ---: | :---: | ---: |",
    ]
    for r in results:
        for row in target_rows(r):
            lines.append(
                f"| {r['size']} | {row['target']} | {row['measured']} | {row['floor']} | {row['ratio']} "
                f"| {_mark(row['ok'])} | {row['previous → now']} |"
            )
    speeds = [(r["size"], r["speed_reference_seconds"]) for r in results if r.get("speed_reference_seconds")]
    if speeds:
        lines += [
            "",
            "Machine speed reference of each run (the same fixed DuckDB workload at its start; lower is faster): "
            + ", ".join(f"{size} {secs:.2f} s" for size, secs in speeds)
            + ". Shared machines vary: compare a size's times with another run's only in that light.",
        ]
    lines += per_million_section(results)
    lines += [
        "",
        "### How the targets are judged",
        "",
        "- *full run*: `retain run` (the full Dagster job: ingest, dbt build with every test, training,",
        "  scoring and recommendations, outreach lists, CRM exports, uplift, a full publish), wall time and",
        "  the peak of its process tree (dbt's child process included).",
        "- *against its floor*: each stage of the full run against the least work that gives the same",
        "  output, measured in the same benchmark run on the same data, each floor in its own process",
        "  right after the full run (`bench/floors.py`). A stage's seconds are its steps' time in the run",
        "  (`published/status.json`); a floor's seconds are only its timed part (no interpreter start-up,",
        "  no imports, no preparation):",
        "  - *ingest* (target ≤ 1.5×): the ingest stage against `CREATE TABLE <source> AS SELECT * FROM",
        "    read_csv([its landing files])` for every source into a new DuckDB file: no sha256, validation,",
        "    quarantine, ledger or identity resolution.",
        "  - *dbt* (target ≤ 1.3×): `dbt build` of the KPI marts and everything upstream (models, unit tests",
        "    and data tests) against one hand-written DuckDB script that builds the same marts from the same",
        "    raw tables, no tests, each on its own copy of the warehouse holding only raw, wall seconds of",
        "    each process (`bench/bench_dbt.py`); both must give the same rows. The whole dbt stage of the",
        "    run (every model, both dbt steps) does more than that floor covers: its seconds are shown",
        "    in the stage table, not judged.",
        "  - *train* (no target): the train stage against the fit of the same scikit-learn estimator with the",
        "    promoted model's parameters (`ml.train.make_model`: gradient boosting with early stopping on the",
        "    same customer split) and its calibration, on the same training rows, the matrix already in",
        "    memory. The floor leaves out what the stage does besides: the feature SQL at five cut-offs and",
        "    the labels, the evaluation, the baselines (recency rule, logistic regression, BG/NBD), the",
        "    permutation importance of the drivers, saving the model.",
        "  - *score* (no target): the score stage against one `predict_proba` of the promoted model on every",
        "    customer's matrix already in memory. The stage also builds today's features in SQL, explains",
        "    each risk (one more prediction per driver group), fits BG/NBD and Gamma-Gamma for P(alive) and",
        "    CLV, writes the scores, and computes every customer's product recommendations with their",
        "    backtest (that step counts as scoring).",
        "  - *publish* (no target): the full publish against `CREATE TABLE ... AS SELECT *` of the same tables",
        "    and views (those of `marts`, `ml` and `exports` that `pipelines/publish.py` copies) into a new",
        "    DuckDB file, under the same memory limit: no sorting by customer, no masking of contact data,",
        "    no snapshot metadata, no switch of `CURRENT`.",
        "- *daily run*: one more day of landing files (`retain generate --next-day`: the last",
        "  day's rows, copied with new ids and moved a day on), then `retain run --job daily_job`: ingest",
        "  of the new files, incremental dbt build with run-scoped tests, re-scoring every customer with",
        "  the current model, lists, exports and an incremental publish. Only ingest, the incremental",
        "  models and the publish shrink with the increment: every customer's risk moves each day (days",
        "  since the last order grow for all), so scoring, the lists and the exports redo every",
        "  customer, and Dagster and dbt start-up are fixed costs.",
        "- *dashboard*: the slowest page of `bench/bench_dashboard.py` (each page's data functions on the",
        "  published snapshot, median of the warm runs, two filter sets).",
        "- *for reference only*: pandas and hand-written DuckDB SQL compute the same 3 KPI results from the",
        "  landing CSVs; the SQL is the lower bound for any engine, so pandas ÷ SQL is the most any engine",
        "  can gain over pandas here. Retired targets: \"dbt ≥ 10× faster than pandas\" (replaced by dbt",
        "  against its floor) and \"daily run ≤ 30 s\" (now ≤ 45 s at L).",
        "- *previous → now*: before a size's results file is overwritten, the key numbers of the run it",
        "  replaces (full run, daily run, per-stage seconds, floors, speed reference, commit) are kept in",
        "  the new file under `previous`.",
    ]
    lines += notes_section()
    lines += import_section(results, imports or [])
    lines += recommend_section(recommends or [])
    for r in results:
        lines += ["", f"## {r['size']}: {r['customers']:,} customers", ""]
        load = r.get("load_average_at_start")
        lines.append(
            f"Run {r['started_at']} → {r.get('finished_at', '?')}; landing files "
            f"{_fmt(r.get('landing_mb'))} MB ({r.get('landing_format', 'csv')}); "
            f"1-minute load average at the start {_fmt(load, 1)} on {r['machine']['cores']} cores"
            + (" (other work was running: times are inflated)." if load and load > 1.5 else ".")
            + (" The load average after each step is in the table below: above the number of cores,"
               " the step shared the machine." if any("load_after" in m for m in r.get("steps", {}).values()) else "")
        )
        if r.get("speed_reference_seconds") is not None:
            lines[-1] += (
                f" Machine speed reference {r['speed_reference_seconds']:.2f} s (a fixed DuckDB workload"
                " measured at the start, `bench.common.speed_reference`; higher means a slower machine that day)."
            )
        rows = [(STEP_LABELS.get(name, name.replace("_", " ")), m) for name, m in r.get("steps", {}).items()]
        rows += [(f"floor of {name}", m) for name, m in (r.get("floors") or {}).items()]
        rows += [(f"KPIs by {KPI_LABELS[name]}", m) for name, m in r.get("kpi", {}).items()]
        rows += [("dashboard queries", r["dashboard"])] if r.get("dashboard") else []
        loads = any(m.get("load_after") is not None for _, m in rows)  # recorded since the floors came
        lines += [
            "",
            "| step | seconds | peak MB | ok |" + (" load average after |" if loads else ""),
            "| --- | ---: | ---: | --- |" + (" ---: |" if loads else ""),
        ]
        for label, m in rows:
            lines.append(
                f"| {label} | {m.get('wall_seconds', m['seconds']):,.1f} | {m['peak_mb']:,.0f} | {_mark(m['ok'])} |"
                + (f" {_fmt(m.get('load_after'), 1)} |" if loads else "")
            )
        for title, key in STAGE_TABLES:
            stages = r.get(key)
            if not stages:
                continue
            lines += [
                "",
                f"{title}:",
                "",
                "| stage | seconds | peak MB | rows in | rows out | checks passed / failed |",
                "| --- | ---: | ---: | ---: | ---: | ---: |",
            ]
            for st in stages:
                lines.append(
                    f"| {st['stage']} | {st['seconds']:,.1f} | {st.get('peak_rss_mb', 0):,.0f} "
                    f"| {st.get('rows_in', 0):,} | {st.get('rows_out', 0):,} "
                    f"| {st.get('checks_passed', 0)} / {st.get('checks_failed', 0)} |"
                )
            step = r.get("steps", {}).get("full_run" if key == "stages" else "incremental_run")
            if step:
                outside = step["seconds"] - sum(st["seconds"] for st in stages)
                what = ("outside the steps (start-up, definitions, bookkeeping)" if outside >= 0 else
                        "outside the steps (negative: steps ran side by side, their sum exceeds the run)")
                lines.append(f"| {what} | {outside:,.1f} | | | | |")
            lines += slowest_steps(r.get("step_seconds" if key == "stages" else "incremental_step_seconds"))
        lines += floor_table(r)
        lines += trend_table(r)
        if r.get("increment"):
            inc = r["increment"]
            lines += [
                "",
                f"The increment added {inc['day']}: "
                + ", ".join(f"{n} {c:,}" for n, c in inc["rows"].items())
                + " rows.",
            ]
        pages = (r.get("dashboard") or {}).get("pages")
        if pages:
            lines += [
                "",
                "Dashboard page queries on the published snapshot (`bench/bench_dashboard.py`; target at "
                f"{', '.join(DASHBOARD_TARGET_SIZES)}: ≤ {TARGET_DASHBOARD_WARM_SECONDS:g} s warm):",
                "",
                "| page | filters | cold s | warm s (median) |",
                "| --- | --- | ---: | ---: |",
            ]
            lines += [f"| {p['page']} | {p['filters']} | {p['cold']:.3f} | {p['warm']:.3f} |" for p in pages]
        comp = r.get("comparison", {})
        lines += [
            "",
            "The same KPIs (`kpi_monthly`, `retention_cohorts`, customer summary), side by side. Seconds",
            "exclude interpreter start-up; the dbt stage is its steps' time in the run (all models and tests).",
            "",
            "| engine | seconds | peak MB | × hand-written SQL over CSV |",
            "| --- | ---: | ---: | ---: |",
        ]
        sql_s = comp.get("sql_csv_seconds")
        dbt_peaks = [st.get("peak_rss_mb", 0) for st in r.get("stages", []) if is_dbt_stage(st["stage"])]
        dbt_peak = max(dbt_peaks, default=None)
        engines = [("retain dbt stage", comp.get("dbt_seconds"), dbt_peak)]
        for name, m in r.get("kpi", {}).items():
            engines.append((KPI_LABELS[name], m.get("seconds") if m["ok"] else None, m["peak_mb"]))
        for label, secs, peak in engines:
            ratio = secs / sql_s if secs and sql_s else None
            lines.append(f"| {label} | {_fmt(secs, 2)} | {_fmt(peak, 0)} | {_fmt(ratio, 2, '×')} |")
        if comp.get("pandas_timed_out"):
            lines.append("\npandas did not finish within its timeout.")
        lines += ["", "Agreement:", ""]
        for name, problems in r.get("agreement", {}).items():
            if isinstance(problems, dict):
                for part, p in problems.items():
                    state = p if isinstance(p, str) else ("same numbers" if not p else f"{len(p)} difference(s)")
                    lines.append(f"- {AGREEMENT_LABELS[name]}, {part}: {state}")
                    lines += [f"  - {x}" for x in (p if isinstance(p, list) else [])[:5]]
            else:
                lines.append(
                    f"- {AGREEMENT_LABELS[name]}: "
                    + ("same numbers" if not problems else f"{len(problems)} difference(s)")
                )
                lines += [f"  - {x}" for x in problems[:5]]
        same = r.get("dbt_vs_hand_sql") or {}
        if same.get("steps"):
            marts = same.get("mismatches") or {}
            lines += [
                "",
                f"dbt against hand-written DuckDB SQL that builds the same {len(marts)} marts "
                f"({', '.join(f'`{m}`' for m in marts)}) from the same raw tables, each on its own copy of the "
                "warehouse holding only raw (`bench/bench_dbt.py`): `dbt build` of those marts and everything "
                "upstream (models, unit tests and data tests) against one SQL script (no tests). Wall seconds "
                "of each process, start-up included.",
                "",
                "| step | seconds | peak MB | × hand SQL |",
                "| --- | ---: | ---: | ---: |",
            ]
            hand = same["steps"].get("hand SQL", {}).get("seconds")
            for name, st in same["steps"].items():
                ratio = st["seconds"] / hand if hand else None
                lines.append(f"| {name} | {st['seconds']:,.1f} | {st['peak_mb']:,.0f} | {_fmt(ratio, 2, '×')} |")
            differ = {m: n for m, n in marts.items() if n}
            lines += [
                "",
                "Same numbers in every mart." if not differ else f"Rows that differ, per mart: {differ}.",
            ]
        if r.get("problems"):
            lines += ["", "Problems in this run:", ""] + [f"- {p}" for p in r["problems"]]
    return "\n".join(lines) + "\n"


#: How many of a run's Dagster steps `slowest_steps` lists.
SLOWEST_STEPS = 8


def slowest_steps(seconds: dict[str, float] | None) -> list[str]:
    """The run's slowest Dagster steps (from `retain run`'s output), as a sentence under its stage table."""
    if not seconds:
        return []
    top = sorted(seconds.items(), key=lambda kv: -kv[1])[:SLOWEST_STEPS]
    return ["", "Slowest steps (Dagster ops, from the run's output): "
            + ", ".join(f"`{name}` {value:,.1f} s" for name, value in top) + "."]


def floor_table(r: dict) -> list[str]:
    """One size's stages against their floors: seconds in the run, what is compared, the floor, the ratio."""
    rows = stage_floors(r)
    if not rows:
        return []
    lines = [
        "",
        "Stages of the full run against their floors (measured in this benchmark run, on the same data;",
        "*compared* is the stage's seconds in the run, for dbt `dbt build` of the same marts as the floor;",
        "*floor s* is the floor's timed part only, the step table above gives its process's wall time. The",
        "dbt comparison runs both sides as separate processes, start-up included, so its `dbt build` can take",
        "longer than the run's whole dbt stage):",
        "",
        "| stage | in the full run s | compared s | floor | floor s | floor peak MB | ratio | target |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        name, limit = row["stage"], TARGET_STAGE_VS_FLOOR.get(row["stage"])
        rec = row.get("floor_record") or {}
        peak = rec.get("peak_mb")
        if name == "dbt":
            peak = (((r.get("dbt_vs_hand_sql") or {}).get("steps") or {}).get("hand SQL") or {}).get("peak_mb")
        detail = FLOORS[name]
        if name == "train" and rec.get("fit_rows"):
            detail += f" ({rec['fit_rows']:,} fit and {rec['calibration_rows']:,} calibration rows)"
        if name == "score" and rec.get("rows"):
            detail += f" ({rec['rows']:,} customers)"
        if name == "publish" and rec.get("tables"):
            detail += f" ({rec['tables']} tables, {rec['rows']:,} rows)"
        if name == "ingest" and rec.get("files"):
            detail += f" ({rec['files']} files, {rec['mb']:,.0f} MB, {rec['rows']:,} rows)"
        target = "–" if limit is None else f"≤ {limit:g}× at {', '.join(FLOOR_TARGET_SIZES)}"
        lines.append(
            f"| {name} | {_fmt(row['in_run'])} | {_fmt(row['measured'])} | {detail} | {_fmt(row['floor'], 2)} "
            f"| {_fmt(peak, 0)} | {_fmt(row['ratio'], 2, '×')} | {target} |"
        )
    return lines


def trend_table(r: dict) -> list[str]:
    """One size's key numbers against the run its results file replaced (`previous`)."""
    prev = r.get("previous")
    if not prev:
        return ["", "Trend: no previous run of this size on record (the results file it replaced, if any, "
                "was written before previous runs were kept)."]
    steps = r.get("steps", {})
    full, daily = steps.get("full_run") or {}, steps.get("incremental_run") or {}
    now = key_numbers(r)
    lines = [
        "",
        f"Trend against the previous run of this size ({prev.get('started_at') or '?'}, commit "
        f"{prev.get('commit') or 'not recorded'}) → this run ({r.get('started_at')}, commit {r.get('commit') or '?'}):",
        "",
        "| | previous | now | now ÷ previous |",
        "| --- | ---: | ---: | ---: |",
    ]

    def add(label: str, a, b, digits: int = 1) -> None:
        ratio = b / a if a and b is not None else None
        lines.append(f"| {label} | {_fmt(a, digits)} | {_fmt(b, digits)} | {_fmt(ratio, 2, '×')} |")

    add("machine speed reference s (lower is faster)", prev.get("speed_reference_seconds"),
        r.get("speed_reference_seconds"), 2)
    add("full run s", prev.get("full_run_seconds"), full.get("seconds") if full.get("ok") else None)
    for name in dict.fromkeys([*now["stages"], *(prev.get("stages") or {})]):
        add(f"stage {name} s", (prev.get("stages") or {}).get(name), now["stages"].get(name))
    for name in FLOORS:
        a = (prev.get("floors") or {}).get(name) if name != "dbt" else prev.get("hand_sql_seconds")
        b = now["floors"].get(name) if name != "dbt" else now["hand_sql_seconds"]
        if a is not None or b is not None:
            add(f"floor of {name} s", a, b, 2)
    add("full run peak MB", prev.get("full_run_peak_mb"), full.get("peak_mb") if full.get("ok") else None, 0)
    add("daily run s", prev.get("daily_seconds"), daily.get("seconds") if daily.get("ok") else None)
    return lines


STAGE_TABLES = (
    ("Full run, per stage", "stages"),
    ("Daily run (`retain run --job daily_job` after one more day), per stage", "incremental_stages"),
)
STEP_LABELS = {"incremental_run": "daily run (`daily_job`)"}
KPI_LABELS = {
    "sql_csv": "hand-written DuckDB SQL over the landing CSVs",
    "sql_raw": "hand-written DuckDB SQL over the raw tables",
    "pandas": "pandas over the landing CSVs",
}
AGREEMENT_LABELS = {
    "sql_vs_pandas": "hand-written SQL vs pandas",
    "sql_csv_vs_raw": "SQL over CSV vs SQL over raw tables",
    "sql_vs_marts": "hand-written SQL vs retain's marts",
}


def parse_sizes(text: str) -> list[tuple[str, int]]:
    """`S,M,L` (or numbers of customers) into (label, customers) pairs."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.upper() in SIZES:
            out.append((part.upper(), SIZES[part.upper()]))
        elif part.replace("_", "").isdigit():
            out.append((f"N{int(part.replace('_', ''))}", int(part.replace("_", ""))))
        else:
            raise argparse.ArgumentTypeError(f"unknown size {part!r}: use S, M, L, XL or a number of customers")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit code (1 if a size's pipeline run failed or the KPIs disagree)."""
    parser = argparse.ArgumentParser(
        description="retain benchmark suite",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("S"), help="S,M,L,XL or numbers of customers")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "bench", help="root of the data folders")
    parser.add_argument("--keep", action="store_true", help="keep each size's data folder afterwards")
    parser.add_argument("--skip-pandas", action="store_true", help="do not run the pandas comparison")
    parser.add_argument(
        "--skip-dbt-vs-sql", action="store_true", help="do not run dbt against hand-written SQL of the same marts"
    )
    parser.add_argument("--pandas-timeout", type=float, default=1800, help="seconds before pandas is stopped")
    parser.add_argument("--skip-import", action="store_true", help="do not run the Shopify import comparison")
    parser.add_argument(
        "--landing-format", choices=("csv", "parquet"), default="csv",
        help="format of the generated landing files: parquet takes 14%% of the disk CSV does (for XL); "
             "the pandas comparison reads CSV only and is skipped with parquet",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for <size>.json")
    parser.add_argument("--docs", type=Path, default=DOCS, help="markdown report to write")
    args = parser.parse_args(argv)

    args.results.mkdir(parents=True, exist_ok=True)
    failed = False
    for label, customers in args.sizes:
        path = args.results / f"{label}.json"
        try:  # the run this one replaces: its key numbers stay in the new record, for the trend
            previous = key_numbers(json.loads(path.read_text())) if path.exists() else None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            previous = None
        result = bench_size(
            label, customers, args.out, args.keep, args.skip_pandas, args.pandas_timeout, args.skip_dbt_vs_sql,
            args.skip_import, args.landing_format,
        )
        if previous:
            result["previous"] = previous
        path.write_text(portable_json(result, args.out))
        failed |= bool(result["problems"])
        say(f"== size {label} done; results in {path}")
        for row in target_rows(result):
            detail = "".join(f"; {k} {row[k]}" for k in ("floor", "ratio", "previous → now") if row[k] != "–")
            say(f"  {_mark(row['ok'])} {row['target']}: {row['measured']}{detail}")
        for p in result["problems"]:
            say(f"  problem: {p}")

    say(f"wrote {write_docs(args.results, args.docs)}")
    return 1 if failed else 0


def write_docs(results_dir: Path = RESULTS, docs: Path = DOCS) -> Path:
    """Rewrite the report from every size's results and every kept import comparison (`import/*.json`)."""
    results = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]
    imports = [json.loads(p.read_text()) for p in sorted((results_dir / "import").glob("*.json"))]
    from bench.bench_engines import load_records, section

    recommends = [json.loads(p.read_text()) for p in sorted((results_dir / "recommend").glob("*.json"))]
    docs.parent.mkdir(parents=True, exist_ok=True)
    text = render_markdown(results, imports, recommends)
    # DuckDB against Spark on the same shop (bench/bench_engines.py), when measured
    docs.write_text(text.rstrip("\n") + "\n" + "\n".join(section(load_records(results_dir / "engines"))) + "\n")
    return docs


if __name__ == "__main__":
    sys.exit(main())
