"""Dagster assets for the next-product recommendations (`ml.recommend`, `ml.recommend_backtest`).

`ml/product_recommendations` runs with every scoring run (group `score`): each customer's top 3
next products into `ml.product_recommendations`, which the outreach lists and the dashboard
read. `ml/recommendation_backtest` runs with training (group `train`): hit rate and NDCG at 3
against the popularity baseline at past cut-offs, into `ml.recommendation_backtests` and the
model card. A shop without order lines (a transaction log such as CDNOW) skips both, saying why.
"""

import dagster as dg
from dagster import AssetExecutionContext

from pipelines.core.config import settings
from pipelines.defs.resources import WarehouseResource

PRODUCT_RECOMMENDATIONS_KEY = dg.AssetKey(["ml", "product_recommendations"])
RECOMMENDATION_BACKTEST_KEY = dg.AssetKey(["ml", "recommendation_backtest"])

#: What the recommender reads: the order lines and the product dimension (consumables).
RECOMMENDER_INPUTS = [
    dg.AssetKey(["marts", "fct_order_lines"]),
    dg.AssetKey(["marts", "dim_products"]),
]


@dg.asset(
    key=PRODUCT_RECOMMENDATIONS_KEY,
    deps=RECOMMENDER_INPUTS,
    group_name="score",
    pool="duckdb_writer",
    kinds={"duckdb"},
    description=(
        "ml.product_recommendations: every customer's top 3 next products from purchase sequences "
        "and co-purchases (never a returned product, no repeat of a non-consumable), with the reason."
    ),
)
def product_recommendations(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Recommend the next products for every customer as of RETAIN_AS_OF (default: the latest order line)."""
    from ml.recommend import NoProductData, write_recommendations

    with warehouse.connect() as con:
        try:
            summary = write_recommendations(con, as_of=settings().as_of)
        except NoProductData as exc:
            context.log.warning(str(exc))
            return dg.MaterializeResult(metadata={"skipped_reason": str(exc), "dagster/row_count": 0})
    context.log.info(f"recommended next products to {summary.customers:,} customers in {summary.seconds:.1f} s")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": summary.rows,
        "customers": summary.customers,
        "as_of_date": summary.as_of_date.isoformat(),
        "seconds": summary.seconds,
        "by_reason": dg.MetadataValue.json(summary.by_reason),
    })


@dg.asset(
    key=RECOMMENDATION_BACKTEST_KEY,
    deps=RECOMMENDER_INPUTS,
    group_name="train",
    pool="duckdb_writer",
    kinds={"duckdb"},
    description=(
        "ml.recommendation_backtests: hit rate and NDCG at 3 of the next-product recommendations "
        "and of the popularity baseline at time-ordered past cut-offs (shown by `retain model`)."
    ),
)
def recommendation_backtest(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Backtest the recommender against the popularity baseline and store the numbers."""
    from ml.recommend_backtest import run_backtest

    with warehouse.connect() as con:
        result = run_backtest(con, run_id=context.run_id)
    if result.skipped_reason:
        context.log.warning(f"recommendation backtest skipped: {result.skipped_reason}")
        return dg.MaterializeResult(metadata={"skipped_reason": result.skipped_reason})
    d = result.to_dict()
    context.log.info(f"recommendation backtest: hit rate at 3 {d['hit_rate_at_3']:.3f}, "
                     f"popularity {d['baseline_hit_rate_at_3']:.3f}")
    return dg.MaterializeResult(metadata={
        "hit_rate_at_3": d["hit_rate_at_3"], "baseline_hit_rate_at_3": d["baseline_hit_rate_at_3"],
        "ndcg_at_3": d["ndcg_at_3"], "baseline_ndcg_at_3": d["baseline_ndcg_at_3"],
        "cutoffs": dg.MetadataValue.json(result.cutoffs),
    })
