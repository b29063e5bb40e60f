"""Ingestion speed against a bare DuckDB load of the same files, side by side in one run.

    python -m bench.bench_ingest --customers 1000000            # generate (once) and measure
    python -m bench.bench_ingest --customers 100000 --format csv.gz

Generates a shop with `pipelines.generate.generate` into `--out/ingest-<N>-<format>/landing`
(kept and reused: pass `--regenerate` to rebuild), reads every file once to warm the page
cache, then runs, each in its own process (so peak memory is its own):

1. baseline: for each source, `CREATE TABLE <source> AS SELECT * FROM read_csv([...files])`
   (read_parquet / read_json for those formats) into a fresh DuckDB file: no validation;
2. ingest: `pipelines.ingest.ingest()` into a fresh warehouse: sha256, validation,
   quarantine, ledger, one transaction per file;
3. re-run: `ingest()` again over the same files (must load nothing).

Prints seconds (measured inside each process, without interpreter start-up), peak memory
and the ratio ingest / baseline; the target is at most 2. With `--repeat N` both sides run
N times, alternating, and the fastest run of each counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.common import run_measured
from pipelines.core.config import PROJECT_ROOT
from pipelines.core.contract import SOURCE_NAMES

READERS = {"csv": "read_csv", "csv.gz": "read_csv", "parquet": "read_parquet", "jsonl": "read_json"}


def step_baseline(landing: Path, warehouse: Path, fmt: str) -> dict:
    """The bare load: one CREATE TABLE AS SELECT * per source over all its files."""
    import duckdb

    from pipelines.ingest import landing_files

    t0 = time.perf_counter()
    rows = 0
    with duckdb.connect(str(warehouse)) as con:
        for name in SOURCE_NAMES:
            files = [str(p) for p in landing_files(landing, name)]
            if not files:
                continue
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM {READERS[fmt]}({files!r})")
            rows += con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    return {"seconds": time.perf_counter() - t0, "rows": rows}


def step_ingest(landing: Path, warehouse: Path) -> dict:
    """`ingest()` over every source; per-source seconds too."""
    from pipelines.ingest import ingest

    t0 = time.perf_counter()
    results = ingest(landing=landing, warehouse=warehouse)
    per_source: dict[str, float] = {}
    for r in results:
        per_source[r.source] = per_source.get(r.source, 0.0) + r.seconds
    return {
        "seconds": time.perf_counter() - t0,
        "rows": sum(r.rows_loaded for r in results),
        "quarantined": sum(r.rows_quarantined for r in results),
        "statuses": sorted({r.status for r in results}),
        "per_source": {k: round(v, 2) for k, v in per_source.items()},
    }


def check_row_numbers(landing: Path, warehouse: Path) -> str:
    """Compare `_source_row` of the biggest CSV file with a reference numbering of that file.

    Row numbers come from the insertion order of a parallel load; this checks them at a size
    the tests do not reach (row_number() OVER () over a plain scan is in file order).
    """
    import duckdb

    from pipelines.core.contract import source
    from pipelines.ingest import landing_files

    files = [(p.stat().st_size, name, p) for name in SOURCE_NAMES for p in landing_files(landing, name)
             if p.name.endswith(".csv")]
    if not files:
        return "no CSV file to check row numbers on"
    _, name, path = max(files)
    key = source(name).primary_key[0]
    rel = path.relative_to(landing).as_posix()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        wrong, total = con.execute(
            f"""SELECT count(*) FILTER (WHERE r._source_row <> f.n), count(*)
                FROM raw.{name} r JOIN (SELECT {key}, row_number() OVER () AS n
                                        FROM read_csv('{path}', all_varchar = true)) f USING ({key})
                WHERE r._source_file = ?""",
            [rel],
        ).fetchone()
    return f"row numbers of {rel}: {wrong:,} of {total:,} differ from the file's order"


def _child(args: argparse.Namespace) -> None:
    if args.step == "baseline":
        out = step_baseline(args.landing, args.warehouse, args.format)
    else:
        out = step_ingest(args.landing, args.warehouse)
    args.result.write_text(json.dumps(out))


def _measure(step: str, landing: Path, warehouse: Path, fmt: str, work: Path) -> tuple[dict, float]:
    result = work / f"{step}.json"
    cmd = [sys.executable, "-m", "bench.bench_ingest", "--step", step, "--landing", str(landing),
           "--warehouse", str(warehouse), "--format", fmt, "--result", str(result)]
    m = run_measured(cmd, log=work / f"{step}.log", cwd=PROJECT_ROOT)
    if not m.ok:
        sys.exit(f"{step} failed; see {work / f'{step}.log'}")
    return json.loads(result.read_text()), m.peak_mb


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; run the comparison (or one measured step, when called as a child)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--format", default="csv", choices=sorted(READERS))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "data" / "bench")
    p.add_argument("--regenerate", action="store_true", help="generate the landing files again")
    p.add_argument("--repeat", type=int, default=1, help="measure each side this many times; report the fastest")
    p.add_argument("--step", choices=["baseline", "ingest"], help=argparse.SUPPRESS)
    p.add_argument("--landing", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        _child(args)
        return

    from pipelines.generate import generate

    work = args.out / f"ingest-{args.customers}-{args.format}"
    landing = work / "landing"
    work.mkdir(parents=True, exist_ok=True)
    if args.regenerate or not landing.is_dir():
        t0 = time.perf_counter()
        counts = generate(landing, customers=args.customers, seed=args.seed, fmt=args.format, clean=True)
        print(f"generated {sum(counts.values()):,} rows in {time.perf_counter() - t0:.1f} s into {landing}")
    files = sorted(p for p in landing.rglob("*") if p.is_file())
    size = 0
    for f in files:  # warm the page cache so neither side pays for the first read from disk
        size += len(f.read_bytes())
    print(f"{len(files)} files, {size / 1e6:,.0f} MB ({args.format})")

    load_before = os.getloadavg()[0]
    # Alternate the two, fresh databases each time; report the fastest of each (the least
    # disturbed by whatever else the machine is doing) and every time measured.
    runs: dict[str, list[tuple[dict, float]]] = {"baseline": [], "ingest": []}
    for _ in range(args.repeat):
        for step, db in (("baseline", "baseline.duckdb"), ("ingest", "warehouse.duckdb")):
            for stale in work.glob(db + "*"):
                stale.unlink()
            runs[step].append(_measure(step, landing, work / db, args.format, work))
    again, again_mb = _measure("ingest", landing, work / "warehouse.duckdb", args.format, work)
    base, base_mb = min(runs["baseline"], key=lambda r: r[0]["seconds"])
    ing, ing_mb = min(runs["ingest"], key=lambda r: r[0]["seconds"])
    ratio = ing["seconds"] / base["seconds"]
    print()
    print(f"{'step':<34}{'seconds':>9}{'peak MB':>9}{'rows':>13}   all runs (s)")
    for label, (res, mb), step in (("bare CREATE TABLE AS read_*", (base, base_mb), "baseline"),
                                   ("ingest()", (ing, ing_mb), "ingest")):
        every = ", ".join(f"{r['seconds']:.1f}" for r, _ in runs[step])
        print(f"{label:<34}{res['seconds']:>9.2f}{mb:>9.0f}{res['rows']:>13,}   {every}")
    print(f"{'ingest() again (nothing new)':<34}{again['seconds']:>9.2f}{again_mb:>9.0f}{again['rows']:>13,}")
    print()
    print(f"ingest / bare load = {ratio:.2f} (target <= 2); quarantined {ing['quarantined']:,}; "
          f"statuses {ing['statuses']} then {again['statuses']}")
    print("ingest seconds per source: " + ", ".join(f"{k} {v}" for k, v in ing["per_source"].items()))
    print(f"load average during the run: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} CPUs): other work on the machine slows both sides")
    print(check_row_numbers(landing, work / "warehouse.duckdb"))


if __name__ == "__main__":
    main()
