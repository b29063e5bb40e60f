"""Server time of every dashboard page: the data functions each page calls, without Streamlit's cache.

    python -m bench.bench_dashboard --snapshot data/published/snapshot-....duckdb
    python -m bench.bench_dashboard --data-dir data/screens          # its current snapshot

For each page it runs the page's data function (`dashboards.data.PAGES[...]`, plus the
search and the profile of Customer 360) on a fresh read-only connection: once cold (the
first reader after a publish pays for reading the file) and then `--repeat` times warm (a
running dashboard keeps its connection), each run on a new cursor as in the dashboard. Two
filter sets: everything (the default last 12
months) and a narrow one (one country, one channel, a segment). Target: ≤ 1 s per page.
Prints a table (wall times and the process's CPU time per page, which a busy machine does
not stretch) and the process's peak memory (RSS, which includes DuckDB's buffers).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

TARGET_SECONDS = 1.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    """Time every page's queries on one snapshot and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshot", type=Path, help="a published snapshot file")
    source.add_argument("--data-dir", type=Path, help="a retain data folder: its current snapshot")
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per page and filter set")
    args = parser.parse_args(argv)

    # Streamlit warns that there is no runtime on import of the cached helpers; not relevant here.
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from dashboards.data.connection import connect, query, tables
    from dashboards.data.customer_360 import customer_360, find_customers
    from dashboards.data.filters import Filters, filter_options
    from dashboards.data.loaders import PAGES
    from pipelines.publish import current_snapshot

    path = args.snapshot or current_snapshot(args.data_dir / "published")
    if path is None or not Path(path).exists():
        print(f"no snapshot found ({args.snapshot or args.data_dir})", file=sys.stderr)
        return 2
    con = connect(path)
    customers = int(query(con, "select count(*) as n from marts.dim_customers").iloc[0]["n"])
    orders = int(query(con, "select count(*) as n from marts.fct_orders").iloc[0]["n"])
    events = (
        int(query(con, "select count(*) as n from marts.fct_customer_events").iloc[0]["n"])
        if "marts.fct_customer_events" in tables(con) else 0
    )
    options = filter_options(con)
    con.close()

    months = options["months"]
    everything = Filters(start=months[max(0, len(months) - 12)], end=months[-1])
    segment = "risk:high" if "risk:high" in options["segments"] else (options["segments"] + [""])[1]
    narrow = replace(everything, countries=tuple(options["countries"][:1]), channels=tuple(options["channels"][:1]),
                     segment=segment)
    probe = connect(path)
    sample = query(
        probe, "select customer_id, email from marts.dim_customers where email is not null "
        "order by orders_count desc limit 1",
    ).iloc[0]
    probe.close()

    jobs = [(page, label, f) for page in PAGES for label, f in (("all", everything), ("narrow", narrow))]
    print(f"snapshot {path}")
    print(f"{customers:,} customers, {orders:,} orders, {events:,} timeline events; "
          f"period {everything.start:%Y-%m} – {everything.end:%Y-%m}; narrow = {narrow.describe()}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a busy machine stretches wall time; "
          "cpu s is the process's own CPU time)")
    print(f"{'page':15} {'filters':7} {'cold s':>7} {'warm s':>7} {'max s':>7} {'cpu s':>7}  target ≤ "
          f"{TARGET_SECONDS:.0f} s")
    worst = 0.0

    def timed(fn) -> tuple[float, float, float, float]:
        con = connect(path)

        def once() -> tuple[float, float]:
            # A new cursor per run, as the dashboard gives every page load: warm buffers, but no
            # temp tables or memos left from the previous run.
            with con.cursor() as cur:
                c0, t0 = _cpu_seconds(), time.perf_counter()
                fn(cur)
                return time.perf_counter() - t0, _cpu_seconds() - c0

        try:
            cold, _ = once()
            warm = [once() for _ in range(args.repeat)]
        finally:
            con.close()
        walls = [w for w, _ in warm]
        return cold, statistics.median(walls), max(walls), statistics.median(c for _, c in warm)

    rows = [(page, label, lambda c, page=page, f=f: PAGES[page](c, f)) for page, label, f in jobs]
    rows.append(("customer_360", "search", lambda c: find_customers(c, sample["customer_id"])))
    rows.append(("customer_360", "profile", lambda c: customer_360(c, sample["customer_id"])))
    for page, label, fn in rows:
        cold, warm, worst_warm, cpu = timed(fn)
        worst = max(worst, warm)
        flag = "ok" if warm <= TARGET_SECONDS else "SLOW"
        print(f"{page:15} {label:7} {cold:7.3f} {warm:7.3f} {worst_warm:7.3f} {cpu:7.3f}  {flag}")
    print(f"slowest page (warm median): {worst:.3f} s; peak RSS {_peak_rss_mb():,.0f} MB")
    return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
