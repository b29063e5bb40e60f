"""Outreach domain: outreach lists after each scoring run, then every play × format exported."""

from pipelines.defs.outreach.assets import (
    CRM_EXPORTS_KEY,
    HOLDOUT_TABLES,
    OUTREACH_LISTS_KEY,
    crm_exports,
    crm_exports_check,
    outreach_lists,
    outreach_lists_check,
)

assets = [outreach_lists, crm_exports, *HOLDOUT_TABLES]
asset_checks = [outreach_lists_check, crm_exports_check]

__all__ = ["CRM_EXPORTS_KEY", "OUTREACH_LISTS_KEY", "asset_checks", "assets"]
