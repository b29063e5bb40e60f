"""What the product journeys and next-product recommendations add to a run, on a built warehouse.

    python -m bench.bench_recommend --data-dir data/bench/L        # a folder `retain run` built
    python -m bench.bench_recommend --customers 20000 --data-dir /tmp/rec   # generate + run first

Times, on the warehouse of a finished full run (so the rest of the marts exist):

1. `dbt run` of the five product models (`fct_order_lines`, `dim_products`,
   `product_retention`, `product_transitions`, `product_journey_rules`), dbt's own elapsed
   time and the wall time of the command (dbt start-up and parsing included);
2. `ml.recommend.write_recommendations` (every customer's top 3);
3. `ml.recommend_backtest.run_backtest` (three cut-offs, model and popularity baseline);

and prints one JSON line with the seconds, the rows and the backtest's numbers. Their sum is
what the recommendations add to the full run (the target at 1M customers: at most 20 s). The
dbt data tests of the product models are not included (they run with the rest of the build).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PRODUCT_MODELS = ("fct_order_lines", "dim_products", "product_retention", "product_transitions",
                  "product_journey_rules")


def _retain(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, check=True)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print (and return) its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="data folder with the warehouse of a finished `retain run` (RETAIN_DATA_DIR)")
    parser.add_argument("--customers", type=int, default=None,
                        help="generate a shop of this many customers and run the full job there first")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (with --customers)")
    args = parser.parse_args(argv)

    env = {**os.environ, "RETAIN_DATA_DIR": str(args.data_dir.resolve())}
    os.environ.update(env)
    if args.customers:
        _retain(["generate", "--customers", str(args.customers), "--seed", str(args.seed), "--clean"], env)
        _retain(["run"], env)

    from pipelines.core.config import export_environment

    export_environment()
    from bench.common import speed_reference
    from ml.recommend import write_recommendations
    from ml.recommend_backtest import run_backtest
    from pipelines.core.warehouse import connect
    from pipelines.defs.dbt.project import PROJECT_ROOT, dbt_environment, dbt_executable

    # a shared machine's speed today (bench.common): compare runs by it, and the load while measuring
    result: dict = {"data_dir": str(args.data_dir), "speed_reference_s": speed_reference(),
                    "load_average_1m": round(os.getloadavg()[0], 1)}
    started = time.perf_counter()
    dbt = subprocess.run([dbt_executable(), "run", "--select", *PRODUCT_MODELS], cwd=PROJECT_ROOT,
                         env=dbt_environment(), capture_output=True, text=True)
    result["dbt_product_models_wall_seconds"] = round(time.perf_counter() - started, 2)
    if dbt.returncode:
        print(dbt.stdout[-3000:], dbt.stderr[-3000:], file=sys.stderr)
        raise SystemExit("dbt run of the product models failed")
    elapsed = re.findall(r"\(([0-9.]+)s\)", dbt.stdout)  # "Finished running 5 table models in ... (12.34s)."
    result["dbt_product_models_seconds"] = float(elapsed[-1]) if elapsed else None
    with connect() as con:
        result["order_lines"] = con.execute("SELECT count(*) FROM marts.fct_order_lines").fetchone()[0]
        summary = write_recommendations(con)
        result["recommend_seconds"] = round(summary.seconds, 2)
        result["customers"] = summary.customers
        started = time.perf_counter()
        backtest = run_backtest(con, run_id="bench")
        result["backtest_seconds"] = round(time.perf_counter() - started, 2)
        result["backtest"] = backtest.to_dict()
    result["load_average_1m_after"] = round(os.getloadavg()[0], 1)
    result["added_seconds"] = round((result["dbt_product_models_seconds"] or result["dbt_product_models_wall_seconds"])
                                    + result["recommend_seconds"] + result["backtest_seconds"], 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
