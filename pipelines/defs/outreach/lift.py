"""The lift of every play (dbt models tagged `outreach_lift`), measured after the lists are built.

The models read the holdouts and lists the outreach step writes (`exports.*`), so they run
in their own dbt step downstream of `exports/outreach_lists`, with the same `dbt build` as
the warehouse models (`pipelines.defs.dbt.assets.dbt_build`). Their dbt tests are its checks.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import dbt_assets

from pipelines.defs.dbt.assets import OUTREACH_LIFT_TAG, DbtBuildConfig, dbt_build, translator
from pipelines.defs.dbt.project import dbt_project, ensure_manifest
from pipelines.defs.outreach.assets import GROUP, OUTREACH_LISTS_KEY
from pipelines.defs.resources import WarehouseResource

#: Name of the op that builds the lift models.
LIFT_OP_NAME = "retain_dbt_outreach_lift"

#: The holdout tables, written by the lists step with the lists (`exports/outreach_lists`).
HOLDOUT_TABLES = [
    dg.AssetSpec(
        ["exports", table], deps=[OUTREACH_LISTS_KEY], group_name=GROUP, kinds={"duckdb"},
        description=f"exports.{table}: {what}, written by exports/outreach_lists with the lists.",
    )
    for table, what in (
        ("holdouts", "the customers each play held out to measure its lift (never exported)"),
        ("experiments", "each play's holdout share, experiment id and outcome windows per run"),
    )
]


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    dagster_dbt_translator=translator,
    name=LIFT_OP_NAME,
    pool="duckdb_writer",
    select=f"tag:{OUTREACH_LIFT_TAG}",
)
def outreach_lift(
    context: dg.AssetExecutionContext, config: DbtBuildConfig, warehouse: WarehouseResource
) -> Iterator[Any]:
    """`dbt build` of the lift models: contacted versus held-out customers' orders per play."""
    yield from dbt_build(context, config, warehouse)
