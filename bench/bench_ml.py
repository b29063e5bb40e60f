"""Benchmarks for the `ml` library: CLV fitting and the churn pipeline at scale.

Not run by pytest. Prints wall time and peak memory (process max RSS) per stage.

    python -m bench.bench_ml clv --customers 1000000
    python -m bench.bench_ml churn --customers 1000000
    python -m bench.bench_ml cdnow            # CDNOW master as orders only, model vs BG/NBD

`clv` fits BG/NBD and Gamma-Gamma on (a) the CDNOW sample's RFM tiled to N rows and
(b) N customers simulated from the BG/NBD process with the CDNOW estimates at day
resolution, which gives hundreds of thousands of distinct (frequency, recency, T) rows and
so exercises the likelihood itself rather than the de-duplication. `churn` builds a
warehouse from the synthetic shop generator (or takes --warehouse), then times feature
building, training (backtest with baselines) and scoring.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml import clv  # noqa: E402

CDNOW_SAMPLE = ROOT / "tests" / "fixtures" / "cdnow" / "CDNOW_sample.txt"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def stage(name: str, results: dict):
    """Time a block and print its wall time and the process's peak memory after it."""
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    results[name] = seconds
    print(f"{name:<44} {seconds:8.2f} s   peak RSS {peak_rss_mb():8.0f} MB", flush=True)


