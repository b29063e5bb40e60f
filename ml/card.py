"""A model card for the current churn model: data window, metrics against baselines, top drivers."""

from __future__ import annotations

from pathlib import Path

from ml.registry import current_run_id, load_artifact

_BASELINE_NAMES = {
    "model": "churn model (gradient boosting, calibrated)",
    "model_recent_buyers_365d": "  same model, customers who bought in the last 365 days",
    "recency_rule": "recency-only rule",
    "logistic_regression": "logistic regression, all features",
    "bgnbd_1_minus_p_alive": "BG/NBD 1 - P(alive)",
    "bgnbd_p_no_purchase": "BG/NBD P(no purchase in horizon)",
}

_DRIVER_WORDS = {
    "recency": "time since the last order, how overdue it is vs the usual gap, BG/NBD P(alive)",
    "frequency": "number of orders and usual gap",
    "tenure": "time since the first order",
    "trend": "order trend, last 90 days vs before",
    "spend": "spend and order value",
    "discount": "use of discounts",
    "returns": "returns",
    "delivery": "late deliveries",
    "wismo": "'where is my order' contacts",
    "complaints": "complaints",
    "unresolved": "unresolved complaints",
    "last_order_complaint": "complaint about the last order and how fast it was resolved",
    "post_purchase": "how-to and thank-you emails after the last order",
    "resolution": "support resolution time",
    "nps": "last NPS",
    "csat": "last CSAT",
    "reviews": "review ratings",
    "engagement": "email opens and clicks, last 90 days",
    "unsubscribed": "email unsubscribes",
    "consent": "email consent",
    "channel": "sales channel",
    "country": "country",
}


def model_card(con, models_dir: Path | str, run_id: str | None = None) -> str:
    """Markdown model card of the current promoted model (or `run_id`), with the latest runs' decisions,
    followed by the next-product recommendations' backtest.

    `con` is only read (the run log in `ml.model_runs`, if present).
    """
    from ml.recommend_backtest import backtest_card

    return _churn_card(con, models_dir, run_id) + "\n" + backtest_card(con)


def _churn_card(con, models_dir: Path | str, run_id: str | None = None) -> str:
    run_id = run_id or current_run_id(models_dir)
    if run_id is None:
        from ml.status import read_status

        status = read_status(con)
        if status.get("training") == "skipped":
            return f"# Churn model\n\nNo churn model yet: training was skipped: {status['training_reason']}.\n"
        return "# Churn model\n\nNo promoted churn model yet: run training first.\n"
    meta = load_artifact(models_dir, run_id).metadata
    metrics = meta["metrics"]
    lines = [
        f"# Churn model {run_id}",
        "",
        f"Predicts the probability that a customer places no valid order in the next {meta['horizon_days']} days.",
        "",
        "## Data window",
        f"- Data up to {meta['as_of_date']} (first order {str(meta['data_first_order'])[:10]}).",
        f"- Trained on cut-offs {', '.join(meta['fit_cutoffs'])} ({meta['n_train_rows']:,} customer rows);",
        f"  probabilities calibrated ({meta['calibration_method']}) on cut-off {meta['calibration_cutoff']} "
        f"({meta['n_calibration_rows']:,} rows).",
        f"- Evaluated on cut-off {meta['eval_cutoff']} ({meta['n_eval_rows']:,} customers, churn rate "
        f"{metrics['model']['churn_rate']:.1%}); no outcome after that cut-off was used in training.",
        f"- Data fingerprint {meta['data_fingerprint']}; trained {meta['trained_at'][:19]} UTC; "
        f"scikit-learn {meta['library_versions']['scikit-learn']}.",
        "",
        "## Metrics on the held-out cut-off",
        "",
        "| scorer | ROC AUC | PR AUC | Brier | log loss | lift top 10% | capture top 10% | ECE |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, label in _BASELINE_NAMES.items():
        m = metrics.get(key)
        if m:
            lines.append(
                f"| {label} | {m['roc_auc']:.3f} | {m['pr_auc']:.3f} | {m['brier']:.3f} | {m['log_loss']:.3f} "
                f"| {m['lift_top_decile']:.2f} | {m['capture_top_decile']:.1%} | {m['ece']:.3f} |"
            )
    if "bgnbd_error" in metrics:
        lines.append(f"\nBG/NBD baseline unavailable: {metrics['bgnbd_error']}")
    lines += ["", "## Calibration (held-out cut-off)", "",
              "| predicted risk | customers | mean predicted | observed churn |", "| --- | --- | --- | --- |"]
    for row in metrics["model"]["calibration"]:
        if row["customers"]:
            lines.append(f"| {row['bin_low']:.1f}-{row['bin_high']:.1f} | {row['customers']:,} "
                         f"| {row['mean_predicted']:.2f} | {row['observed_rate']:.2f} |")
    lines += ["", "## Top drivers (ROC AUC lost when the driver is shuffled)", ""]
    for group, drop in list(metrics.get("driver_importance", {}).items())[:8]:
        lines.append(f"- {_DRIVER_WORDS.get(group, group)}: {drop:.3f}")
    features = meta["features"]
    lines += ["", f"Features used ({len(features['numeric']) + len(features['categorical'])}): "
              + ", ".join(features["numeric"] + features["categorical"]) + "."]
    try:
        runs = con.execute(
            "select run_id, trained_at, promoted, reason from ml.model_runs order by trained_at desc limit 5"
        ).fetchall()
    except Exception:  # no run log in this warehouse (e.g. the model was trained elsewhere)
        runs = []
    if runs:
        lines += ["", "## Recent training runs", ""]
        lines += [f"- {r[0]} ({str(r[1])[:16]}): {'promoted' if r[2] else 'not promoted'}: {r[3]}" for r in runs]
    return "\n".join(lines) + "\n"
