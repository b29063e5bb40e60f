"""Benchmarks for the `ml` library: CLV fitting and the churn pipeline at scale.

Not run by pytest. Prints wall time and peak memory (process max RSS) per stage.

    python -m bench.bench_ml clv --customers 1000000
    python -m bench.bench_ml churn --customers 1000000

`clv` fits BG/NBD and Gamma-Gamma on (a) the CDNOW sample's RFM tiled to N rows and
(b) N customers simulated from the BG/NBD process with the CDNOW estimates at day
resolution, which gives hundreds of thousands of distinct (frequency, recency, T) rows and
so exercises the likelihood itself rather than the de-duplication. `churn` builds a
synthetic orders-plus-tickets warehouse of N customers in DuckDB, then times feature
building, training (backtest with baselines) and scoring.
"""

from __future__ import annotations

import argparse
import resource
import sys
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


def main(argv: list[str] | None = None) -> None:
    """Command line: `clv` or `churn`, with --customers N."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["clv", "churn"])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    if args.what == "clv":
        bench_clv(args.customers)
    else:
        bench_churn(args.customers)


def bench_churn(n: int) -> None:  # filled in below
    raise NotImplementedError


if __name__ == "__main__":
    main()