def simulate_bg_nbd(n: int, r=0.243, alpha=4.414, a=0.793, b=2.426, max_days=546, seed=0) -> pd.DataFrame:
    """Frequency/recency/T of `n` customers drawn from the BG/NBD process (rates per week, times in days).

    Vectorised: N ~ Poisson(lambda T) purchase opportunities in (0, T], K ~ Geometric(p)
    repeat purchases until the one after which they drop out, x = min(N, K); the x-th of N uniform arrival times is
    T * Beta(x, N - x + 1).
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n) / 7.0  # per day
    p = rng.beta(a, b, n)
    T = rng.integers(1, max_days + 1, n).astype(float)
    opportunities = rng.poisson(lam * T)
    survive = rng.geometric(np.clip(p, 1e-12, 1.0))
    x = np.minimum(opportunities, survive)
    rec = np.zeros(n)
    pos = x > 0
    rec[pos] = np.floor(T[pos] * rng.beta(x[pos], opportunities[pos] - x[pos] + 1))
    return pd.DataFrame({"frequency": x, "recency": rec, "T": T})


def bench_clv(n: int) -> None:
    """BG/NBD + Gamma-Gamma fit times on N customers."""
    results: dict = {}
    df = pd.read_csv(CDNOW_SAMPLE, sep=r"\s+", header=None,
                     names=["master_id", "customer_id", "date", "cds", "amount"], dtype={"date": str})
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    rfm = clv.rfm_summary(df, "customer_id", "date", "amount", "1997-09-30", "W")
    tiled = rfm.iloc[np.resize(np.arange(len(rfm)), n)].reset_index(drop=True)
    with stage(f"BG/NBD fit, CDNOW tiled to {n:,}", results):
        bg = clv.fit_bg_nbd(tiled["frequency"], tiled["recency"], tiled["T"])
    print(f"    r={bg.r:.3f} alpha={bg.alpha:.3f} a={bg.a:.3f} b={bg.b:.3f}")
    with stage(f"Gamma-Gamma fit, CDNOW tiled to {n:,}", results):
        gg = clv.fit_gamma_gamma(tiled["frequency"], tiled["monetary_value"])
    print(f"    p={gg.p:.2f} q={gg.q:.2f} gamma={gg.gamma:.2f}")

    sim = simulate_bg_nbd(n)
    distinct = len(sim.drop_duplicates())
    print(f"simulated {n:,} customers, {distinct:,} distinct (frequency, recency, T) rows")
    with stage(f"BG/NBD fit, simulated {n:,} (days)", results):
        bg_sim = clv.fit_bg_nbd(sim["frequency"], sim["recency"], sim["T"], time_unit="D")
    print(f"    r={bg_sim.r:.3f} alpha/7={bg_sim.alpha / 7:.3f} a={bg_sim.a:.3f} b={bg_sim.b:.3f} "
          "(true 0.243, 4.414, 0.793, 2.426)")
    with stage(f"P(alive) + E[purchases 90d], {n:,}", results):
        clv.p_alive(bg_sim, sim["frequency"], sim["recency"], sim["T"])
        clv.expected_purchases(bg_sim, 90, sim["frequency"], sim["recency"], sim["T"])
    monetary = np.where(sim["frequency"] > 0, 20.0 + (np.arange(n) % 50), 0.0)
    with stage(f"CLV 12 months (12 steps), {n:,}", results):
        clv.clv(bg_sim, gg, sim["frequency"], sim["recency"], sim["T"], monetary, 365, 0.1 / 365, n_steps=12)


def bench_churn(n: int, warehouse: str | None, max_rows_per_cutoff: int | None) -> None:
    """Features, training (backtest + baselines) and scoring on a generated shop of N customers."""
    import duckdb

    from ml.features import build_features, latest_order_date
    from ml.score import score
    from ml.train import train

    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix="retain-bench-ml-"))
    if warehouse is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from churn_warehouse import generated_warehouse

        warehouse = str(work / "warehouse.duckdb")
        con = duckdb.connect(warehouse)
        with stage(f"generate + load {n:,} customers (not timed below)", results):
            generated_warehouse(con, work / "landing", customers=n, seed=7)
    else:
        con = duckdb.connect(warehouse)
    con.execute("set enable_progress_bar = false")
    orders, customers = con.execute("select count(*), count(distinct customer_id) from marts.fct_orders").fetchone()
    messages = con.execute("select count(*) from staging.stg_messaging__messages").fetchone()[0]
    print(f"warehouse {warehouse}: {orders:,} orders, {customers:,} customers with orders, {messages:,} messages")
    con.execute("drop schema if exists ml cascade")
    total = time.perf_counter()
    with stage("build_features as of the latest order", results):
        feats = build_features(con, latest_order_date(con))
    print(f"    {len(feats):,} rows x {feats.shape[1]} columns")
    with stage(f"train (max {max_rows_per_cutoff or 'all'} rows per cut-off)", results):
        result = train(con, models_dir=work / "models", max_rows_per_cutoff=max_rows_per_cutoff)
    print("    " + result.summary().replace("\n", "\n    "))
    print(f"    timings {', '.join(f'{k} {v:.1f} s' for k, v in result.timings.items())}")
    print(f"    top drivers {list(result.metrics['driver_importance'])[:5]}")
    with stage("score (features, risk, reasons, CLV, write)", results):
        summary = score(con, models_dir=work / "models")
    print(f"    {summary.rows:,} customers scored; tiers {summary.risk_tiers}")
    elapsed = time.perf_counter() - total
    print(f"features + training + scoring: {elapsed:.1f} s (includes the standalone feature build); "
          f"peak RSS {peak_rss_mb():.0f} MB")


def bench_cdnow(path: str) -> None:
    """CDNOW master as a bare transaction log (orders only): backtest the churn model against BG/NBD."""
    import duckdb

    from ml.card import model_card
    from ml.train import train

    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix="retain-bench-cdnow-"))
    con = duckdb.connect(str(work / "warehouse.duckdb"))
    con.execute("create schema marts")
    # whitespace-separated columns: customer_id, yyyymmdd, number of CDs, dollar value
    con.execute(f"""
        create table marts.fct_orders as
        select md5(concat_ws('|', f[1], f[2], f[4], row_number() over ())) as order_id, f[1] as customer_id,
               cast(strptime(f[2], '%Y%m%d') as timestamp) as ordered_at,
               cast(f[4] as decimal(18, 2)) as total, 'delivered' as status, true as is_valid
        from (select string_split_regex(trim(line), '\\s+') as f
              from read_csv('{path}', columns = {{'line': 'VARCHAR'}}, header = true, delim = '\t',
                            quote = '', escape = '', auto_detect = false))
    """)
    n = con.execute("select count(*), count(distinct customer_id) from marts.fct_orders").fetchone()
    print(f"CDNOW master: {n[0]:,} orders, {n[1]:,} customers")
    with stage("train (orders only)", results):
        result = train(con, models_dir=work / "models")
    print(result.summary())
    print(model_card(con, work / "models"))


def main(argv: list[str] | None = None) -> None:
    """Command line: `clv` or `churn`, with --customers N."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["clv", "churn", "cdnow"])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--warehouse", help="churn: use this DuckDB warehouse instead of generating one")
    parser.add_argument("--max-rows-per-cutoff", type=int, default=200_000)
    parser.add_argument("--cdnow", default="/work/shared/datasets/cdnow/CDNOW_master.txt",
                        help="cdnow: path of CDNOW_master.txt")
    args = parser.parse_args(argv)
    if args.what == "clv":
        bench_clv(args.customers)
    elif args.what == "cdnow":
        bench_cdnow(args.cdnow)
    else:
        bench_churn(args.customers, args.warehouse, args.max_rows_per_cutoff or None)


if __name__ == "__main__":
    main()
