"""After scoring: the dbt models tagged `after_scoring` (action tiers, read by the outreach lists).
After the outreach lists: the models tagged `after_outreach` (the lift of every play) and the
uplift model trained on the plays' holdouts."""

from pipelines.defs.lift.assets import (
    ACTION_TIERS_KEY,
    LIFT_OP_NAME,
    TIERS_OP_NAME,
    UPLIFT_SCORES_KEY,
    action_tiers,
    outreach_lift,
    uplift_scores,
)

assets = [action_tiers, outreach_lift, uplift_scores]

__all__ = [
    "ACTION_TIERS_KEY", "LIFT_OP_NAME", "TIERS_OP_NAME", "UPLIFT_SCORES_KEY", "action_tiers", "assets",
    "outreach_lift", "uplift_scores",
]
