"""Next-product recommendations: the top 3 products each customer is likely to buy next.

An item-to-item model over purchase sequences and co-purchases, written in SQL and run by
DuckDB over the marts (`marts.fct_order_lines`, `marts.dim_products`):

1. **Strength of A → B**, from every customer's history before the cut-off:
   `(next(A, B) + CO_WEIGHT * together(A, B)) / (buyers(A) + SMOOTHING)`, where `next`
   counts purchases of B in the purchase right after one holding A, `together` counts
   purchases holding both, and `buyers` counts A's buyers. Each product keeps its
   `NEIGHBOURS` strongest successors.
2. **A customer's candidates**: the successors of the products in their last purchase,
   summed per candidate (customers whose last purchase held the same products share one
   list). The product that contributed most is the reason ("bought X; buyers of X often buy
   Y next").
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
NEIGHBOURS = 10
CO_WEIGHT = 0.5
SMOOTHING = 10
POPULAR_DAYS = 90
POPULAR_CANDIDATES = 10

TABLE = "ml.product_recommendations"
LINES = "marts.fct_order_lines"
PRODUCTS = "marts.dim_products"
#: Prefix of the temp tables `write_recommendations` computes in.
PREFIX = "_rec"

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


#: Reason kinds as stored while computing (small integers keep the big group-bys cheap).
_KIND_SQL = "CASE {k} WHEN 0 THEN 'next' WHEN 1 THEN 'together' WHEN 2 THEN 'rebuy' ELSE 'popular' END"
#: Temp tables of `prepare` and of `build_candidates`, by suffix.
_PREPARED = ("products", "customers", "lines", "pairs", "first_buys")
_PER_CUTOFF = ("targets", "excluded", "popular", "strength", "last", "baskets", "basket_top", "scored", "fill")


def prepare(con, prefix: str = "_rec") -> None:
    """Temp tables every cut-off reads: integer codes of products and customers, the distinct
    purchase lines, the product pairs (one after the other, or together) with the time each
    became known, and each customer's first purchase of each product.

    The heavy joins and group-bys work on these integer codes (several times faster than on
    text); a backtest prepares once and computes its cut-offs from the same tables. Codes
    follow the ids' order (`pid` breaks ties between equal scores; sorting on `cid` sorts by
    customer id).
    """
    p = prefix
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_products AS
        SELECT l.product_id, CAST(row_number() OVER (ORDER BY l.product_id) AS INTEGER) AS pid,
               coalesce(any_value(d.is_consumable), false) AS is_consumable
        FROM (SELECT DISTINCT product_id FROM {LINES}) l
        LEFT JOIN {PRODUCTS} d ON d.product_id = l.product_id
        GROUP BY l.product_id
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_customers AS
        SELECT customer_id, CAST(row_number() OVER (ORDER BY customer_id) AS INTEGER) AS cid
        FROM (SELECT DISTINCT customer_id FROM {LINES})
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_lines AS
        SELECT c.cid, CAST(l.purchase_number AS INTEGER) AS purchase_number, pr.pid, l.ordered_at,
               bool_or(l.is_returned) AS is_returned
        FROM {LINES} l
        JOIN {p}_customers c ON c.customer_id = l.customer_id
        JOIN {p}_products pr ON pr.product_id = l.product_id
        GROUP BY ALL
    """)
    # a pair is known from the time of its later purchase (together: of the purchase)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_pairs AS
        SELECT a.pid AS anchor, b.pid AS candidate, 1 AS next_n, 0 AS co_n, b.ordered_at AS known_at
        FROM {p}_lines a JOIN {p}_lines b ON a.cid = b.cid AND b.purchase_number = a.purchase_number + 1
        UNION ALL
        SELECT a.pid, b.pid, 0, 1, a.ordered_at
        FROM {p}_lines a JOIN {p}_lines b
          ON a.cid = b.cid AND a.purchase_number = b.purchase_number AND a.pid <> b.pid
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_first_buys AS
        SELECT pid, cid, min(ordered_at) AS first_at FROM {p}_lines GROUP BY pid, cid
    """)


def build_candidates(con, cutoff: datetime | date, customers: str | None = None, prefix: str = "_rec",
                     model: bool = True, prepared: bool = False, out: str | None = None,
                     baseline_out: str | None = None, coded: bool = False) -> str:
    """Temp table `out` (default `<prefix>_top`): customer_id, rank, product_id, score,
    reason_product_id, reason_kind, and the codes cid, pid, anchor, kind.

    Uses only order lines placed before `cutoff`. `customers`: a table or subquery with a
    `customer_id` column limiting who gets recommendations (default: every customer with a
    line before the cut-off). `model=False` gives the popularity baseline alone. `prepared`:
    `prepare(con, prefix)` already ran (a backtest computes several cut-offs from it).
    `baseline_out`: also the popularity baseline for the same customers into this table (it
    shares the customers, exclusions and best-sellers with the model). `coded`: `customers`
    holds codes (a `cid` column) and the tables only the codes cid, rank, pid, score, anchor,
    kind (the backtest compares codes and never needs the ids). Returns `out`'s name.
    """
    if not prepared:
        prepare(con, prefix)
    cut = _ts(cutoff)
    p = prefix
    out = out or f"{p}_top"
    if customers and coded:
        who = f"SEMI JOIN ({customers}) w ON w.cid = l.cid"
    elif customers:
        who = (f"SEMI JOIN (SELECT c.cid FROM ({customers}) w JOIN {p}_customers c "
               "ON c.customer_id = w.customer_id) w ON w.cid = l.cid")
    else:
        who = ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_targets AS
        SELECT l.cid, max(l.purchase_number) AS last_purchase
        FROM {p}_lines l {who} WHERE l.ordered_at < {cut} GROUP BY l.cid
    """)
    # what each target may not get: returned products, and bought ones that are no consumable
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_excluded AS
        SELECT l.cid, l.pid
        FROM {p}_lines l SEMI JOIN {p}_targets t ON t.cid = l.cid
        JOIN {p}_products pr ON pr.pid = l.pid
        WHERE l.ordered_at < {cut}
        GROUP BY l.cid, l.pid
        HAVING bool_or(l.is_returned) OR NOT bool_or(pr.is_consumable)
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_popular AS
        SELECT pid, row_number() OVER (ORDER BY count(DISTINCT cid) DESC, pid) AS pop_rank
        FROM {p}_lines
        WHERE ordered_at < {cut} AND ordered_at >= {cut} - INTERVAL {POPULAR_DAYS} DAY
        GROUP BY pid
        QUALIFY pop_rank <= {POPULAR_CANDIDATES}
    """)
    if baseline_out:
        _rank(con, p, _NONE, baseline_out, coded)
    if not model:
        return _rank(con, p, _NONE, out, coded)
    # pairs are summed before the buyers join: one row per pair, not per purchase
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_strength AS
        WITH buyers AS (SELECT pid, count(*) AS n FROM {p}_first_buys WHERE first_at < {cut} GROUP BY pid),
        counted AS (
            SELECT anchor, candidate, sum(next_n) AS next_n, sum(co_n) AS co_n
            FROM {p}_pairs WHERE known_at < {cut} GROUP BY anchor, candidate
        )
        SELECT c.anchor, c.candidate,
               (c.next_n + {CO_WEIGHT} * c.co_n) / (buyers.n + {SMOOTHING}) AS strength,
               CASE WHEN c.anchor = c.candidate THEN 2
                    WHEN c.next_n >= {CO_WEIGHT} * c.co_n THEN 0 ELSE 1 END AS kind
        FROM counted c JOIN buyers ON buyers.pid = c.anchor
        QUALIFY row_number() OVER (PARTITION BY c.anchor ORDER BY strength DESC, c.candidate) <= {NEIGHBOURS}
    """)
    # customers whose last purchase held the same products share one candidate list
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_last AS
        SELECT l.cid, list(DISTINCT l.pid ORDER BY l.pid) AS basket
        FROM {p}_lines l JOIN {p}_targets t ON t.cid = l.cid AND l.purchase_number = t.last_purchase
        GROUP BY l.cid
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_baskets AS
        SELECT basket, row_number() OVER (ORDER BY basket) AS bid FROM (SELECT DISTINCT basket FROM {p}_last)
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_basket_top AS
        WITH anchors AS (SELECT bid, unnest(basket) AS anchor FROM {p}_baskets),
        scored AS (
            SELECT a.bid, s.candidate AS pid, sum(s.strength) AS score,
                   arg_max(s.anchor * 4 + s.kind, s.strength) AS ak
            FROM anchors a JOIN {p}_strength s ON s.anchor = a.anchor
            GROUP BY a.bid, s.candidate
        )
        SELECT bid, list({{'pid': pid, 'score': score, 'ak': ak}} ORDER BY score DESC, pid) AS cands
        FROM scored GROUP BY bid
    """)
    # the first TOP_K candidates not excluded are among the first TOP_K + (number excluded)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_scored AS
        WITH ex AS (SELECT cid, list(pid) AS ex FROM {p}_excluded GROUP BY cid),
        picks AS (
            SELECT l.cid,
                   CASE WHEN ex.ex IS NULL THEN bt.cands[1:{TOP_K}]
                        ELSE list_filter(bt.cands[1:{TOP_K} + len(ex.ex)],
                                         lambda x: NOT list_contains(ex.ex, x.pid))[1:{TOP_K}] END AS picks
            FROM {p}_last l
            JOIN {p}_baskets b ON b.basket = l.basket
            JOIN {p}_basket_top bt ON bt.bid = b.bid
            LEFT JOIN ex ON ex.cid = l.cid
        )
        SELECT cid, x.pid, x.score, x.ak // 4 AS anchor, x.ak % 4 AS kind
        FROM picks, unnest(picks) AS u(x)
    """)
    return _rank(con, p, f"SELECT cid, pid, score, anchor, kind FROM {p}_scored", out, coded)


