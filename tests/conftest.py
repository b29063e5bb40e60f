"""Shared fixtures.

`pipeline` builds one real warehouse per test session: generated data → `retain run`'s
full Dagster job (ingest, dbt build, train, score, outreach, exports, publish) in a temporary
data folder. Every end-to-end test reads it instead of running its own pipeline, because
Dagster and dbt start-up alone costs tens of seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Size of the shared generated dataset: big enough for stable KPIs and a trainable model.
PIPELINE_CUSTOMERS = int(os.environ.get("RETAIN_TEST_CUSTOMERS", "4000"))
PIPELINE_SEED = 11


@dataclass
class PipelineRun:
    """The shared warehouse built once per session."""

    data_dir: Path
    summary: object  # pipelines.runner.RunSummary
    generated: dict[str, int]

    @property
    def settings(self):
        from pipelines.core.config import settings

        return settings()

    def connect(self, read_only: bool = True):
        """A connection to the warehouse (read-only by default)."""
        import duckdb

        return duckdb.connect(str(self.settings.warehouse), read_only=read_only)


def _isolate_environment(mp: pytest.MonkeyPatch, data_dir: Path) -> None:
    for var in list(os.environ):
        if var.startswith("RETAIN_") and var != "RETAIN_TEST_CUSTOMERS":
            mp.delenv(var, raising=False)
    mp.setenv("RETAIN_DATA_DIR", str(data_dir))


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> PipelineRun:
    """Generate a small shop and run the full pipeline once for the whole session."""
    from pipelines.core.config import export_environment, settings
    from pipelines.generate import generate
    from pipelines.runner import run_job

    data_dir = tmp_path_factory.mktemp("retain-data")
    with pytest.MonkeyPatch.context() as mp:
        _isolate_environment(mp, data_dir)
        export_environment()
        generated = generate(settings().landing, customers=PIPELINE_CUSTOMERS, seed=PIPELINE_SEED)
        summary = run_job("full_job")
        if not summary.success:
            pytest.fail(f"the shared pipeline run failed: {summary.error}\n{summary.as_status()}")
        yield PipelineRun(data_dir=data_dir, summary=summary, generated=generated)
