"""The last step of every run: publish a read-only snapshot for the dashboard."""


from collections.abc import Sequence

import dagster as dg
from dagster import AssetExecutionContext

from pipelines.config import settings
from pipelines.publish import publish_snapshot

PUBLISH_KEY = dg.AssetKey(["published", "dashboard_snapshot"])


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
    def dashboard_snapshot(context: AssetExecutionContext) -> dg.MaterializeResult:
        s = settings()
        path = publish_snapshot(s.warehouse, s.published, run_info={"run_id": context.run_id})
        return dg.MaterializeResult(
            metadata={"snapshot": dg.MetadataValue.path(str(path)), "size_mb": round(path.stat().st_size / 1e6, 2)}
        )

    return dashboard_snapshot
