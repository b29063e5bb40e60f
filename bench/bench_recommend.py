"""What the product journeys and next-product recommendations add to a run, on a built warehouse.

    python -m bench.bench_recommend --data-dir data/bench/L        # a folder `retain run` built
    python -m bench.bench_recommend --customers 20000 --data-dir /tmp/rec   # generate + run first

Times, on the warehouse of a finished full run (so the rest of the marts exist):

1. `dbt run --full-refresh` of the five product models (`fct_order_lines`, `dim_products`,
   `product_retention`, `product_transitions`, `product_journey_rules`): what the first full
   run of a warehouse pays (`fct_order_lines` is incremental; a full refresh builds all of
   it), dbt's own elapsed time and the wall time of the command (dbt start-up and parsing
   included);
2. the same models again without `--full-refresh`: `fct_order_lines` incremental with no new
   data (reported, not counted: a daily run also rebuilds the customers of the new day);
3. `ml.recommend.write_recommendations` (every customer's top 3), every run;
4. `ml.recommend_backtest.run_backtest` (three cut-offs, model and popularity baseline): only
   the runs that train (the full run and the weekly retrain), never the daily run; as in the
   full run's step, on the coded order lines and pairs step 3 kept (`keep_prepared`);

and prints one JSON line with the seconds, the rows and the backtest's numbers.
`added_seconds` = 1 + 3 + 4 (dbt's elapsed time) is what the recommendations add to a full
run (the target at 1M customers: at most 20 s); `daily_added_seconds` = 2 + 3 is the daily
run's share without the new day's customers. The dbt data tests of the product models are
not included (they run with the rest of the build).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
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
    parser.add_argument("--record", metavar="CODE",
                        help="keep the numbers in bench/results/recommend/ under this description of the code "
                             "measured, and rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)

    env = {**os.environ, "RETAIN_DATA_DIR": str(args.data_dir.resolve())}
    os.environ.update(env)
    if args.customers:
        _retain(["generate", "--customers", str(args.customers), "--seed", str(args.seed), "--clean"], env)
        _retain(["run"], env)

    from pipelines.core.config import export_environment

    export_environment()
    from bench.common import speed_reference
    from ml.recommend import PREFIX, write_recommendations
    from ml.recommend_backtest import run_backtest
    from pipelines.core.warehouse import connect
    from pipelines.defs.dbt.project import PROJECT_ROOT, dbt_environment, dbt_executable

    # a shared machine's speed today (bench.common): compare runs by it, and the load while measuring
    result: dict = {"data_dir": str(args.data_dir), "speed_reference_s": speed_reference(),
                    "load_average_1m": round(os.getloadavg()[0], 1)}
    for key, refresh in (("dbt_product_models", ["--full-refresh"]), ("dbt_product_models_incremental", [])):
        started = time.perf_counter()
        dbt = subprocess.run([dbt_executable(), "run", *refresh, "--select", *PRODUCT_MODELS], cwd=PROJECT_ROOT,
                             env=dbt_environment(), capture_output=True, text=True)
        result[f"{key}_wall_seconds"] = round(time.perf_counter() - started, 2)
        if dbt.returncode:
            print(dbt.stdout[-3000:], dbt.stderr[-3000:], file=sys.stderr)
            raise SystemExit("dbt run of the product models failed")
        elapsed = re.findall(r"\(([0-9.]+)s\)", dbt.stdout)  # "Finished running 5 models in ... (12.34s)."
        result[f"{key}_seconds"] = float(elapsed[-1]) if elapsed else None
    with connect() as con:
        result["order_lines"] = con.execute("SELECT count(*) FROM marts.fct_order_lines").fetchone()[0]
        # as the full run's step does (pipelines/defs/ml/recommendations.py): one coding for both
        summary = write_recommendations(con, keep_prepared=True)
        result["recommend_seconds"] = round(summary.seconds, 2)
        result["customers"] = summary.customers
        started = time.perf_counter()
        backtest = run_backtest(con, run_id="bench", prepared=PREFIX)
        result["backtest_seconds"] = round(time.perf_counter() - started, 2)
        result["backtest"] = backtest.to_dict()
    result["load_average_1m_after"] = round(os.getloadavg()[0], 1)

    def dbt_seconds(key: str) -> float:
        return result[f"{key}_seconds"] or result[f"{key}_wall_seconds"]

    result["added_seconds"] = round(dbt_seconds("dbt_product_models") + result["recommend_seconds"]
                                    + result["backtest_seconds"], 2)
    result["daily_added_seconds"] = round(dbt_seconds("dbt_product_models_incremental")
                                          + result["recommend_seconds"], 2)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result))
    if args.record:
        record(result, args.record)
    return result


def record(result: dict, code: str) -> Path:
    """Keep one measurement in bench/results/recommend/ (docs/benchmarks.md lists them all); return the file."""
    from bench.run import RESULTS, portable_json, write_docs

    folder = RESULTS / "recommend"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result['measured_at'].replace(':', '')}.json"
    data_dir = Path(result["data_dir"])
    path.write_text(portable_json({**result, "code": code}, data_dir.parent))  # no path of this machine
    print(f"wrote {path} and {write_docs()}")
    return path


if __name__ == "__main__":
    main()
