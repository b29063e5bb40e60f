"""DuckDB against local Spark on the same shop: `retain run`, then one more day and the daily job.

    python -m bench.bench_engines --sizes M          # 100,000 customers
    python -m bench.bench_engines --sizes M,L        # then 1,000,000

For each size the shop is generated once (`retain generate --customers N --seed 7`) and its
landing files copied to a second data folder. Then, for each engine (RETAIN_ENGINE=duckdb,
then spark), each in its own process and measured (wall time, peak memory of the process
tree, the JVM included): `retain run` (full job), `retain generate --next-day`, `retain run
--job daily_job`. The seconds per stage come from each run's `published/status.json`. After
both, every table dbt built and the churn scores are compared (`pipelines.engines`).

Writes `bench/results/engines/<size>.json` and the "DuckDB and Spark" section of
`docs/benchmarks.md` (regenerated with the rest of the report).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.common import machine_info, run_measured, tail

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "engines"
SIZES = {"S": 10_000, "M": 100_000, "L": 1_000_000}
SEED = 7
ENGINES = ("duckdb", "spark")


# Spark settings of the measured runs (RETAIN_SPARK_* variables; `--spark-memory`, `--spark-partitions`)
SPARK_ENV: dict[str, str] = {}


def _env(data_dir: Path, engine: str) -> dict[str, str]:
    from bench.run import child_env

    env = child_env(data_dir)
    env["RETAIN_ENGINE"] = engine
    if engine == "spark":
        env.update(SPARK_ENV)
    return env


def _retain() -> list[str]:
    from bench.run import retain_command

    return retain_command()


def _step(name: str, cmd: list[str], data_dir: Path, engine: str, logs: Path) -> dict:
    load_before = round(os.getloadavg()[0], 1)
    m = run_measured(cmd, log=logs / f"{engine}-{name}.log", env=_env(data_dir, engine), cwd=ROOT)
    load = [load_before, round(os.getloadavg()[0], 1)]
    print(f"  {engine:<7}{name:<10}{m.seconds:9.1f} s  peak {m.peak_mb:8.0f} MB  load {load[0]} / {load[1]}  "
          f"{'ok' if m.ok else 'FAILED'}", flush=True)
    if not m.ok:
        print("    " + tail(m.log, 20).replace("\n", "\n    "), flush=True)
    status = {}
    path = data_dir / "published" / "status.json"
    if path.exists():
        status = json.loads(path.read_text()).get("last_run", {}) or {}
    stages = {s["stage"]: round(s.get("seconds", 0.0), 1) for s in status.get("stages", []) if "stage" in s}
    return {"seconds": round(m.seconds, 1), "peak_mb": round(m.peak_mb), "ok": m.ok, "stages": stages, "load": load}


def bench_size(label: str, customers: int, out: Path, keep: bool, engines: tuple[str, ...] = ENGINES) -> dict:
    """Both engines on one generated shop (in the order of `engines`); returns the record written to
    results/engines/<label>.json."""
    from pipelines.engines import MODEL_SCHEMAS, compare_schema, compare_warehouses

    root = out / f"engines-{label}"
    shutil.rmtree(root, ignore_errors=True)
    logs = root / "logs"
    logs.mkdir(parents=True)
    folders = {engine: root / engine for engine in engines}
    print(f"== {label}: {customers:,} customers in {root}", flush=True)
    first, second = engines
    gen = _step("generate", [*_retain(), "generate", "--customers", str(customers), "--seed", str(SEED), "--clean"],
                folders[first], first, logs)
    shutil.copytree(folders[first] / "landing", folders[second] / "landing")
    record: dict = {"size": label, "customers": customers, "generate": gen, "machine": machine_info(),
                    "load_average": [round(os.getloadavg()[0], 1)],
                    "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "engines": {},
                    "spark_settings": _spark_settings()}
    for engine, folder in folders.items():
        runs = {"full": _step("full", [*_retain(), "run"], folder, engine, logs)}
        _step("next-day", [*_retain(), "generate", "--next-day"], folder, engine, logs)
        runs["daily"] = _step("daily", [*_retain(), "run", "--job", "daily_job"], folder, engine, logs)
        record["engines"][engine] = runs
        _save_partial(record)
    record["load_average"].append(round(os.getloadavg()[0], 1))
    if all(r["ok"] for e in record["engines"].values() for r in e.values()):
        duck = folders["duckdb"] / "warehouse.duckdb"
        lake = str(folders["spark"] / "lake" / "warehouse")
        diffs = [d for s in MODEL_SCHEMAS for d in compare_schema(duck, s, spark_warehouse_dir=lake)]
        diffs += compare_warehouses(duck, folders["spark"] / "warehouse.duckdb", "ml", ["churn_scores"])
        record["tables_compared"] = len(diffs)
        record["tables_differing"] = [str(d) for d in diffs if not d.equal]
        record["lake_mb"] = round(sum(p.stat().st_size for p in (folders["spark"] / "lake").rglob("*")
                                      if p.is_file()) / 2**20)
    if not keep:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
    return record


def _spark_settings() -> dict[str, str]:
    """Driver memory and shuffle partitions the Spark runs used (the defaults unless set)."""
    return {"driver_memory": SPARK_ENV.get("RETAIN_SPARK_DRIVER_MEMORY", "2g"),
            "shuffle_partitions": SPARK_ENV.get("RETAIN_SPARK_SHUFFLE_PARTITIONS", "4")}


_PARTIAL: dict = {}


def _save_partial(record: dict) -> None:
    """Write what one size measured so far (`<results>/<size>.partial.json`): a long run stopped
    before the other engine still leaves its numbers."""
    if "results" in _PARTIAL:
        path = _PARTIAL["results"] / f"{record['size']}.partial.json"
        path.write_text(json.dumps(record, indent=2) + "\n")


def section(records: list[dict]) -> list[str]:
    """The "DuckDB and Spark" section of docs/benchmarks.md (empty without records)."""
    if not records:
        return []
    lines = [
        "",
        "## DuckDB and Spark",
        "",
        "The same generated shop through `retain run`, then one more day and `retain run --job daily_job`,",
        "with `RETAIN_ENGINE=duckdb` and with `RETAIN_ENGINE=spark` (dbt-spark through one local Spark",
        "Connect server per job, `local[2]`, scoring with `mapInPandas`; driver memory and shuffle partitions",
        "as the table says;",
        "`python -m bench.bench_engines`). Seconds per stage from each run's status; peak memory of the",
        "whole process tree (Spark's JVM included). Where Spark's time goes:",
        "[scale-out.md](scale-out.md#measured). Load average (1 minute) of the machine at the start / end",
        "of the full and of the daily run (other jobs ran too: 2 means both cores busy).",
        "",
        "| size | engine | full run s | ingest | dbt | train | score | daily run s | daily dbt | peak MB "
        "| tables equal | Spark memory, partitions | load full | load daily | measured |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |",
    ]
    for rec in records:
        equal = ("not compared" if "tables_compared" not in rec else
                 f"{rec['tables_compared'] - len(rec['tables_differing'])}/{rec['tables_compared']}")
        whole = " / ".join(str(x) for x in rec.get("load_average", []))
        conf = rec.get("spark_settings", {"driver_memory": "2g", "shuffle_partitions": "4"})
        spark_conf = f"{conf['driver_memory']}, {conf['shuffle_partitions']}"
        for engine, runs in sorted(rec["engines"].items()):
            full, daily = runs["full"], runs["daily"]
            st, ds = full["stages"], daily["stages"]
            load = [" / ".join(str(x) for x in r.get("load", [])) or whole for r in (full, daily)]
            lines.append(
                f"| {rec['size']} ({rec['customers']:,}) | {engine} | {full['seconds']:,.0f} "
                f"| {st.get('ingest', '')} | {st.get('dbt', '')} | {st.get('train', '')} | {st.get('score', '')} "
                f"| {daily['seconds']:,.0f} | {ds.get('dbt', '')} | {max(full['peak_mb'], daily['peak_mb']):,} "
                f"| {equal} | {spark_conf if engine == 'spark' else ''} "
                f"| {load[0]} | {load[1]} | {rec['measured_at']} |"
            )
    older = [rec["size"] for rec in records if "load" not in rec["engines"].get("spark", {}).get("full", {})]
    if older:
        lines += ["", f"Measured before each job shared one Spark Connect server and before scoring ran on Spark's "
                      f"workers (one JVM per dbt step, scores computed on the driver): {', '.join(older)}; "
                      "load average of the whole comparison, before / after."]
    return lines


def load_records(results: Path = RESULTS) -> list[dict]:
    """Every kept engine comparison, smallest size first."""
    order = {k: i for i, k in enumerate(SIZES)}
    found = sorted(results.glob("*.json")) if results.is_dir() else []
    paths = [p for p in found if not p.name.endswith(".partial.json")]
    records = [json.loads(p.read_text()) for p in paths]
    return sorted(records, key=lambda r: (order.get(r["size"], 9), r["customers"]))


def main(argv: list[str] | None = None) -> int:
    """Command line; returns 1 if a run failed or a table differs between the engines."""
    parser = argparse.ArgumentParser(description="DuckDB against local Spark on the same shop")
    parser.add_argument("--sizes", default="M", help="comma-separated S, M, L (10k, 100k, 1M customers)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "bench", help="root of the data folders")
    parser.add_argument("--keep", action="store_true", help="keep the data folders afterwards")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for <size>.json")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="the order the engines run in: duckdb,spark (default) or spark,duckdb")
    parser.add_argument("--spark-memory", default=None,
                        help="RETAIN_SPARK_DRIVER_MEMORY of the Spark runs (default retain's 2g; L needs more)")
    parser.add_argument("--spark-partitions", type=int, default=None,
                        help="RETAIN_SPARK_SHUFFLE_PARTITIONS of the Spark runs (default retain's 4)")
    args = parser.parse_args(argv)
    if args.spark_memory:
        SPARK_ENV["RETAIN_SPARK_DRIVER_MEMORY"] = args.spark_memory
    if args.spark_partitions:
        SPARK_ENV["RETAIN_SPARK_SHUFFLE_PARTITIONS"] = str(args.spark_partitions)
    engines = tuple(e.strip().lower() for e in args.engines.split(","))
    if sorted(engines) != sorted(ENGINES):
        parser.error(f"--engines must name both of {', '.join(ENGINES)} once, in the order to run them")
    args.results.mkdir(parents=True, exist_ok=True)
    _PARTIAL["results"] = args.results
    failed = False
    for label in [s.strip().upper() for s in args.sizes.split(",") if s.strip()]:
        if label not in SIZES:
            parser.error(f"unknown size {label!r}: use S, M or L")
        record = bench_size(label, SIZES[label], args.out, args.keep, engines)
        (args.results / f"{label}.json").write_text(json.dumps(record, indent=2) + "\n")
        (args.results / f"{label}.partial.json").unlink(missing_ok=True)
        failed |= bool(record.get("tables_differing")) or "tables_compared" not in record
    from bench.run import write_docs

    print(f"wrote {write_docs()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
