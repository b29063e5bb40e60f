"""Importing a Shopify orders export against loading the same orders from contract CSV files.

    python -m bench.bench_import --line-items 1000000          # the target size
    python -m bench.bench_import --line-items 100000 --repeat 2

Writes a Shopify "Export orders" CSV (79 columns, one row per line item, order-level columns
on an order's first row only, shop-local times with -0400/-0500 offsets across the end of
daylight saving, some orders without email) into `--out/import-<N>/shopify/landing/shopify/`
(kept and reused; `--regenerate` rebuilds it). Then, each in its own process:

1. import: `ingest()` over the Shopify export (→ orders, order_items, customers, returns),
2. the contract files: the same rows written as contract CSVs (`orders/`, `order_items/`,
   `customers/`, `returns/`, taken from the import's own raw tables, so both sides load the
   same orders) and loaded by `ingest()`,

and prints both times, peak memory and the ratio import / contract (target: at most 2).
Both runs include what a full `ingest()` always does (ledger, sha256, identity resolution).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import run_measured
from pipelines.core.config import PROJECT_ROOT
from tests.platform_fixtures import SHOPIFY_ORDERS_79

#: The 79-column header of Shopify's orders export (the tests' fixtures list every version).
COLUMNS_79 = SHOPIFY_ORDERS_79

#: What each generated export column holds (SQL over the generator's columns); the rest are empty.
_VALUES = {
    "Name": "'#' || (1000 + o)",
    "Email": "CASE WHEN c % 7 = 0 THEN '' ELSE 'Buyer.' || c || '@Example.com' END",
    "Financial Status": "CASE WHEN first THEN CASE WHEN o % 50 = 0 THEN 'partially_refunded' ELSE 'paid' END END",
    "Paid at": "CASE WHEN first THEN created END",
    "Fulfillment Status": "CASE WHEN first THEN 'fulfilled' END",
    "Fulfilled at": "CASE WHEN first THEN created END",
    "Accepts Marketing": "CASE WHEN first THEN CASE WHEN c % 3 = 0 THEN 'yes' ELSE 'no' END END",
    "Currency": "CASE WHEN first THEN 'USD' END",
    "Subtotal": "CASE WHEN first THEN printf('%.2f', order_total::DOUBLE) END",
    "Shipping": "CASE WHEN first THEN '0.00' END",
    "Taxes": "CASE WHEN first THEN '0.00' END",
    "Total": "CASE WHEN first THEN printf('%.2f', order_total::DOUBLE) END",
    "Discount Amount": "CASE WHEN first THEN '0.00' END",
    "Created at": "created",
    "Lineitem quantity": "(1 + o % 3)::VARCHAR",
    "Lineitem name": "'Product ' || p || ' - $' || p",
    "Lineitem price": "printf('%.2f', price::DOUBLE)",
    "Lineitem sku": "'SKU-' || p",
    "Lineitem requires shipping": "'true'",
    "Lineitem taxable": "'true'",
    "Lineitem fulfillment status": "'fulfilled'",
    "Billing Name": "CASE WHEN first THEN 'Buyer Number' || c END",
    "Billing Zip": "CASE WHEN first THEN '10001' END",
    "Billing Country": "CASE WHEN first THEN 'US' END",
    "Refunded Amount": "CASE WHEN first THEN CASE WHEN o % 50 = 0 THEN '5.00' ELSE '0.00' END END",
    "Vendor": "'Vendor'",
    "Id": "CASE WHEN first THEN (5000000000 + o)::VARCHAR END",
    "Source": "CASE WHEN first THEN 'web' END",
    "Lineitem discount": "'0.00'",
    "Phone": "CASE WHEN first AND c % 7 = 0 THEN '+1613555' || lpad((c % 10000)::VARCHAR, 4, '0') END",
}


def write_shopify_export(path: Path, line_items: int, span_days: int = 60, random_customers: bool = False) -> int:
    """A Shopify orders export with `line_items` rows (1 to 4 lines per order); returns the orders.

    Orders are placed from 2024-10-01 09:00 New York time on, evenly over `span_days` (so
    across the end of daylight saving on 2024-11-03), one customer after the other; with
    `random_customers` each order's customer is drawn at random instead (some buy again,
    some never do), for an end-to-end run.
    """
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ", ".join(
        f"{_VALUES.get(c, chr(39) * 2)} AS \"{c}\"" for c in COLUMNS_79
    )
    customers = max(line_items // 12, 1)
    customer = f"hash(o) % {customers}" if random_customers else f"o % {customers}"
    minute = f"o * {span_days * 1440} // {max(line_items * 2 // 5, 1)}"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            f"""CREATE TABLE lines AS
            WITH l AS (SELECT range AS i, range // 5 * 2 + CASE WHEN range % 5 < 2 THEN 0 ELSE 1 END AS o
                       FROM range({line_items}))
            SELECT i, o, row_number() OVER (PARTITION BY o ORDER BY i) = 1 AS first,
                   {customer} AS c, (i * 7919) % 500 AS p, 5 + (i * 7919) % 500 AS price,
                   TIMESTAMP '2024-10-01 13:00:00' + to_minutes({minute}) AS utc
            FROM l"""
        )
        # shop-local New York time with its offset: -0400 in summer, -0500 in winter
        con.execute(
            """CREATE TABLE export AS
               SELECT *, strftime(local, '%Y-%m-%d %H:%M:%S') || CASE WHEN local - utc = INTERVAL '-4 hours'
                                                                   THEN ' -0400' ELSE ' -0500' END AS created
               FROM (SELECT *, sum(price * (1 + o % 3)) OVER (PARTITION BY o) AS order_total,
                            timezone('America/New_York', utc::TIMESTAMPTZ) AS local FROM lines)"""
        )
        con.execute(f"COPY (SELECT {cols} FROM export ORDER BY i) TO '{path}' (HEADER, DELIMITER ',')")
        return con.execute("SELECT count(DISTINCT o) FROM export").fetchone()[0]


def write_contract_files(warehouse: Path, landing: Path) -> None:
    """The import's own rows as contract CSV files (one per source): the same orders, the contract's layout."""
    import duckdb

    from pipelines.core.contract import source

    if landing.exists():
        shutil.rmtree(landing)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for name in ("customers", "orders", "order_items", "returns"):
            (landing / name).mkdir(parents=True)
            cols = ", ".join(source(name).column_names)
            con.execute(f"COPY (SELECT {cols} FROM raw.{name} ORDER BY _source_row) TO "
                        f"'{landing / name / (name + '.csv')}' (HEADER, TIMESTAMPFORMAT '%Y-%m-%dT%H:%M:%SZ')")


def step(landing: Path, warehouse: Path) -> dict:
    """`ingest()` over a landing folder; what it loaded."""
    from pipelines.ingest import ingest

    t0 = time.perf_counter()
    results = ingest(landing=landing, warehouse=warehouse)
    return {
        "seconds": time.perf_counter() - t0,
        "rows": sum(r.rows_loaded for r in results),
        "quarantined": sum(r.rows_quarantined for r in results),
        "per_source": {r.source: r.rows_loaded for r in results},
        "statuses": sorted({r.status for r in results}),
    }


def _measure(name: str, landing: Path, warehouse: Path, work: Path) -> tuple[dict, float]:
    for stale in warehouse.parent.glob(warehouse.name + "*"):
        stale.unlink()
    result = work / f"{name}.json"
    cmd = [sys.executable, "-m", "bench.bench_import", "--step", "--landing", str(landing), "--warehouse",
           str(warehouse), "--result", str(result)]
    m = run_measured(cmd, log=work / f"{name}.log", cwd=PROJECT_ROOT)
    if not m.ok:
        sys.exit(f"{name} failed; see {work / f'{name}.log'}")
    return json.loads(result.read_text()), m.peak_mb


def compare(line_items: int, out: Path, repeat: int = 1, regenerate: bool = False) -> dict:
    """Write (or reuse) the export, measure both sides `repeat` times; the record of the comparison."""
    from bench.common import speed_reference

    work = out / f"import-{line_items}"
    shop_landing = work / "shopify" / "landing"
    export = shop_landing / "shopify" / "orders_export.csv"
    if regenerate or not export.exists():
        t0 = time.perf_counter()
        orders = write_shopify_export(export, line_items)
        print(f"wrote {line_items:,} line items ({orders:,} orders) in {time.perf_counter() - t0:.1f} s: {export}")
    print(f"Shopify export: {export.stat().st_size / 1e6:,.0f} MB", flush=True)
    contract_landing = work / "contract" / "landing"
    load_before = os.getloadavg()[0]
    speed = speed_reference()
    runs: dict[str, list[tuple[dict, float]]] = {"import": [], "contract": []}
    for i in range(repeat):
        runs["import"].append(_measure("import", shop_landing, work / "import.duckdb", work))
        if i == 0:
            write_contract_files(work / "import.duckdb", contract_landing)
        runs["contract"].append(_measure("contract", contract_landing, work / "contract.duckdb", work))
    imp, imp_mb = min(runs["import"], key=lambda r: r[0]["seconds"])
    con, con_mb = min(runs["contract"], key=lambda r: r[0]["seconds"])
    if imp["per_source"] != con["per_source"]:
        sys.exit(f"the two sides loaded different rows: {imp['per_source']} vs {con['per_source']}")
    contract_mb = sum(f.stat().st_size for f in contract_landing.rglob("*.csv")) / 1e6
    return {
        "line_items": line_items,
        "export_mb": round(export.stat().st_size / 1e6, 1),
        "contract_mb": round(contract_mb, 1),
        "repeat": repeat,
        "import": {"seconds": round(imp["seconds"], 2), "peak_mb": round(imp_mb),
                   "runs": [round(r["seconds"], 2) for r, _ in runs["import"]]},
        "contract": {"seconds": round(con["seconds"], 2), "peak_mb": round(con_mb),
                     "runs": [round(r["seconds"], 2) for r, _ in runs["contract"]]},
        "ratio": round(imp["seconds"] / con["seconds"], 2),
        "rows": imp["rows"],
        "per_source": imp["per_source"],
        "quarantined": [imp["quarantined"], con["quarantined"]],
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "cpus": os.cpu_count(),
        "speed_reference_seconds": speed,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def report(rec: dict) -> None:
    """Print a comparison's record as a table."""
    print()
    print(f"{'step':<40}{'seconds':>9}{'peak MB':>9}{'rows':>12}   all runs (s)")
    for label, key in (("import the Shopify export", "import"), ("load the same rows as contract CSVs", "contract")):
        side = rec[key]
        every = ", ".join(f"{x:.1f}" for x in side["runs"])
        print(f"{label:<40}{side['seconds']:>9.2f}{side['peak_mb']:>9.0f}{rec['rows']:>12,}   {every}")
    print()
    print(f"import / contract = {rec['ratio']:.2f} (target <= 2); rows per source {rec['per_source']}; "
          f"quarantined {rec['quarantined'][0]:,} / {rec['quarantined'][1]:,}")
    print(f"load average: {rec['load_average'][0]:.1f} before, {rec['load_average'][1]:.1f} after "
          f"({rec['cpus']} CPUs); machine speed reference {rec['speed_reference_seconds']:.2f} s")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; run the comparison (or one measured step, when called as a child)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--line-items", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "data" / "bench")
    p.add_argument("--regenerate", action="store_true", help="write the export again")
    p.add_argument("--repeat", type=int, default=1, help="measure each side this many times; report the fastest")
    p.add_argument("--json", type=Path, help="also write the record of the comparison to this file")
    p.add_argument("--record", action="store_true",
                   help="keep the record in bench/results/import/<N>.json and rewrite docs/benchmarks.md")
    p.add_argument("--step", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--landing", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        args.result.write_text(json.dumps(step(args.landing, args.warehouse)))
        return

    rec = compare(args.line_items, args.out, args.repeat, args.regenerate)
    report(rec)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rec, indent=2) + "\n")
    if args.record:
        from bench.run import RESULTS, write_docs

        folder = RESULTS / "import"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{args.line_items}.json").write_text(json.dumps(rec, indent=2) + "\n")
        print(f"wrote {folder / f'{args.line_items}.json'} and {write_docs()}")


if __name__ == "__main__":
    main()
