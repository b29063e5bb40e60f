"""After the outreach lists: the dbt models tagged `after_outreach` (the lift of every play, action tiers)."""

from pipelines.defs.lift.assets import LIFT_OP_NAME, outreach_lift

assets = [outreach_lift]

__all__ = ["LIFT_OP_NAME", "assets", "outreach_lift"]