#: No model candidates (the popularity baseline alone).
_NONE = ("SELECT NULL::INTEGER AS cid, NULL::INTEGER AS pid, NULL::DOUBLE AS score, "
         "NULL::INTEGER AS anchor, NULL::INTEGER AS kind WHERE false")


def _rank(con, p: str, scored: str, out: str, coded: bool) -> str:
    """Top up `scored` (cid, pid, score, anchor, kind) with the best-sellers each target may have,
    rank each customer's products into `out` (with the ids unless `coded`); return `out`."""
    # customers with fewer than 3 left get the best-sellers they may have, after their own
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {p}_fill AS
        WITH have AS (SELECT cid, count(*) AS n FROM ({scored}) GROUP BY cid),
             short AS (SELECT t.cid, coalesce(h.n, 0) AS n FROM {p}_targets t LEFT JOIN have h USING (cid)
                       WHERE coalesce(h.n, 0) < {TOP_K})
        SELECT s.cid, pop.pid, (1 + {POPULAR_CANDIDATES} - pop.pop_rank) * 1e-9 AS score,
               NULL::INTEGER AS anchor, 3 AS kind
        FROM short s CROSS JOIN {p}_popular pop
        ANTI JOIN {p}_excluded x ON x.cid = s.cid AND x.pid = pop.pid
        ANTI JOIN ({scored}) m ON m.cid = s.cid AND m.pid = pop.pid
        QUALIFY row_number() OVER (PARTITION BY s.cid ORDER BY pop.pop_rank) <= {TOP_K} - s.n
    """)
    ranked = f"""
        SELECT r.cid, CAST(row_number() OVER (PARTITION BY r.cid ORDER BY r.score DESC, r.pid) AS INTEGER) AS rank,
               r.pid, r.score, r.anchor, r.kind
        FROM (SELECT * FROM ({scored}) UNION ALL SELECT * FROM {p}_fill) r"""
    if coded:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS {ranked}")
        return out
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT c.customer_id, r.rank, pr.product_id, r.score, ap.product_id AS reason_product_id,
               {_KIND_SQL.format(k='r.kind')} AS reason_kind, r.cid, r.pid, r.anchor, r.kind
        FROM ({ranked}) r
        JOIN {p}_customers c ON c.cid = r.cid
        JOIN {p}_products pr ON pr.pid = r.pid
        LEFT JOIN {p}_products ap ON ap.pid = r.anchor
    """)
    return out


