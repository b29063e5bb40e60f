"""Where retain keeps things, from `RETAIN_*` environment variables with defaults under `data/`.

Every path is resolved when `settings()` is called, so tests can point a whole run at a
temporary folder by setting `RETAIN_DATA_DIR` (and nothing else).

| variable | default | meaning |
| --- | --- | --- |
| RETAIN_DATA_DIR | <repo>/data | root of all storage |
| RETAIN_LANDING | $RETAIN_DATA_DIR/landing | landing files, one folder per source |
| RETAIN_WAREHOUSE | $RETAIN_DATA_DIR/warehouse.duckdb | the DuckDB warehouse |
| RETAIN_PUBLISHED | $RETAIN_DATA_DIR/published | dashboard snapshots |
| RETAIN_MODELS | $RETAIN_DATA_DIR/models | churn model artifacts |
| RETAIN_EXPORTS | $RETAIN_DATA_DIR/exports | CRM export folders |
| RETAIN_DAGSTER_STORAGE | $RETAIN_DATA_DIR/dagster | Dagster run storage |
| RETAIN_AS_OF | (latest order date in the data) | the date scores and "days since" are computed for |
| RETAIN_DUCKDB_MEMORY_LIMIT | 4GB | DuckDB memory cap for dbt and publishing (beyond it DuckDB spills to disk) |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pipelines.core.privacy import restrict_new_files, secure_storage

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    """Resolved storage locations for one process."""

    data_dir: Path
    landing: Path
    warehouse: Path
    published: Path
    models: Path
    exports: Path
    dagster_storage: Path
    as_of: date | None

    @property
    def project_root(self) -> Path:
        """The repository root: dbt_project.yml, profiles.yml and dagster.yaml live here."""
        return PROJECT_ROOT


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def settings() -> Settings:
    """Read the `RETAIN_*` variables now and resolve every path."""
    data_dir = _path("RETAIN_DATA_DIR", PROJECT_ROOT / "data")
    as_of = os.environ.get("RETAIN_AS_OF")
    return Settings(
        data_dir=data_dir,
        landing=_path("RETAIN_LANDING", data_dir / "landing"),
        warehouse=_path("RETAIN_WAREHOUSE", data_dir / "warehouse.duckdb"),
        published=_path("RETAIN_PUBLISHED", data_dir / "published"),
        models=_path("RETAIN_MODELS", data_dir / "models"),
        exports=_path("RETAIN_EXPORTS", data_dir / "exports"),
        dagster_storage=_path("RETAIN_DAGSTER_STORAGE", data_dir / "dagster"),
        as_of=date.fromisoformat(as_of) if as_of else None,
    )


def export_environment(s: Settings | None = None) -> Settings:
    """Write the resolved paths back to the environment for dbt, Dagster and subprocesses.

    dbt's profiles.yml reads RETAIN_WAREHOUSE; dagster.yaml reads RETAIN_DAGSTER_STORAGE and
    DAGSTER_HOME must be the folder holding dagster.yaml (the repository root).

    Every entry point (each `retain` command, the Dagster definitions, `run_job`) calls it
    first, so it also makes storage owner-only (`pipelines.core.privacy.secure_storage`): the
    process umask becomes 077 and files an older version left readable are tightened.
    """
    s = s or settings()
    os.environ["RETAIN_DATA_DIR"] = str(s.data_dir)
    os.environ["RETAIN_LANDING"] = str(s.landing)
    os.environ["RETAIN_WAREHOUSE"] = str(s.warehouse)
    os.environ["RETAIN_PUBLISHED"] = str(s.published)
    os.environ["RETAIN_MODELS"] = str(s.models)
    os.environ["RETAIN_EXPORTS"] = str(s.exports)
    os.environ["RETAIN_DAGSTER_STORAGE"] = str(s.dagster_storage)
    os.environ["RETAIN_DAGSTER_COMPUTE_LOGS"] = str(s.dagster_storage / "compute_logs")
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    restrict_new_files()  # owner-only from here on: the data folder holds personal data
    s.data_dir.mkdir(parents=True, exist_ok=True)
    s.dagster_storage.mkdir(parents=True, exist_ok=True)
    secure_storage(s)
    return s


DEFAULT_DUCKDB_MEMORY_LIMIT = "4GB"
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


#: Customers `ml.score` scores and `ml.train` evaluates at a time (`RETAIN_ML_BATCH_ROWS`).
DEFAULT_ML_BATCH_ROWS = 250_000
MIN_ML_BATCH_ROWS = 1_000


def ml_batch_rows() -> int:
    """RETAIN_ML_BATCH_ROWS (default 250,000), checked: the customers scoring and the training's
    evaluation hold at a time. Scores and metrics do not depend on it; memory does (about 3 KB
    per customer of a batch in scoring)."""
    text = os.environ.get("RETAIN_ML_BATCH_ROWS", "").strip()
    if not text:
        return DEFAULT_ML_BATCH_ROWS
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0
    if value < MIN_ML_BATCH_ROWS:
        raise ValueError(
            f"RETAIN_ML_BATCH_ROWS={text!r}: use a whole number of customers, at least {MIN_ML_BATCH_ROWS:,} "
            f"(default {DEFAULT_ML_BATCH_ROWS:,})"
        )
    return value


def duckdb_memory_limit() -> str:
    """RETAIN_DUCKDB_MEMORY_LIMIT (default 4GB), checked: a number and a unit such as 512MB or 4GB."""
    value = os.environ.get("RETAIN_DUCKDB_MEMORY_LIMIT", "").strip() or DEFAULT_DUCKDB_MEMORY_LIMIT
    if not _MEMORY.fullmatch(value):
        raise ValueError(
            f"RETAIN_DUCKDB_MEMORY_LIMIT={value!r} is not a memory size: use a number and a unit, e.g. 4GB or 512MB"
        )
    return value
