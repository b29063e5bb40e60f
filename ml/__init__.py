"""retain's churn and CLV library: plain functions over a DuckDB warehouse, no orchestration.

- `ml.clv`: BG/NBD and Gamma-Gamma fitted by maximum likelihood, P(alive), expected
  purchases, discounted CLV; RFM summaries in pandas or DuckDB.
- `ml.features`: point-in-time churn features and labels (`build_features`, `build_labels`).
- `ml.train`: backtested, calibrated gradient-boosting churn model with baselines and a
  promotion gate (`train`), logged in `ml.model_runs`.
- `ml.score`: `score` writes `ml.churn_scores` and `ml.churn_scores_history`.
- `ml.reasons`: per-customer, plain-language reasons derived from the model.
- `ml.drift`: population stability index and drift report; `ml.card`: model card.
"""
