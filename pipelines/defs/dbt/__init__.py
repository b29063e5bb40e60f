"""dbt in Dagster: the warehouse models (staging → intermediate → marts) as assets.

Exports `assets`, `asset_checks` and `jobs` (`backfill_job`) for `pipelines.definitions`, and
`dbt_cli` for the CLI.
The dbt tests are asset checks of the dbt multi-asset itself, so `asset_checks` is empty.
"""

import dagster as dg

from pipelines.defs.dbt.assets import DBT_OP_NAME, DbtBuildConfig, RetainDbtTranslator, retain_dbt_models
from pipelines.defs.dbt.project import dbt_cli, dbt_project, ensure_manifest

assets = [retain_dbt_models]
asset_checks: list = []

#: `retain backfill` (pipelines/backfill.py): the dbt build alone, run with a date range in the
#: dbt step's config; nothing downstream (scores, lists, exports, publish) runs.
backfill_job = dg.define_asset_job(
    "backfill_job",
    selection=dg.AssetSelection.assets(retain_dbt_models),
    description="Rebuild a past date range of the warehouse: dbt build with backfill_start/backfill_end.",
)
jobs = [backfill_job]

__all__ = [
    "DBT_OP_NAME",
    "DbtBuildConfig",
    "RetainDbtTranslator",
    "asset_checks",
    "assets",
    "backfill_job",
    "dbt_cli",
    "dbt_project",
    "ensure_manifest",
    "jobs",
    "retain_dbt_models",
]
