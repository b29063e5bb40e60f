"""Has today's population drifted from the one the model was evaluated on?

`psi` is the population stability index; `drift_report` compares today's features and
churn scores with the reference sample stored with the model (evaluation rows and their
predicted risk), for an asset check to call. Usual reading of PSI: below 0.1 stable,
0.1-0.25 a moderate shift worth a look, above 0.25 a major shift (retrain or investigate).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.registry import MISSING_CATEGORY, load_artifact, load_reference

WARN_PSI = 0.1
ALERT_PSI = 0.25
_EPS = 1e-4  # floor for empty bins so the log stays finite


def psi(expected, actual, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`.

    Numeric inputs: bins at the quantiles of `expected` (ties merged), missing values as
    their own bin. Non-numeric inputs: one bin per category. Sum over bins of
    (a - e) * ln(a / e) with bin shares a, e (floored at 1e-4).
    """
    exp_s = pd.Series(expected).reset_index(drop=True)
    act_s = pd.Series(actual).reset_index(drop=True)
    if _is_categorical(exp_s) or _is_categorical(act_s):
        e = exp_s.fillna(MISSING_CATEGORY).astype(str).value_counts(normalize=True)
        a = act_s.fillna(MISSING_CATEGORY).astype(str).value_counts(normalize=True)
        cats = e.index.union(a.index)
        e_share, a_share = e.reindex(cats, fill_value=0).to_numpy(), a.reindex(cats, fill_value=0).to_numpy()
    else:
        e_vals = pd.to_numeric(exp_s, errors="coerce").to_numpy(dtype=float)
        a_vals = pd.to_numeric(act_s, errors="coerce").to_numpy(dtype=float)
        finite = e_vals[~np.isnan(e_vals)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.array([])

        def shares(v: np.ndarray) -> np.ndarray:
            if len(v) == 0:
                return np.zeros(len(edges) + 2)
            idx = np.where(np.isnan(v), len(edges) + 1, np.searchsorted(edges, v, side="right"))
            return np.bincount(idx, minlength=len(edges) + 2) / len(v)

        e_share, a_share = shares(e_vals), shares(a_vals)
    e_share = np.maximum(e_share, _EPS)
    a_share = np.maximum(a_share, _EPS)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def _is_categorical(values: pd.Series) -> bool:
    """Text-like values (not numbers, not all missing): compared by category shares."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    present = values.dropna()
    return len(present) > 0 and not pd.api.types.is_numeric_dtype(pd.Series(list(present)))


def _status(value: float) -> str:
    return "alert" if value >= ALERT_PSI else "warn" if value >= WARN_PSI else "ok"


@dataclass
class DriftResult:
    """Drift of every model feature and of the score; `passed` unless something is an alert."""

    report: pd.DataFrame  # columns: name, kind, psi, status
    max_psi: float
    passed: bool

    def describe(self) -> str:
        """One line for logs and asset-check metadata."""
        worst = self.report.iloc[0] if len(self.report) else None
        if worst is None:
            return "no drift measured"
        return f"max PSI {self.max_psi:.3f} ({worst['name']}); {(self.report['status'] != 'ok').sum()} not ok"


def drift_report(
    features: pd.DataFrame,
    scores,
    models_dir: Path | str,
    run_id: str | None = None,
    bins: int = 10,
) -> DriftResult:
    """Compare today's `features` (a `build_features` frame) and churn `scores` with the model's reference.

    Reference: the evaluation rows stored with the model (current promoted one by default).
    """
    reference = load_reference(models_dir, run_id)
    artifact = load_artifact(models_dir, run_id)
    rows = []
    for name in artifact.features:
        value = psi(reference[name], features[name], bins)
        rows.append({"name": name, "kind": "feature", "psi": value, "status": _status(value)})
    value = psi(reference["churn_probability"], np.asarray(scores, dtype=float), bins)
    rows.append({"name": "churn_probability", "kind": "score", "psi": value, "status": _status(value)})
    report = pd.DataFrame(rows).sort_values("psi", ascending=False, ignore_index=True)
    max_psi = float(report["psi"].max()) if len(report) else 0.0
    return DriftResult(report, max_psi, bool((report["status"] != "alert").all()))


DRIFT_TABLE = "ml.churn_score_drift"
DRIFT_COLUMNS = {"as_of_date": "DATE", "model_version": "VARCHAR", "rank": "INTEGER", "name": "VARCHAR",
                 "kind": "VARCHAR", "psi": "DOUBLE", "status": "VARCHAR"}


def write_drift(con, result: DriftResult, as_of, model_version: str) -> None:
    """Replace `ml.churn_score_drift` with `result`, the drift of the scores batch (as_of, model_version)."""
    report = result.report.assign(as_of_date=as_of, model_version=model_version, rank=range(len(result.report)))
    select = ", ".join(f"cast({name} as {typ}) as {name}" for name, typ in DRIFT_COLUMNS.items())
    con.execute("create schema if not exists ml")
    con.register("_drift", report)
    try:
        con.execute(f"create or replace table {DRIFT_TABLE} as select {select} from _drift")
    finally:
        con.unregister("_drift")


def _stored_drift(con, as_of, model_version: str) -> DriftResult | None:
    """The drift `score` wrote for this scores batch, if it is there."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'ml' and table_name = ?",
        [DRIFT_TABLE.split(".")[1]],
    ).fetchone()[0]
    if not exists:
        return None
    report = con.execute(
        f"select name, kind, psi, status from {DRIFT_TABLE} where as_of_date = ? and model_version = ? order by rank",
        [as_of, model_version],
    ).df()
    if report.empty:
        return None
    max_psi = float(report["psi"].max())
    return DriftResult(report, max_psi, bool((report["status"] != "alert").all()))


def drift_from_warehouse(con, models_dir: Path | str, bins: int = 10) -> DriftResult:
    """Drift of the latest `ml.churn_scores` batch and its features against the current model's reference.

    Reads what `score` stored in `ml.churn_score_drift` for that batch when the batch was
    scored by the current model; otherwise rebuilds the batch's features and measures it.
    """
    from ml.features import build_features  # local: keeps this module light for callers with data in hand
    from ml.registry import current_run_id

    batch = con.execute("select max(as_of_date), max(model_version) from ml.churn_scores").fetchone()
    as_of, model_version = batch
    if as_of is None:
        raise LookupError("ml.churn_scores is empty: score first")
    if bins == 10 and model_version is not None and model_version == current_run_id(models_dir):
        stored = _stored_drift(con, as_of, model_version)
        if stored is not None:
            return stored
    feats = build_features(con, as_of)
    scores = con.execute("select customer_id, churn_probability from ml.churn_scores").df()
    scores["customer_id"] = scores["customer_id"].astype(str)
    merged = feats.merge(scores, on="customer_id", how="inner")
    return drift_report(merged, merged["churn_probability"], models_dir, bins=bins)
