"""The Churn page: score distribution, risk and action tiers, top drivers, CLV × risk, uplift, model quality."""

from __future__ import annotations

from datetime import date

import duckdb

from dashboards.data.connection import has, query
from dashboards.data.filters import Filters, customer_scope, filter_params
from dashboards.data.frames import nan_to_none
from dashboards.data.model import churn_status, model_quality, scores_missing_note


def uplift_summary(con: duckdb.DuckDBPyConnection, scope: str = "true", params: dict | None = None) -> dict:
    """The uplift step's state: skipped (and why), or per play its backtest and the top customers by uplift.

    `scope` is a predicate on `s.customer_id` (`customer_scope(con, f, "s.customer_id")`)."""
    status = churn_status(con)
    if not has(con, "ml.uplift_backtest") or not has(con, "ml.uplift_scores"):
        return {"state": "absent", "reason": status.get("uplift_reason")}
    backtest = query(con, "select * from ml.uplift_backtest order by play")
    if backtest.empty:
        return {"state": "skipped", "reason": status.get("uplift_reason")}
    top = query(
        con,
        f"""
        select u.play, u.uplift_rank, u.customer_id, u.uplift, u.p_order_if_contacted, u.p_order_if_held_out,
               s.churn_probability, s.risk_tier, s.clv_12m
        from ml.uplift_scores u join ml.churn_scores s using (customer_id)
        where u.uplift_rank <= 200 and {scope}
        order by u.play, u.uplift desc, u.customer_id
        """,
        params or {},
    )
    return {"state": "scored", "reason": status.get("uplift_reason"), "backtest": backtest, "top": top}


def churn(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Score distribution, tiers over time, top drivers, model quality and calibration, CLV × risk."""
    if not has(con, "ml.churn_scores"):
        return {"available": False}
    skipped = scores_missing_note(churn_status(con))
    if skipped:
        return {"available": False, "missing": (
            f"{skipped}. Churn risk and 12-month value appear here after a run with enough order "
            "history; the other pages work already.")}
    p = filter_params(f)
    scope = customer_scope(con, f)
    summary = query(
        con,
        f"""
        select count(*) as customers,
               count(*) filter (where risk_tier = 'high') as high_risk,
               coalesce(count(*) filter (where risk_tier = 'high'), 0) / nullif(count(*), 0) as high_risk_share,
               count(*) filter (where risk_tier = 'medium') as medium_risk,
               avg(churn_probability) as avg_churn_probability,
               sum(clv_12m) filter (where risk_tier = 'high') as clv_at_risk,
               sum(clv_12m) as clv_total,
               max(as_of_date) as as_of_date,
               max(model_version) as model_version
        from ml.churn_scores where {scope}
        """,
        p,
    ).iloc[0].to_dict()
    distribution = query(
        con,
        f"""
        select least(floor(churn_probability * 20), 19) / 20 as bucket, risk_tier, count(*) as customers
        from ml.churn_scores where {scope}
        group by 1, 2 order by 1
        """,
        p,
    )
    history = None
    if has(con, "ml.churn_scores_history"):
        history = query(
            con,
            f"""
            select as_of_date, risk_tier, count(*) as customers
            from ml.churn_scores_history where {scope}
            group by 1, 2 order by 1
            """,
            p,
        )
    drivers = query(
        con,
        f"""
        with reasons as (
            select unnest([reason_1, reason_2, reason_3]) as reason
            from ml.churn_scores where risk_tier in ('high', 'medium') and {scope}
        ),
        -- the same text repeats a lot: count each text once, then take the numbers out
        texts as (
            select reason, count(*) as customers from reasons
            where reason is not null and reason <> '' group by 1
        )
        select trim(split_part(regexp_replace(reason, '[0-9][0-9.,]*', 'N', 'g'), ',', 1)) as driver,
               arg_max(reason, customers) as example, sum(customers) as customers
        from texts
        group by 1 order by customers desc limit 10
        """,
        p,
    )
    matrix = query(
        con,
        f"""
        with banded as (
            select risk_tier,
                   case when clv_12m is null then 'unknown'
                        when clv_12m < 50 then 'under 50'
                        when clv_12m < 150 then '50–150'
                        when clv_12m < 400 then '150–400'
                        else '400+' end as clv_band,
                   clv_12m
            from ml.churn_scores where {scope}
        )
        select risk_tier, clv_band, count(*) as customers, coalesce(sum(clv_12m), 0) as clv_12m
        from banded group by 1, 2
        """,
        p,
    )
    action = None
    if has(con, "marts.customer_action_tiers"):
        # the tiers of the latest scores batch (dbt model customer_action_tiers, built after scoring)
        action = query(
            con,
            f"""
            select action_tier, count(*) as customers, sum(value_at_risk) as value_at_risk,
                   count(*) filter (where risk_tier = 'high') as high_risk
            from marts.customer_action_tiers
            where customer_id in (select customer_id from ml.churn_scores where {scope})
            group by 1
            order by list_position(['high', 'medium', 'low', 'dormant'], action_tier)
            """,
            p,
        )
    return {
        "available": True,
        "action_tiers": action,
        "uplift": uplift_summary(con, customer_scope(con, f, "s.customer_id"), p),
        "summary": {k: (v if isinstance(v, str) else nan_to_none(v) if not isinstance(v, date) else v)
                    for k, v in summary.items()},
        "distribution": distribution,
        "history": history,
        "drivers": drivers,
        "matrix": matrix,
        "model": model_quality(con),
    }

