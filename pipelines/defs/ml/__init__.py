"""Churn, customer-value and next-product assets: the weekly-trained model, the daily scores and
recommendations, and the recommendations' backtest."""

from pipelines.defs.ml.assets import (
    CHURN_MODEL_KEY,
    CHURN_SCORES_KEY,
    churn_model,
    churn_scores,
    score_drift_check,
)
from pipelines.defs.ml.recommendations import (
    PRODUCT_RECOMMENDATIONS_KEY,
    product_recommendations,
)

#: `product_recommendations` materialises the recommendations and their backtest (one step)
assets = [churn_model, churn_scores, product_recommendations]
asset_checks = [score_drift_check]

__all__ = ["CHURN_MODEL_KEY", "CHURN_SCORES_KEY", "PRODUCT_RECOMMENDATIONS_KEY", "asset_checks", "assets"]
