"""The last step of every run: publish a read-only snapshot for the dashboard."""


from collections.abc import Sequence

import dagster as dg
from dagster import AssetExecutionContext

from pipelines.core.config import settings
from pipelines.defs.resources import WarehouseResource
from pipelines.publish import publish

PUBLISH_KEY = dg.AssetKey(["published", "dashboard_snapshot"])

#: Jobs that publish incrementally on top of the current snapshot (pipelines/publish.py); every
#: other job (`retain run`'s full_job, backfills) writes a full, freshly sorted snapshot.
INCREMENTAL_PUBLISH_JOBS = frozenset({"daily_job"})


def make_publish_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """Build the publish asset so that it runs after every other asset of the run.

    It depends on all of them, so Dagster only reaches it when every upstream step
    succeeded (and no blocking check failed): a failed run never replaces the snapshot.
    """

    @dg.asset(
        key=PUBLISH_KEY,
        deps=list(upstream),
        group_name="publish",
        pool="duckdb_writer",
        description=(
            "Read-only snapshot of the marts, scores and outreach lists for the dashboard, "
            "switched atomically (data/published/CURRENT)."
        ),
    )
    def dashboard_snapshot(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        s = settings()
        # Opened here so that a lock held for a moment (the dashboard reading) is retried.
        with warehouse.connect() as con:
            result = publish(
                warehouse.location,
                s.published,
                run_info={"run_id": context.run_id},
                incremental=context.job_name in INCREMENTAL_PUBLISH_JOBS,
                con=con,
            )
        context.log.info(f"published {result.path.name} ({result.mode}: {result.reason}) in {result.seconds:.1f} s")
        metadata = {
            "snapshot": dg.MetadataValue.path(str(result.path)),
            "size_mb": round(result.path.stat().st_size / 1e6, 2),
            "mode": result.mode,
            "reason": result.reason,
        }
        if result.changed_customers is not None:
            metadata["changed_customers"] = result.changed_customers
        return dg.MaterializeResult(metadata=metadata)

    return dashboard_snapshot
