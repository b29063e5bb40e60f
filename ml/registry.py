"""Where churn models live: artifacts on disk, the run log in `ml.model_runs`, the current model.

Layout under the models directory:

    <models_dir>/<run_id>/model.joblib        the fitted, calibrated pipeline and what it needs
    <models_dir>/<run_id>/metadata.json       features, cut-offs, metrics, versions, fingerprint
    <models_dir>/<run_id>/reference.parquet   a sample of evaluation rows (features + risk) for drift
    <models_dir>/current.json                 {"run_id": ...} of the promoted model scoring uses

Every training run is logged in `ml.model_runs`, promoted or not, so a model that was
held back is still on record with its reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MODEL_RUNS_COLUMNS = {
    "run_id": "VARCHAR",
    "trained_at": "TIMESTAMP",
    "as_of_date": "DATE",
    "horizon_days": "INTEGER",
    "train_cutoffs": "VARCHAR",
    "calibration_cutoff": "DATE",
    "eval_cutoff": "DATE",
    "n_train_rows": "BIGINT",
    "n_eval_rows": "BIGINT",
    "metrics": "VARCHAR",
    "features": "VARCHAR",
    "library_versions": "VARCHAR",
    "data_fingerprint": "VARCHAR",
    "promoted": "BOOLEAN",
    "reason": "VARCHAR",
    "model_path": "VARCHAR",
}

MISSING_CATEGORY = "(none)"


@dataclass
class ModelArtifact:
    """A trained churn model with everything needed to score and explain it."""

    run_id: str
    model: object  # fitted sklearn estimator with predict_proba
    numeric: list[str]
    categorical: list[str]
    reference: dict  # feature -> reference value used to explain risk (training median / mode)
    groups: dict[str, list[str]]  # driver group -> its features
    metadata: dict = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Model input columns in order."""
        return [*self.numeric, *self.categorical]

    def model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of `frame` in the model's order and dtypes."""
        return model_input(frame, self.numeric, self.categorical)

    def predict_risk(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability per row of a `build_features` frame."""
        return self.model.predict_proba(self.model_input(frame))[:, 1]

    def _parts(self):
        """(preprocessing, booster, calibrator) of a calibrated pipeline, or None for other models."""
        try:
            calibrated = self.model.calibrated_classifiers_[0]
            pipe = getattr(calibrated.estimator, "estimator", calibrated.estimator)
            return pipe.named_steps["prep"], pipe.named_steps["model"], calibrated.calibrators[0]
        except (AttributeError, KeyError, IndexError):
            return None

    def transform(self, frame: pd.DataFrame, prepared: bool = False) -> pd.DataFrame:
        """Model inputs after preprocessing (categories encoded): what `risk_from_transformed` takes.

        `prepared=True` says `frame` already is `model_input`'s output (skips redoing it).
        """
        X = frame if prepared else self.model_input(frame)
        parts = self._parts()
        return parts[0].transform(X) if parts else X

    def risk_from_transformed(self, Z: pd.DataFrame) -> np.ndarray:
        """Calibrated risk from preprocessed inputs: skips re-encoding for repeated what-if predictions."""
        parts = self._parts()
        if parts is None:
            return self.model.predict_proba(Z)[:, 1]
        _, booster, calibrator = parts
        return np.clip(calibrator.predict(booster.decision_function(Z)), 0.0, 1.0)


def model_input(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Numeric columns as float, categoricals as strings with an explicit missing category."""
    out = pd.DataFrame(index=frame.index)
    for name in numeric:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in categorical:
        out[name] = _category_values(frame[name])
    return out


def _category_values(column: pd.Series) -> np.ndarray:
    """A categorical column as Python strings, missing values as `MISSING_CATEGORY`.

    Text columns (Arrow strings, as `build_features` makes them, or Python strings) go
    through Arrow: 0.3 s instead of 1.4 s for three columns of a million rows. Anything else
    takes the general way, `str()` of each value.
    """
    try:
        values = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        values = None
    if values is not None and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return pc.fill_null(values, MISSING_CATEGORY).to_numpy(zero_copy_only=False)
    general = column.astype(object)
    return general.where(general.notna(), MISSING_CATEGORY).astype(str).to_numpy(dtype=object)


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def save_artifact(models_dir: Path | str, artifact: ModelArtifact, reference_sample: pd.DataFrame | None) -> Path:
    """Write model.joblib, metadata.json and reference.parquet under `<models_dir>/<run_id>/`."""
    run_dir = Path(models_dir) / artifact.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(artifact, run_dir / "model.joblib", compress=3)
    _write_json(run_dir / "metadata.json", artifact.metadata)
    if reference_sample is not None:
        reference_sample.to_parquet(run_dir / "reference.parquet", index=False)
    return run_dir


def current_run_id(models_dir: Path | str) -> str | None:
    """The promoted model's run id, or None before the first promotion."""
    pointer = Path(models_dir) / "current.json"
    if not pointer.exists():
        return None
    run_id = json.loads(pointer.read_text()).get("run_id")
    return run_id if run_id and (Path(models_dir) / run_id / "model.joblib").exists() else None


def set_current(models_dir: Path | str, run_id: str) -> None:
    """Point scoring at `run_id`."""
    _write_json(Path(models_dir) / "current.json", {"run_id": run_id})


def load_artifact(models_dir: Path | str, run_id: str | None = None) -> ModelArtifact:
    """Load a run's artifact (default: the current promoted one)."""
    run_id = run_id or current_run_id(models_dir)
    if run_id is None:
        raise FileNotFoundError(f"no promoted churn model under {models_dir}: train one first (ml.train.train)")
    return joblib.load(Path(models_dir) / run_id / "model.joblib")


def load_reference(models_dir: Path | str, run_id: str | None = None) -> pd.DataFrame:
    """The reference sample (evaluation rows with their predicted risk) stored with a run."""
    run_id = run_id or current_run_id(models_dir)
    if run_id is None:
        raise FileNotFoundError(f"no promoted churn model under {models_dir}")
    return pd.read_parquet(Path(models_dir) / run_id / "reference.parquet")


def ensure_model_runs(con) -> None:
    """Create `ml.model_runs` if it does not exist."""
    con.execute("create schema if not exists ml")
    cols = ", ".join(f"{name} {typ}" for name, typ in MODEL_RUNS_COLUMNS.items())
    con.execute(f"create table if not exists ml.model_runs ({cols})")


def record_run(con, row: dict) -> None:
    """Append one training run to `ml.model_runs` (dict/list values stored as JSON text)."""
    ensure_model_runs(con)
    values = [
        json.dumps(row[c], default=str) if isinstance(row.get(c), dict | list) else row.get(c)
        for c in MODEL_RUNS_COLUMNS
    ]
    placeholders = ", ".join("?" for _ in MODEL_RUNS_COLUMNS)
    con.execute(f"insert into ml.model_runs ({', '.join(MODEL_RUNS_COLUMNS)}) values ({placeholders})", values)


def model_runs(con) -> pd.DataFrame:
    """All logged runs, newest first (empty frame if none)."""
    ensure_model_runs(con)
    return con.execute("select * from ml.model_runs order by trained_at desc").df()
