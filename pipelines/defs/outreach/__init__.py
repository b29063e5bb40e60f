"""Outreach domain: outreach lists after each scoring run, every play × format exported, the lift."""

from pipelines.defs.outreach.assets import (
    CRM_EXPORTS_KEY,
    OUTREACH_LISTS_KEY,
    crm_exports,
    crm_exports_check,
    outreach_lists,
    outreach_lists_check,
)
from pipelines.defs.outreach.lift import HOLDOUT_TABLES, outreach_lift

assets = [outreach_lists, crm_exports, outreach_lift, *HOLDOUT_TABLES]
asset_checks = [outreach_lists_check, crm_exports_check]

__all__ = ["CRM_EXPORTS_KEY", "OUTREACH_LISTS_KEY", "asset_checks", "assets"]
