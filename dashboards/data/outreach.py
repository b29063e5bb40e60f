"""The Outreach page: the latest outreach run's plays, suppressions and a masked preview of each play."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from dashboards.data.connection import has, query, table_columns
from dashboards.data.filters import Filters
from dashboards.data.model import churn_status, scores_missing_note
from pipelines.core.privacy import mask_email, mask_phone


def outreach(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """The latest outreach run: plays with counts, suppressions by reason and a preview of each play."""
    if not has(con, "exports.outreach_lists"):
        return {"available": False}
    if has(con, "exports.runs"):
        latest = query(
            con,
            "select run_id, created_at, as_of_date, plays_json from exports.runs "
            "order by created_at desc, run_id desc limit 1",
        )
    else:
        latest = query(
            con,
            "select run_id, max(created_at) as created_at, max(as_of_date) as as_of_date, null as plays_json "
            "from exports.outreach_lists group by 1 order by 2 desc, 1 desc limit 1",
        )
    if latest.empty:
        return {"available": True, "run_id": None}
    run = latest.iloc[0].to_dict()
    run_id = run["run_id"]
    listed = query(
        con,
        """
        select play, count(*) as customers, avg(churn_probability) as avg_churn_probability,
               coalesce(sum(clv_12m), 0) as clv_12m
        from exports.outreach_lists where run_id = $run_id
        group by 1
        """,
        {"run_id": run_id},
    )
    # Plays in playbook order, also those nobody qualified for (from the run's own record).
    defined = pd.DataFrame(json.loads(run["plays_json"])) if run.get("plays_json") else pd.DataFrame()
    if not defined.empty and "name" in defined:
        keep = [c for c in ("name", "priority", "channel", "action") if c in defined]
        plays = defined[keep].rename(columns={"name": "play"}).merge(listed, on="play", how="outer")
    else:
        plays = listed.merge(
            query(con, "select play, min(priority) as priority, any_value(channel) as channel, "
                       "any_value(action) as action from exports.outreach_lists where run_id = $run_id group by 1",
                  {"run_id": run_id}),
            on="play",
        )
    plays["customers"] = plays["customers"].fillna(0).astype(int)
    plays["clv_12m"] = plays["clv_12m"].fillna(0.0)
    plays = plays.sort_values("priority" if "priority" in plays else "play").reset_index(drop=True)
    suppressed = None
    if has(con, "exports.suppressions"):
        suppressed = query(
            con,
            """
            select play, reason, count(*) as customers
            from exports.suppressions where run_id = $run_id
            group by 1, 2 order by customers desc
            """,
            {"run_id": run_id},
        )
    suppressed_customers = None
    if suppressed is not None:
        suppressed_customers = int(query(
            con, "select count(distinct customer_id) as n from exports.suppressions where run_id = $run_id",
            {"run_id": run_id},
        ).iloc[0]["n"])
    contact = has(con, "marts.dim_customers")
    order_col = "l.rank" if "rank" in table_columns(con, "exports.outreach_lists") else "l.priority"
    preview = query(
        con,
        f"""
        with top as (
            select l.play, {order_col} as rank, l.customer_id, l.risk_tier, l.churn_probability, l.clv_12m,
                   l.reasons
            from exports.outreach_lists l
            where l.run_id = $run_id
            qualify row_number() over (partition by l.play order by {order_col}, l.customer_id) <= 50
        )
        select top.play, top.rank, top.customer_id,
               {mask_email("c.email") if contact else "null"} as email,
               {mask_phone("c.phone") if contact else "null"} as phone,
               top.risk_tier, top.churn_probability, top.clv_12m, top.reasons
        from top
        {"left join marts.dim_customers c on c.customer_id = top.customer_id" if contact else ""}
        order by top.play, top.rank, top.customer_id
        """,
        {"run_id": run_id},
    )
    return {
        "available": True,
        "run_id": run_id,
        "created_at": run["created_at"],
        "as_of_date": run.get("as_of_date"),
        "plays": plays,
        "suppressed": suppressed,
        "suppressed_customers": suppressed_customers,
        "preview": preview,
        "scores_missing": scores_missing_note(churn_status(con)),
    }
