"""Dagster assets around the `ml` library: train (weekly, group `train`) and score (every run).

The work is done by `ml.train.train` and `ml.score.score`; these assets open the warehouse,
call them and report what happened. Both sit downstream of the dbt marts, so a failing
error-severity dbt test (which fails the dbt step) stops them, and with them the outreach
lists and exports.
"""

import dagster as dg
from dagster import AssetCheckExecutionContext, AssetExecutionContext

from ml.inputs import INPUT_TABLES
from pipelines.core.config import settings
from pipelines.defs.resources import WarehouseResource

CHURN_MODEL_KEY = dg.AssetKey(["ml", "churn_model"])
CHURN_SCORES_KEY = dg.AssetKey(["ml", "churn_scores"])

#: What the features read, as `ml.inputs.INPUT_TABLES` declares it (the marts only).
FEATURE_INPUTS = [dg.AssetKey(table.split(".")) for table in INPUT_TABLES]

@dg.asset(
    key=CHURN_MODEL_KEY,
    deps=FEATURE_INPUTS,
    group_name="train",
    pool="duckdb_writer",
    kinds={"scikitlearn", "duckdb"},
    description=(
        "Backtested churn model: trained on several past cut-offs, evaluated on a later one "
        "against baselines, logged in ml.model_runs, promoted only if it passes the gate."
    ),
)
def churn_model(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Train a new churn model and promote it if it beats the recency rule and the current model.

    Too short a history (or too few customers) is not a failure: a new shop's first export is
    often a few weeks long. The step then materialises with `skipped_reason` in its
    metadata (the run summary and `retain status` show it), records it in `ml.churn_status`,
    and the scoring and outreach steps downstream skip what needs a model.
    """
    from ml.features import latest_order_date
    from ml.status import training_done, training_skipped
    from ml.train import NotEnoughHistory, train

    s = settings()
    with warehouse.connect() as con:
        try:
            result = train(con, as_of=s.as_of, models_dir=s.models)
        except NotEnoughHistory as exc:
            training_skipped(con, exc.reason, s.as_of or latest_order_date(con), exc.days, exc.days_needed,
                             exc.customers)
            context.log.warning(f"churn model training skipped: {exc.reason}")
            return dg.MaterializeResult(metadata={
                "skipped_reason": exc.reason,
                "history_days": exc.days if exc.days is not None else -1,
                "history_days_needed": exc.days_needed if exc.days_needed is not None else -1,
            })
        training_done(con, result.plan.as_of, result.run_id if result.promoted else None, result.reason)
    context.log.info(result.summary())
    model = result.metrics.get("model", {})
    return dg.MaterializeResult(
        metadata={
            "model_run_id": result.run_id,
            "promoted": result.promoted,
            "gate": result.reason,
            "roc_auc": float(model.get("roc_auc", float("nan"))),
            "pr_auc": float(model.get("pr_auc", float("nan"))),
            "brier": float(model.get("brier", float("nan"))),
            "eval_cutoff": str(result.plan.eval_cutoff),
            "rows_in": result.n_train_rows + result.n_calibration_rows + result.n_eval_rows,
            "seconds": round(result.seconds, 1),
            "report": dg.MetadataValue.md(f"```\n{result.summary()}\n```"),
        }
    )


@dg.asset(
    key=CHURN_SCORES_KEY,
    deps=[CHURN_MODEL_KEY, *FEATURE_INPUTS],
    group_name="score",
    pool="duckdb_writer",
    kinds={"scikitlearn", "duckdb"},
    description=(
        "ml.churn_scores: churn probability, risk tier, P(alive), expected purchases, 12-month "
        "CLV and three plain-language reasons per customer; history in ml.churn_scores_history."
    ),
)
def churn_scores(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Score every customer with the promoted model as of RETAIN_AS_OF (default: latest order date).

    Skipped (`skipped_reason` in the metadata, `ml.churn_scores` emptied) when the history is too
    short for a churn model or no model exists yet; see `ml.score.skip_reason`.
    """
    from ml.score import ScoringSkipped
    from pipelines.engines import score_customers

    s = settings()
    with warehouse.connect() as con:
        try:
            scores = score_customers(con, as_of=s.as_of, models_dir=s.models)
        except ScoringSkipped as exc:
            context.log.warning(f"churn scoring skipped: {exc.reason}")
            return dg.MaterializeResult(metadata={"skipped_reason": exc.reason, "dagster/row_count": 0})
    context.log.info(f"scored {scores.rows:,} customers: {scores.risk_tiers}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": scores.rows,
            "as_of_date": str(scores.as_of_date or ""),
            "model_version": scores.model_version,
            "risk_tiers": dg.MetadataValue.json(scores.risk_tiers),
            "mean_churn_probability": scores.mean_churn_probability,
        }
    )


@dg.asset_check(
    asset=CHURN_SCORES_KEY,
    name="score_drift",
    description="PSI of today's features and scores against the model's training reference; warns above 0.25.",
)
def score_drift_check(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Warn (not block) when the population drifts away from what the model was trained on."""
    from ml.drift import drift_from_warehouse
    from ml.status import read_status

    s = settings()
    with warehouse.connect(read_only=True) as con:
        status = read_status(con)
        if status.get("scoring") == "skipped":
            return dg.AssetCheckResult(passed=True, description=f"no scores to compare: {status['scoring_reason']}",
                                       metadata={"skipped_reason": status["scoring_reason"]})
        result = drift_from_warehouse(con, s.models)
    top = result.report.head(10)
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=result.describe(),
        metadata={
            "max_psi": result.max_psi,
            "top_drift": dg.MetadataValue.md(top.to_markdown(index=False) if len(top) else "none"),
        },
    )
