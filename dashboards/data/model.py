"""The churn model's run in the snapshot: training/scoring status, the promoted run's metrics
(the JSON document `ml.train` logs in ml.model_runs.metrics), calibration and driver importance."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from dashboards.data.connection import has, query, table_columns


def churn_status(con: duckdb.DuckDBPyConnection) -> dict:
    """The last training and scoring outcome (`ml.churn_status`: trained/skipped and why), or {}."""
    if not has(con, "ml.churn_status"):
        return {}
    rows = query(con, "select * from ml.churn_status limit 1")
    return {} if rows.empty else {k: (None if not isinstance(v, str) and pd.isna(v) else v)
                                  for k, v in rows.iloc[0].to_dict().items()}


def scores_missing_note(status: dict) -> str | None:
    """'Not enough history yet: …' when the last scoring step was skipped, else None."""
    if status.get("scoring") != "skipped":
        return None
    reason = str(status.get("scoring_reason") or "no churn model yet")
    return reason[:1].upper() + reason[1:]

def model_quality(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The current model's run: metrics against baselines and its calibration table (or None)."""
    if not has(con, "ml.model_runs"):
        return None
    cols = table_columns(con, "ml.model_runs")
    order = "promoted desc, trained_at desc" if "promoted" in cols else "trained_at desc"
    runs = query(con, f"select * from ml.model_runs order by {order} limit 1")  # noqa: S608 - fixed columns
    if runs.empty:
        return None
    row = runs.iloc[0].to_dict()
    metrics = row.get("metrics")
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    return {"run": {k: v for k, v in row.items() if k != "metrics"}, "metrics": metrics or {}}

#: Evaluations in the metrics document, in display order, with labels (others are left out).
MODEL_EVALUATIONS = {
    "model": "Churn model",
    "logistic_regression": "Baseline: logistic regression",
    "bgnbd_1_minus_p_alive": "Baseline: BG/NBD 1 − P(alive)",
    "bgnbd_p_no_purchase": "Baseline: BG/NBD P(no purchase)",
    "recency_rule": "Baseline: recency rule",
}
#: Metrics shown, in order, with labels.
MODEL_METRICS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "lift_top_decile": "Top-decile lift",
    "capture_top_decile": "Top-decile capture",
    "brier": "Brier score",
    "log_loss": "Log loss",
    "ece": "Calibration error",
}


def metrics_table(metrics: dict) -> pd.DataFrame:
    """One row per evaluation (the churn model, then each baseline), one column per metric."""
    rows = []
    for key, label in MODEL_EVALUATIONS.items():
        ev = metrics.get(key)
        if not isinstance(ev, dict):
            continue
        row = {"Model": label}
        for metric, name in MODEL_METRICS.items():
            value = ev.get(metric)
            row[name] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_table(metrics: dict) -> pd.DataFrame:
    """The churn model's calibration on held-out data: mean predicted vs observed churn per bin."""
    table = (metrics.get("model") or {}).get("calibration") if isinstance(metrics, dict) else None
    if not table:
        return pd.DataFrame(columns=["predicted", "observed", "customers"])
    df = pd.DataFrame(table).rename(columns={"mean_predicted": "predicted", "observed_rate": "observed"})
    if "customers" in df:
        df = df[df["customers"] > 0]
    return df.dropna(subset=["predicted", "observed"]).reset_index(drop=True)


def driver_importance(metrics: dict) -> pd.DataFrame:
    """How much each driver group matters to the model: ROC AUC lost when it is shuffled."""
    groups = metrics.get("driver_importance") if isinstance(metrics, dict) else None
    if not isinstance(groups, dict) or not groups:
        return pd.DataFrame(columns=["driver", "auc_drop"])
    df = pd.DataFrame({"driver": list(groups), "auc_drop": [float(v) for v in groups.values()]})
    df["driver"] = df["driver"].str.replace("_", " ").str.capitalize()
    return df.sort_values("auc_drop", ascending=False).head(10).reset_index(drop=True)