def drop_candidates(con, prefix: str = "_rec", keep_prepared: bool = False) -> None:
    """Drop the temp tables `prepare` and `build_candidates` made (not the `out` tables of other names);
    `keep_prepared`: only those of the last cut-off (another cut-off or the backtest reuses the rest)."""
    for t in (*(() if keep_prepared else _PREPARED), *_PER_CUTOFF, "top"):
        con.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


#: The sentence a marketer reads for each reason kind (product names `p`, reason product `a`).
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


def write_recommendations(con, as_of: date | None = None, keep_prepared: bool = False) -> RecommendationSummary:
    """Replace `ml.product_recommendations` with every customer's top 3 as of `as_of` (default: latest line).

    Raises `NoProductData` when the warehouse has no order lines (nothing is written then).
    `keep_prepared`: leave `prepare`'s temp tables (prefix `PREFIX`) on `con` for a backtest
    in the same step (`run_backtest(con, prepared=PREFIX)`), which then skips building them.
    """
    if not has_product_data(con):
        raise NoProductData("no order lines with products in marts.fct_order_lines (a transaction log such as "
                            "CDNOW has none): no recommendations")
    started = time.perf_counter()
    as_of = as_of or latest_line_date(con)
    top = build_candidates(con, as_of + timedelta(days=1), prefix=PREFIX, coded=True)
    generated_at = datetime.now(UTC).replace(tzinfo=None)
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DROP TABLE IF EXISTS {TABLE}")
        con.execute(DDL)
        # names and the reason sentence once per distinct (product, reason, kind), not per row
        con.execute(f"""
            INSERT INTO {TABLE}
            WITH labels AS (
                SELECT DISTINCT pid, coalesce(anchor, 0) AS anchor, kind, {_KIND_SQL.format(k='kind')} AS reason_kind
                FROM {top}
            ),
            named AS (
                SELECT r.pid, r.anchor, r.kind, pr.product_id, p.product_name, p.category, r.reason_kind,
                       ap.product_id AS reason_product_id, a.product_name AS reason_product_name,
                       {REASON_SQL} AS reason
                FROM labels r
                JOIN {PREFIX}_products pr ON pr.pid = r.pid
                LEFT JOIN {PREFIX}_products ap ON ap.pid = r.anchor
                LEFT JOIN {PRODUCTS} p ON p.product_id = pr.product_id
                LEFT JOIN {PRODUCTS} a ON a.product_id = ap.product_id
            )
            SELECT c.customer_id, t.rank, n.product_id, n.product_name, n.category, t.score, n.reason_kind,
                   n.reason_product_id, n.reason_product_name, n.reason, ?::DATE, ?::TIMESTAMP
            FROM {top} t
            JOIN {PREFIX}_customers c ON c.cid = t.cid
            JOIN named n ON n.pid = t.pid AND n.anchor = coalesce(t.anchor, 0) AND n.kind = t.kind
            ORDER BY t.cid, t.rank  -- codes follow the customer ids' order
        """, [as_of, generated_at])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        drop_candidates(con, PREFIX, keep_prepared=keep_prepared)
    customers, rows = con.execute(f"SELECT count(DISTINCT customer_id), count(*) FROM {TABLE}").fetchone()
    by_reason = dict(con.execute(f"SELECT reason_kind, count(*) FROM {TABLE} GROUP BY 1 ORDER BY 1").fetchall())
    summary = RecommendationSummary(as_of, customers, rows, time.perf_counter() - started,
                                    {k: int(by_reason.get(k, 0)) for k in REASON_KINDS})
    log.info("next-product recommendations for %d customers as of %s in %.1f s", customers, as_of, summary.seconds)
    return summary
