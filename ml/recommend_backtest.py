"""Backtest of the next-product recommendations against the popularity baseline.

At each of `CUTOFFS` time-ordered cut-offs (the latest `HORIZON_DAYS` before the end of the
data, then `HORIZON_DAYS` earlier each), both recommenders see only order lines placed before
the cut-off and recommend 3 products to every customer who had bought before it and buys again
in the `HORIZON_DAYS` after it. What those customers buy in the window is the truth:

* hit rate at 3: share of customers who bought at least one of their 3 recommendations;
* NDCG at 3: rank-discounted gain, `sum(rel_i / log2(i + 1)) / ideal`, ideal = the same for
  min(products bought, 3) hits at the top.

The baseline is `build_candidates(model=False)`: the most bought products of the 90 days
before the cut-off, under the same exclusions (never a returned product, no repeat of a
non-consumable). Results go to `ml.recommendation_backtests`, one row per run and cut-off,
and onto the model card (`retain model`).

The consumable flag (`marts.dim_products.is_consumable`) is computed over the whole history,
so the backtest knows which products are re-bought a little earlier than it could have; both
recommenders use it, so the comparison stays fair.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from ml.recommend import (
    LINES,
    TOP_K,
    build_candidates,
    drop_candidates,
    has_product_data,
    latest_line_date,
    prepare,
)

log = logging.getLogger("retain.ml.recommend")

TABLE = "ml.recommendation_backtests"
HORIZON_DAYS = 90
CUTOFFS = 3
#: A cut-off needs this much history before it to be used.
MIN_HISTORY_DAYS = 180

DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    run_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    cutoff_date DATE NOT NULL,
    horizon_days INTEGER NOT NULL,
    customers BIGINT NOT NULL,
    hit_rate_at_3 DOUBLE,
    ndcg_at_3 DOUBLE,
    baseline_hit_rate_at_3 DOUBLE,
    baseline_ndcg_at_3 DOUBLE,
    seconds DOUBLE
)"""


@dataclass
class BacktestResult:
    """Hit rate and NDCG at 3 of the model and the popularity baseline, per cut-off and averaged."""

    run_id: str
    cutoffs: list[dict] = field(default_factory=list)
    skipped_reason: str | None = None

    def mean(self, key: str) -> float | None:
        """Customer-weighted mean of one metric over the cut-offs."""
        n = sum(c["customers"] for c in self.cutoffs)
        if not n:
            return None
        return sum(c[key] * c["customers"] for c in self.cutoffs if c[key] is not None) / n

    def to_dict(self) -> dict:
        """JSON-friendly dict (Dagster metadata)."""
        d = {"run_id": self.run_id, "cutoffs": self.cutoffs, "skipped_reason": self.skipped_reason}
        for key in ("hit_rate_at_3", "ndcg_at_3", "baseline_hit_rate_at_3", "baseline_ndcg_at_3"):
            d[key] = self.mean(key)
        return d


def cutoff_dates(end: date, first: date, cutoffs: int = CUTOFFS, horizon_days: int = HORIZON_DAYS) -> list[date]:
    """Time-ordered cut-offs (oldest first) whose horizon ends by `end` and with enough history before."""
    days = [end + timedelta(days=1) - timedelta(days=horizon_days * i) for i in range(cutoffs, 0, -1)]
    return [d for d in days if (d - first).days >= MIN_HISTORY_DAYS]


def _metrics(con, top: str, truth: str) -> tuple[float, float]:
    """(hit rate at 3, NDCG at 3) of the recommendations in `top` against the products in `truth`."""
    hit, ndcg = con.execute(f"""
        WITH hits AS (
            SELECT r.customer_id, r.rank FROM ({top}) r
            SEMI JOIN {truth} x ON x.customer_id = r.customer_id AND x.product_id = r.product_id
        ),
        gains AS (
            SELECT t.customer_id,
                   max(CASE WHEN r.rank IS NOT NULL THEN 1 ELSE 0 END) AS hit,
                   sum(CASE WHEN r.rank IS NOT NULL THEN 1 / log2(r.rank + 1) ELSE 0 END) AS dcg
            FROM (SELECT DISTINCT customer_id FROM {truth}) t
            LEFT JOIN hits r ON r.customer_id = t.customer_id
            GROUP BY t.customer_id
        ),
        ideal AS (
            SELECT customer_id, sum(1 / log2(k + 1)) AS idcg
            FROM (SELECT customer_id, count(*) AS n FROM {truth} GROUP BY 1) c,
                 range(1, {TOP_K} + 1) AS r(k)
            WHERE k <= n GROUP BY customer_id
        )
        SELECT avg(hit), avg(dcg / idcg) FROM gains JOIN ideal USING (customer_id)
    """).fetchone()
    return float(hit or 0.0), float(ndcg or 0.0)


