"""dbt in Dagster: the warehouse models (staging → intermediate → marts) as assets.

Exports `assets` and `asset_checks` for `pipelines.definitions`, and `dbt_cli` for the CLI.
The dbt tests are asset checks of the dbt multi-asset itself, so `asset_checks` is empty.
"""

from pipelines.defs.dbt.assets import DBT_OP_NAME, DbtBuildConfig, RetainDbtTranslator, retain_dbt_models
from pipelines.defs.dbt.project import dbt_cli, dbt_project, ensure_manifest

assets = [retain_dbt_models]
asset_checks: list = []

__all__ = [
    "DBT_OP_NAME",
    "DbtBuildConfig",
    "RetainDbtTranslator",
    "asset_checks",
    "assets",
    "dbt_cli",
    "dbt_project",
    "ensure_manifest",
    "retain_dbt_models",
]
