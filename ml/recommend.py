"""Next-product recommendations: the top 3 products each customer is likely to buy next.

An item-to-item model over purchase sequences and co-purchases, written in SQL and run by
DuckDB over the marts (`marts.fct_order_lines`, `marts.dim_products`):

1. **Strength of A → B**, from every customer's history before the cut-off:
   `(next(A, B) + CO_WEIGHT * together(A, B)) / (buyers(A) + SMOOTHING)`, where `next`
   counts purchases of B in the purchase right after one holding A, `together` counts
   purchases holding both, and `buyers` counts A's buyers. Each product keeps its
   `NEIGHBOURS` strongest successors.
2. **A customer's candidates**: the successors of the products in their last
   `ANCHOR_PURCHASES` purchases, weighted `0.5 ** (purchases ago)`, summed per candidate.
   The anchor that contributed most is the reason ("bought X; buyers of X often buy Y next").
3. **Never** a product the customer returned (every line of an order with a return counts as
   returned: returns name orders, not lines), and never one they bought before unless it is
   a consumable (`marts.dim_products.is_consumable`, the rule in `macros/product_journey.sql`).
4. Customers with fewer than 3 candidates left are filled with the products most customers
   bought in the `POPULAR_DAYS` before the cut-off, under the same exclusions: the
   popularity baseline the backtest (`ml.recommend_backtest`) compares against.

Why SQL and not scikit-learn: the model is counting (transitions and co-purchases per product
pair) and a weighted join; DuckDB does that over millions of order lines in seconds, and a
matrix factorisation would not use the order of purchases, which is where the signal is.

`write_recommendations(con, as_of)` fills `ml.product_recommendations` for every customer
with a valid order line up to `as_of`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

log = logging.getLogger("retain.ml.recommend")

TOP_K = 3
NEIGHBOURS = 15
ANCHOR_PURCHASES = 3
CO_WEIGHT = 0.5
SMOOTHING = 10
POPULAR_DAYS = 90
POPULAR_CANDIDATES = 20

TABLE = "ml.product_recommendations"
LINES = "marts.fct_order_lines"
PRODUCTS = "marts.dim_products"

#: Reason kinds of a recommendation, and how the sentence for it reads.
REASON_KINDS = ("next", "together", "rebuy", "popular")


@dataclass
class RecommendationSummary:
    """What `write_recommendations` did."""

    as_of_date: date
    customers: int
    rows: int
    seconds: float
    by_reason: dict[str, int]

    def to_dict(self) -> dict:
        """JSON-friendly dict (Dagster metadata, CLI output)."""
        return {"as_of_date": self.as_of_date.isoformat(), "customers": self.customers, "rows": self.rows,
                "seconds": round(self.seconds, 2), "by_reason": self.by_reason}


class NoProductData(RuntimeError):
    """The warehouse has no order lines (e.g. a transaction log such as CDNOW): nothing to recommend."""


def has_product_data(con) -> bool:
    """True when the marts hold at least one valid order line with a product."""
    try:
        return bool(con.execute(f"SELECT EXISTS (SELECT 1 FROM {LINES})").fetchone()[0])
    except Exception:  # the mart is missing (dbt has not built it yet)
        return False


def _ts(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.replace(tzinfo=None).isoformat(sep=' ')}'"
    return f"TIMESTAMP '{value.isoformat()}'"


def build_candidates(con, cutoff: datetime | date, customers: str | None = None, prefix: str = "_rec",
                     model: bool = True) -> str:
    """Temp table `<prefix>_top` (customer_id, rank, product_id, score, reason_product_id, reason_kind).

    Uses only order lines placed before `cutoff`. `customers`: a table or subquery with a
    `customer_id` column limiting who gets recommendations (default: every customer with a
    line before the cut-off). `model=False` gives the popularity baseline alone.
    Returns the table's name.
    """
    cut = _ts(cutoff)
    who = f"SEMI JOIN ({customers}) w ON w.customer_id = l.customer_id" if customers else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {prefix}_lines AS
        SELECT DISTINCT customer_id, purchase_number, product_id, is_returned
        FROM {LINES} WHERE ordered_at < {cut}
    """)
    # what each customer may not get: returned products, and bought ones that are no consumable
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {prefix}_excluded AS
        SELECT l.customer_id, l.product_id
        FROM {prefix}_lines l {who}
        LEFT JOIN {PRODUCTS} p ON p.product_id = l.product_id
        GROUP BY l.customer_id, l.product_id
        HAVING bool_or(l.is_returned) OR NOT coalesce(bool_or(p.is_consumable), false)
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {prefix}_customers AS
        SELECT l.customer_id, max(l.purchase_number) AS last_purchase
        FROM {prefix}_lines l {who} GROUP BY l.customer_id
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {prefix}_popular AS
        SELECT product_id, row_number() OVER (ORDER BY count(DISTINCT customer_id) DESC, product_id) AS pop_rank
        FROM {LINES}
        WHERE ordered_at < {cut} AND ordered_at >= {cut} - INTERVAL {POPULAR_DAYS} DAY
        GROUP BY product_id
        QUALIFY pop_rank <= {POPULAR_CANDIDATES}
    """)
    popular = f"""
        SELECT c.customer_id, p.product_id, (1 + {POPULAR_CANDIDATES} - p.pop_rank) * 1e-9 AS score,
               CAST(NULL AS VARCHAR) AS reason_product_id, 'popular' AS reason_kind
        FROM {prefix}_customers c CROSS JOIN {prefix}_popular p"""
    if model:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {prefix}_strength AS
            WITH pairs AS (
                SELECT a.product_id AS anchor, b.product_id AS candidate, 1.0 AS next_n, 0.0 AS co_n
                FROM {prefix}_lines a JOIN {prefix}_lines b
                  ON a.customer_id = b.customer_id AND b.purchase_number = a.purchase_number + 1
                UNION ALL
                SELECT a.product_id, b.product_id, 0.0, 1.0
                FROM {prefix}_lines a JOIN {prefix}_lines b
                  ON a.customer_id = b.customer_id AND a.purchase_number = b.purchase_number
                 AND a.product_id <> b.product_id
            ),
            buyers AS (SELECT product_id, count(DISTINCT customer_id) AS n FROM {prefix}_lines GROUP BY 1)
            SELECT pairs.anchor, pairs.candidate,
                   (sum(next_n) + {CO_WEIGHT} * sum(co_n)) / (any_value(buyers.n) + {SMOOTHING}) AS strength,
                   sum(next_n) >= {CO_WEIGHT} * sum(co_n) AS is_next
            FROM pairs JOIN buyers ON buyers.product_id = pairs.anchor
            GROUP BY pairs.anchor, pairs.candidate
            QUALIFY row_number() OVER (PARTITION BY pairs.anchor ORDER BY strength DESC, pairs.candidate)
                    <= {NEIGHBOURS}
        """)
        scored = f"""
            SELECT customer_id, product_id, sum(contribution) AS score,
                   arg_max(anchor, contribution) AS reason_product_id,
                   arg_max(kind, contribution) AS reason_kind
            FROM (
                SELECT a.customer_id, s.candidate AS product_id, a.product_id AS anchor,
                       s.strength * pow(0.5, c.last_purchase - a.purchase_number) AS contribution,
                       CASE WHEN a.product_id = s.candidate THEN 'rebuy'
                            WHEN s.is_next THEN 'next' ELSE 'together' END AS kind
                FROM (SELECT DISTINCT customer_id, purchase_number, product_id FROM {prefix}_lines) a
                JOIN {prefix}_customers c ON c.customer_id = a.customer_id
                     AND a.purchase_number > c.last_purchase - {ANCHOR_PURCHASES}
                JOIN {prefix}_strength s ON s.anchor = a.product_id
            ) contributions
            GROUP BY customer_id, product_id"""
        candidates = f"{scored} UNION ALL {popular}"
    else:
        candidates = popular
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {prefix}_top AS
        SELECT customer_id, CAST(row_number() OVER (PARTITION BY customer_id ORDER BY score DESC, product_id)
                                 AS INTEGER) AS rank,
               product_id, score, reason_product_id, reason_kind
        FROM ({candidates}) cand
        ANTI JOIN {prefix}_excluded x ON x.customer_id = cand.customer_id AND x.product_id = cand.product_id
        QUALIFY row_number() OVER (PARTITION BY customer_id, product_id ORDER BY score DESC) = 1
            AND row_number() OVER (PARTITION BY customer_id ORDER BY score DESC, product_id) <= {TOP_K}
    """)
    return f"{prefix}_top"


def drop_candidates(con, prefix: str = "_rec") -> None:
    """Drop the temp tables `build_candidates` made."""
    for t in ("lines", "excluded", "customers", "popular", "strength", "top"):
        con.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


#: The sentence a marketer reads for each reason kind (product names filled in by SQL).
REASON_SQL = f"""CASE r.reason_kind
    WHEN 'next' THEN 'bought ' || a.product_name || '; buyers of ' || a.product_name || ' often buy '
                     || p.product_name || ' next'
    WHEN 'together' THEN 'bought ' || a.product_name || '; buyers of ' || a.product_name || ' often buy '
                     || p.product_name || ' with it'
    WHEN 'rebuy' THEN 'bought ' || p.product_name || ' before; its buyers often buy it again'
    ELSE 'one of the most bought products of the last ' || {POPULAR_DAYS} || ' days' END"""

DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    customer_id VARCHAR NOT NULL,
    rank INTEGER NOT NULL,
    product_id VARCHAR NOT NULL,
    product_name VARCHAR,
    category VARCHAR,
    score DOUBLE,
    reason_kind VARCHAR,
    reason_product_id VARCHAR,
    reason_product_name VARCHAR,
    reason VARCHAR,
    as_of_date DATE,
    generated_at TIMESTAMP
)"""


