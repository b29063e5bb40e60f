"""Churn and customer-value assets: the weekly-trained model and the daily scores."""

from pipelines.defs.ml.assets import (
    CHURN_MODEL_KEY,
    CHURN_SCORES_KEY,
    churn_model,
    churn_scores,
    score_drift_check,
)

assets = [churn_model, churn_scores]
asset_checks = [score_drift_check]

__all__ = ["CHURN_MODEL_KEY", "CHURN_SCORES_KEY", "asset_checks", "assets"]
