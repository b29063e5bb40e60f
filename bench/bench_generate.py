"""Benchmark the synthetic data generator: wall time, CPU time, rows per source, peak memory.

    python -m bench.bench_generate --customers 1000000            # the 2-minute target
    python -m bench.bench_generate --customers 100000 --effects   # plus the planted-effect sizes
    python -m bench.bench_generate --customers 320000 --as-platforms   # platform files, ~1M order lines

Generates into a temporary folder (deleted afterwards unless --out is given) in this process,
so `ru_maxrss` of the process is the generator's peak resident memory; children (none are
started today) are reported too. The machine's load average is printed because wall time on
a shared machine depends on it; CPU time does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from pipelines.generate import FORMATS, generate
from pipelines.generate.effects import measure_effects
from pipelines.generate.platforms import generate_platforms


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print (and return) its numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="csv")
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 10, 31))
    parser.add_argument("--out", type=Path, help="keep the files here (default: a temporary folder, deleted)")
    parser.add_argument("--effects", action="store_true", help="also measure the planted effects (slow at 1M)")
    parser.add_argument("--as-platforms", action="store_true",
                        help="write the platform export files instead (generate --as-platforms)")
    parser.add_argument("--json", type=Path, help="write the numbers to this JSON file too")
    args = parser.parse_args(argv)
    if args.as_platforms and args.effects:
        parser.error("--effects measures contract files; it cannot be combined with --as-platforms")

    out = args.out or Path(tempfile.mkdtemp(prefix="retain-bench-generate-"))
    load_before = os.getloadavg()
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    try:
        if args.as_platforms:
            counts = generate_platforms(out, customers=args.customers, seed=args.seed, end=args.end, clean=True)
        else:
            counts = generate(out, customers=args.customers, seed=args.seed, end=args.end, fmt=args.fmt, clean=True)
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        effects = measure_effects(out, args.end) if args.effects else None
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    result = {
        "customers": args.customers,
        "format": "platforms" if args.as_platforms else args.fmt,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "rows": counts,
        "total_rows": sum(counts.values()),
        "rows_per_second": round(sum(counts.values()) / wall),
        "output_mb": round(size / 2**20, 1),
        "peak_rss_mb": round(_peak_mb(resource.RUSAGE_SELF), 1),
        "peak_rss_children_mb": round(_peak_mb(resource.RUSAGE_CHILDREN), 1),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"generate --customers {args.customers:,} --format {result['format']}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"peak RSS {result['peak_rss_mb']:,.0f} MB (children {result['peak_rss_children_mb']:,.0f} MB), "
          f"{result['output_mb']:,.0f} MB written")
    width = max(len(name) for name in counts)
    for name, n in counts.items():
        print(f"  {name:{width}s} {n:>12,}")
    print(f"  {'total':{width}s} {result['total_rows']:>12,}  ({result['rows_per_second']:,} rows/s)")
    print(f"  load average before {load_before[0]:.1f}, after {result['load_average_after'][0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    if effects is not None:
        result["effects"] = effects
        print(json.dumps(effects, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