def latest_line_date(con) -> date | None:
    """The UTC date of the latest valid order line, or None without any."""
    value = con.execute(f"SELECT max(ordered_at) FROM {LINES}").fetchone()[0]
    return value.date() if value is not None else None


def write_recommendations(con, as_of: date | None = None) -> RecommendationSummary:
    """Replace `ml.product_recommendations` with every customer's top 3 as of `as_of` (default: latest line).

    Raises `NoProductData` when the warehouse has no order lines (nothing is written then).
    """
    if not has_product_data(con):
        raise NoProductData("no order lines with products in marts.fct_order_lines (a transaction log such as "
                            "CDNOW has none): no recommendations")
    started = time.perf_counter()
    as_of = as_of or latest_line_date(con)
    top = build_candidates(con, as_of + timedelta(days=1))
    generated_at = datetime.now(UTC).replace(tzinfo=None)
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DROP TABLE IF EXISTS {TABLE}")
        con.execute(DDL)
        con.execute(f"""
            INSERT INTO {TABLE}
            SELECT r.customer_id, r.rank, r.product_id, p.product_name, p.category, r.score, r.reason_kind,
                   r.reason_product_id, a.product_name, {REASON_SQL}, ?::DATE, ?::TIMESTAMP
            FROM {top} r
            LEFT JOIN {PRODUCTS} p ON p.product_id = r.product_id
            LEFT JOIN {PRODUCTS} a ON a.product_id = r.reason_product_id
            ORDER BY r.customer_id, r.rank
        """, [as_of, generated_at])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        drop_candidates(con)
    customers, rows = con.execute(f"SELECT count(DISTINCT customer_id), count(*) FROM {TABLE}").fetchone()
    by_reason = dict(con.execute(f"SELECT reason_kind, count(*) FROM {TABLE} GROUP BY 1 ORDER BY 1").fetchall())
    summary = RecommendationSummary(as_of, customers, rows, time.perf_counter() - started,
                                    {k: int(by_reason.get(k, 0)) for k in REASON_KINDS})
    log.info("next-product recommendations for %d customers as of %s in %.1f s", customers, as_of, summary.seconds)
    return summary
