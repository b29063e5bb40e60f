"""dbt models built after scoring (tag `after_scoring`: the action tiers, which the outreach
lists read) and after the outreach lists (tag `after_outreach`: the lift of every play).

The models read what the scoring and outreach steps write (`ml.churn_scores`, the holdouts
and lists in `exports.*`), so they run in their own dbt steps: the tiers downstream of
`ml/churn_scores` and upstream of `exports/outreach_lists`, the lift downstream of
`exports/outreach_lists`, with the same `dbt build` as the warehouse models
(`pipelines.defs.dbt.assets.dbt_build`). Their dbt tests are their checks.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import dbt_assets

from pipelines.defs.dbt.assets import (
    AFTER_OUTREACH_TAG,
    AFTER_SCORING_TAG,
    DbtBuildConfig,
    dbt_build,
    translator,
)
from pipelines.defs.dbt.project import dbt_project, ensure_manifest
from pipelines.defs.resources import WarehouseResource

#: Name of the op that builds the models tagged `after_outreach`.
LIFT_OP_NAME = "retain_dbt_after_outreach"
#: Name of the op that builds the models tagged `after_scoring`.
TIERS_OP_NAME = "retain_dbt_after_scoring"
#: The action tiers mart (the outreach candidates read it).
ACTION_TIERS_KEY = dg.AssetKey(["marts", "customer_action_tiers"])


def _dbt_step(name: str, tag: str, doc: str) -> dg.AssetsDefinition:
    """A `dbt build` step of the models tagged `tag`, run like the warehouse models' step."""

    @dbt_assets(
        manifest=ensure_manifest(),
        project=dbt_project,
        dagster_dbt_translator=translator,
        name=name,
        pool="duckdb_writer",
        select=f"tag:{tag}",
    )
    def _step(context: dg.AssetExecutionContext, config: DbtBuildConfig, warehouse: WarehouseResource) -> Iterator[Any]:
        yield from dbt_build(context, config, warehouse)

    _step.__doc__ = doc
    return _step


#: The action tiers of the latest scores.
action_tiers = _dbt_step(TIERS_OP_NAME, AFTER_SCORING_TAG, "`dbt build` of the models tagged `after_scoring`.")
#: The lift of each play.
outreach_lift = _dbt_step(LIFT_OP_NAME, AFTER_OUTREACH_TAG, "`dbt build` of the models tagged `after_outreach`.")


#: Per-customer uplift of each play with enough holdout data (ml/uplift.py).
UPLIFT_SCORES_KEY = dg.AssetKey(["ml", "uplift_scores"])
#: What the uplift model learns from: a dbt model of the lift step.
UPLIFT_TRAINING_KEY = dg.AssetKey(["marts", "outreach_first_listing_outcomes"])


@dg.asset(
    key=UPLIFT_SCORES_KEY,
    deps=[UPLIFT_TRAINING_KEY, dg.AssetKey(["ml", "churn_scores"])],
    group_name="uplift",
    pool="duckdb_writer",
    kinds={"scikitlearn", "duckdb"},
    description=(
        "ml.uplift_scores: per customer and play, how much contacting them changes their chance "
        "to order within 60 days (two-model learner on the play's random holdout); "
        "ml.uplift_backtest: its time-ordered backtest against random targeting (Qini). Skipped "
        "until a play has enough held-out customers."
    ),
)
def uplift_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Fit, backtest and score the uplift model of every play with enough holdout data."""
    from ml.status import uplift_done, uplift_skipped
    from ml.uplift import UpliftSkipped, run_uplift

    with warehouse.connect() as con:
        try:
            result = run_uplift(con)
        except UpliftSkipped as exc:
            uplift_skipped(con, exc.reason)
            context.log.warning(f"uplift skipped: {exc.reason}")
            return dg.MaterializeResult(metadata={"skipped_reason": exc.reason, "dagster/row_count": 0})
        summary = result.describe()
        uplift_done(con, summary)
    context.log.info(f"uplift: {summary}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.customers * len(result.backtests),
            "plays": dg.MetadataValue.md(result.backtests.drop(columns="trained_at").to_markdown(index=False)),
            **({"skipped_plays": dg.MetadataValue.json(result.skipped_plays)} if result.skipped_plays else {}),
        }
    )
