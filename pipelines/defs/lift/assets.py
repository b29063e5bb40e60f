"""dbt models built after the outreach lists (tag `after_outreach`): the lift of every play, action tiers.

The models read what the scoring and outreach steps write (`ml.churn_scores`, the holdouts
and lists in `exports.*`), so they run in their own dbt step downstream of
`exports/outreach_lists`, with the same `dbt build` as the warehouse models
(`pipelines.defs.dbt.assets.dbt_build`). Their dbt tests are its checks.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import dbt_assets

from pipelines.defs.dbt.assets import AFTER_OUTREACH_TAG, DbtBuildConfig, dbt_build, translator
from pipelines.defs.dbt.project import dbt_project, ensure_manifest
from pipelines.defs.resources import WarehouseResource

#: Name of the op that builds the models tagged `after_outreach`.
LIFT_OP_NAME = "retain_dbt_after_outreach"

@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    dagster_dbt_translator=translator,
    name=LIFT_OP_NAME,
    pool="duckdb_writer",
    select=f"tag:{AFTER_OUTREACH_TAG}",
)
def outreach_lift(
    context: dg.AssetExecutionContext, config: DbtBuildConfig, warehouse: WarehouseResource
) -> Iterator[Any]:
    """`dbt build` of the models tagged `after_outreach`: the lift of each play, the action tiers."""
    yield from dbt_build(context, config, warehouse)
