"""Dagster assets for the next-product recommendations (`ml.recommend`, `ml.recommend_backtest`).

`ml/product_recommendations` runs with every scoring run (group `score`): each customer's top 3
next products into `ml.product_recommendations`, which the outreach lists and the dashboard
read. `ml/recommendation_backtest` runs with training (group `train`): hit rate and NDCG at 3
against the popularity baseline at past cut-offs, into `ml.recommendation_backtests` and the
model card. A shop without order lines (a transaction log such as CDNOW) skips both, saying why.
Both come from one step (a multi-asset run for what the job selects), so that a run with both
(the full run) codes the order lines once.
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


def _recommend(context: AssetExecutionContext, con, keep_prepared: bool) -> dg.MaterializeResult:
    """Write the recommendations; their Dagster metadata."""
    from ml.recommend import NoProductData, write_recommendations

    try:
        summary = write_recommendations(con, as_of=settings().as_of, keep_prepared=keep_prepared)
    except NoProductData as exc:
        context.log.warning(str(exc))
        return dg.MaterializeResult(asset_key=PRODUCT_RECOMMENDATIONS_KEY,
                                    metadata={"skipped_reason": str(exc), "dagster/row_count": 0})
    context.log.info(f"recommended next products to {summary.customers:,} customers in {summary.seconds:.1f} s")
    return dg.MaterializeResult(asset_key=PRODUCT_RECOMMENDATIONS_KEY, metadata={
        "dagster/row_count": summary.rows,
        "customers": summary.customers,
        "as_of_date": summary.as_of_date.isoformat(),
        "seconds": summary.seconds,
        "by_reason": dg.MetadataValue.json(summary.by_reason),
    })


def _backtest(context: AssetExecutionContext, con, prepared: str | None) -> dg.MaterializeResult:
    """Backtest the recommender; its Dagster metadata."""
    from ml.recommend_backtest import run_backtest

    result = run_backtest(con, run_id=context.run_id, prepared=prepared)
    if result.skipped_reason:
        context.log.warning(f"recommendation backtest skipped: {result.skipped_reason}")
        return dg.MaterializeResult(asset_key=RECOMMENDATION_BACKTEST_KEY,
                                    metadata={"skipped_reason": result.skipped_reason})
    d = result.to_dict()
    context.log.info(f"recommendation backtest: hit rate at 3 {d['hit_rate_at_3']:.3f}, "
                     f"popularity {d['baseline_hit_rate_at_3']:.3f}")
    return dg.MaterializeResult(asset_key=RECOMMENDATION_BACKTEST_KEY, metadata={
        "hit_rate_at_3": d["hit_rate_at_3"], "baseline_hit_rate_at_3": d["baseline_hit_rate_at_3"],
        "ndcg_at_3": d["ndcg_at_3"], "baseline_ndcg_at_3": d["baseline_ndcg_at_3"],
        "cutoffs": dg.MetadataValue.json(result.cutoffs),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PRODUCT_RECOMMENDATIONS_KEY,
            deps=RECOMMENDER_INPUTS,
            group_name="score",
            kinds={"duckdb"},
            skippable=True,
            description=(
                "ml.product_recommendations: every customer's top 3 next products from purchase sequences "
                "and co-purchases (never a returned product, no repeat of a non-consumable), with the reason."
            ),
        ),
        dg.AssetSpec(
            RECOMMENDATION_BACKTEST_KEY,
            deps=RECOMMENDER_INPUTS,
            group_name="train",
            kinds={"duckdb"},
            skippable=True,
            description=(
                "ml.recommendation_backtests: hit rate and NDCG at 3 of the next-product recommendations "
                "and of the popularity baseline at time-ordered past cut-offs (shown by `retain model`)."
            ),
        ),
    ],
    name="ml__product_recommendations",
    can_subset=True,
    pool="duckdb_writer",
)
def product_recommendations(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Recommend the next products for every customer as of RETAIN_AS_OF (default: the latest order line),
    and, in the runs that train, backtest the recommender.

    One step for both: when a run selects both (the full run), the backtest reuses the coded order
    lines and product pairs the recommendations built (about 4 s at 1M customers); the daily run
    selects the recommendations only, the weekly retrain the backtest only.
    """
    selected = context.selected_asset_keys
    both = {PRODUCT_RECOMMENDATIONS_KEY, RECOMMENDATION_BACKTEST_KEY} <= selected
    with warehouse.connect() as con:
        if PRODUCT_RECOMMENDATIONS_KEY in selected:
            recommended = _recommend(context, con, keep_prepared=both)
            yield recommended
            # without order lines nothing was prepared: the backtest says why it skips
            both = both and "skipped_reason" not in recommended.metadata
        if RECOMMENDATION_BACKTEST_KEY in selected:
            from ml.recommend import PREFIX

            yield _backtest(context, con, prepared=PREFIX if both else None)