def run_backtest(con, run_id: str | None = None, end: date | None = None, cutoffs: int = CUTOFFS,
                 horizon_days: int = HORIZON_DAYS, store: bool = True, prepared: str | None = None) -> BacktestResult:
    """Backtest at `cutoffs` cut-offs before `end` (default: the latest order line); store the rows.

    `prepared`: the prefix of `prepare`'s temp tables already on `con` (the recommendations of the
    same step kept them: `write_recommendations(con, keep_prepared=True)`); they are used as they
    are (they depend on the order lines only, not on a cut-off) and dropped at the end.
    """
    p = prepared or "_bt"
    run_id = run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = BacktestResult(run_id)
    if not has_product_data(con):
        if prepared:
            drop_candidates(con, p)
        result.skipped_reason = ("no order lines with products (a transaction log such as CDNOW has none): "
                                 "nothing to backtest")
        return result
    end = end or latest_line_date(con)
    first = con.execute(f"SELECT min(ordered_at) FROM {LINES}").fetchone()[0].date()
    dates = cutoff_dates(end, first, cutoffs, horizon_days)
    if not dates:
        if prepared:
            drop_candidates(con, p)
        result.skipped_reason = (f"{(end - first).days} days of order lines; a backtest needs {MIN_HISTORY_DAYS} "
                                 f"days before a cut-off plus {horizon_days} after it")
        return result
    if not prepared:
        prepare(con, p)  # codes, lines and pairs once; each cut-off filters them by time
    for cutoff in dates:
        started = time.perf_counter()
        window_end = cutoff + timedelta(days=horizon_days)
        # who bought before the cut-off and again in the window, and what they bought then (as codes)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {p}_truth AS
            SELECT DISTINCT cid AS customer_id, pid AS product_id FROM {p}_lines
            WHERE ordered_at >= TIMESTAMP '{cutoff}' AND ordered_at < TIMESTAMP '{window_end}'
              AND cid IN (SELECT cid FROM {p}_lines WHERE ordered_at < TIMESTAMP '{cutoff}')
        """)
        who = f"SELECT DISTINCT customer_id AS cid FROM {p}_truth"
        model_top = build_candidates(con, cutoff, customers=who, prefix=p, prepared=True, out=f"{p}_model_top",
                                     baseline_out=f"{p}_base_top", coded=True)
        baseline_top = f"{p}_base_top"
        customers = con.execute(f"SELECT count(DISTINCT customer_id) FROM {p}_truth").fetchone()[0]
        coded = "SELECT cid AS customer_id, rank, pid AS product_id FROM {}"
        hit, ndcg = _metrics(con, coded.format(model_top), f"{p}_truth")
        base_hit, base_ndcg = _metrics(con, coded.format(baseline_top), f"{p}_truth")
        for table in (f"{p}_truth", model_top, baseline_top):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        result.cutoffs.append({
            "cutoff_date": cutoff.isoformat(), "customers": int(customers), "hit_rate_at_3": hit, "ndcg_at_3": ndcg,
            "baseline_hit_rate_at_3": base_hit, "baseline_ndcg_at_3": base_ndcg,
            "seconds": round(time.perf_counter() - started, 2),
        })
        log.info("backtest cut-off %s: %d customers, hit@3 %.3f (popularity %.3f)", cutoff, customers, hit, base_hit)
    drop_candidates(con, p)
    if store:
        created_at = datetime.now(UTC).replace(tzinfo=None)
        con.execute("CREATE SCHEMA IF NOT EXISTS ml")
        con.execute(DDL)
        con.execute(f"DELETE FROM {TABLE} WHERE run_id = ?", [run_id])
        for c in result.cutoffs:
            con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [run_id, created_at, c["cutoff_date"], horizon_days, c["customers"], c["hit_rate_at_3"],
                         c["ndcg_at_3"], c["baseline_hit_rate_at_3"], c["baseline_ndcg_at_3"], c["seconds"]])
    return result


def backtest_card(con) -> str:
    """Markdown section for the model card: the latest backtest's numbers (or why there are none)."""
    title = "## Next-product recommendations (backtest)"
    try:
        rows = con.execute(f"""
            SELECT cutoff_date, customers, hit_rate_at_3, baseline_hit_rate_at_3, ndcg_at_3, baseline_ndcg_at_3,
                   horizon_days, created_at
            FROM {TABLE} WHERE run_id = (SELECT arg_max(run_id, created_at) FROM {TABLE})
            ORDER BY cutoff_date
        """).fetchall()
    except Exception:  # no backtest table in this warehouse yet
        rows = []
    if not rows:
        return f"{title}\n\nNo backtest yet (it runs with training; a shop without order lines has none).\n"
    n = sum(r[1] for r in rows)

    def mean(i: int) -> float:
        return sum(r[i] * r[1] for r in rows) / n if n else 0.0

    lines = [
        title, "",
        f"Top {TOP_K} products per customer from purchase sequences and co-purchases, against the "
        f"{TOP_K} most bought products of the 90 days before the cut-off (same exclusions). Truth: what "
        f"customers who had bought before the cut-off bought in the {rows[0][6]} days after it. "
        f"Backtested {str(rows[-1][7])[:16]} UTC.", "",
        "| cut-off | customers | hit rate at 3 | popularity | NDCG at 3 | popularity |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:,} | {r[2]:.1%} | {r[3]:.1%} | {r[4]:.3f} | {r[5]:.3f} |")
    lines.append(f"| all | {n:,} | {mean(2):.1%} | {mean(3):.1%} | {mean(4):.3f} | {mean(5):.3f} |")
    gain = mean(2) - mean(3)
    lines += ["", f"Hit rate at 3 is {gain * 100:+.1f} points against the popularity baseline."]
    return "\n".join(lines) + "\n"
