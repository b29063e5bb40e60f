"""Evaluation of churn scores: ranking, probability quality, top-decile lift, calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def calibration_table(y_true, p_pred, bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: customers, mean predicted risk and observed churn rate per bin."""
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(p_pred, dtype=float), 0.0, 1.0)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(idx, weights=p, minlength=bins) / count
        observed = np.bincount(idx, weights=y, minlength=bins) / count
    return pd.DataFrame(
        {
            "bin_low": np.arange(bins) / bins,
            "bin_high": np.arange(1, bins + 1) / bins,
            "customers": count,
            "mean_predicted": mean_pred,
            "observed_rate": observed,
        }
    )


def expected_calibration_error(y_true, p_pred, bins: int = 10) -> float:
    """Customer-weighted mean |observed churn rate - mean predicted risk| over the bins."""
    table = calibration_table(y_true, p_pred, bins)
    used = table["customers"] > 0
    gaps = (table.loc[used, "observed_rate"] - table.loc[used, "mean_predicted"]).abs()
    return float((gaps * table.loc[used, "customers"]).sum() / table["customers"].sum())


def top_decile(y_true, score) -> tuple[float, float]:
    """(lift, capture) of the 10 % highest scores: churn rate there / overall, churners caught."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(score, dtype=float)
    k = max(int(np.ceil(len(y) * 0.1)), 1)
    # a stable sort on the negated score with a random tie-break keeps ties from favouring order
    order = np.lexsort((np.random.default_rng(0).random(len(s)), -s))[:k]
    base = y.mean()
    caught = y[order].sum()
    lift = float(y[order].mean() / base) if base > 0 else float("nan")
    capture = float(caught / y.sum()) if y.sum() > 0 else float("nan")
    return lift, capture


def evaluate(y_true, p_pred, bins: int = 10) -> dict:
    """ROC AUC, PR AUC, Brier, log loss, top-decile lift and capture, ECE and the calibration table."""
    y = np.asarray(y_true, dtype=int)
    p = np.clip(np.asarray(p_pred, dtype=float), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    lift, capture = top_decile(y, p)
    table = calibration_table(y, p, bins)
    return {
        "n": int(len(y)),
        "churn_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "lift_top_decile": lift,
        "capture_top_decile": capture,
        "ece": expected_calibration_error(y, p, bins),
        "calibration": table.replace({np.nan: None}).to_dict(orient="records"),
    }
