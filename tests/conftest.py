"""Shared fixtures.

`pipeline` builds one real warehouse per test session: generated data → `retain run`'s
full Dagster job (ingest, dbt build, train, score, outreach, exports, publish) in a temporary
data folder. Every end-to-end test reads it instead of running its own pipeline, because
Dagster and dbt start-up alone costs tens of seconds.

`make test` runs the tests in two processes (pytest-xdist, `--dist loadfile`): a test file
always runs whole in one process, so its module fixtures are built once. The shared run is
built once for both processes (the first to need it builds it under a file lock) and each
process then works on its own copy of the data folder. The heaviest files are handed out first
(`HEAVY_FIRST`), so both processes finish at about the same time.
"""

from __future__ import annotations

import functools
import os
import pickle
import shutil
import subprocess
import sys
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


def _build_pipeline(data_dir: Path) -> tuple[object, dict[str, int]]:
    """The shared run: a generated shop through `full_job`; its run summary and generated rows."""
    from pipelines.core.config import export_environment, settings
    from pipelines.generate import generate
    from pipelines.runner import run_job

    with pytest.MonkeyPatch.context() as mp:
        _isolate_environment(mp, data_dir)
        export_environment()
        generated = generate(settings().landing, customers=PIPELINE_CUSTOMERS, seed=PIPELINE_SEED)
        summary = run_job("full_job")
    if not summary.success:
        pytest.fail(f"the shared pipeline run failed: {summary.error}\n{summary.as_status()}")
    return summary, generated


def shared_build(tmp_path_factory, name: str, build) -> tuple[Path, object]:
    """A data folder built once per test session by `build(data_dir)`; this process's own copy.

    With one test process it is built in place. With several (pytest-xdist), the first process
    that asks builds it under a file lock and the others wait; every process then gets its own
    copy of the folder (file modes kept), so tests that write to it never meet. Returns the
    folder and what `build` returned (picklable).
    """
    from filelock import FileLock

    data_dir = tmp_path_factory.mktemp(name) / "data"
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return data_dir, build(data_dir)
    shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    shared.mkdir(exist_ok=True)
    done = shared / "built.pickle"
    with FileLock(str(shared / ".lock")):
        if not done.exists():
            done.write_bytes(pickle.dumps(build(shared / "data")))
    shutil.copytree(shared / "data", data_dir)
    return data_dir, pickle.loads(done.read_bytes())


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> PipelineRun:
    """Generate a small shop and run the full pipeline once for the whole session."""
    from pipelines.core.config import export_environment

    data_dir, (summary, generated) = shared_build(tmp_path_factory, "retain-data", _build_pipeline)
    with pytest.MonkeyPatch.context() as mp:
        _isolate_environment(mp, data_dir)
        export_environment()
        yield PipelineRun(data_dir=data_dir, summary=summary, generated=generated)


#: The shop `retain` builds from the command line (`cli_shop`): small, since its tests look at
#: what a run leaves behind (file modes, masking, row counts), not at the numbers.
CLI_SHOP_CUSTOMERS = 300
CLI_SHOP_SEED = 11


def retain_cli(data_dir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`retain <args> --data-dir <data_dir>` in a subprocess with no RETAIN_ setting inherited and
    the umask a shell usually has (022: files 0644, folders 0755), so a test sees what the CLI
    itself makes of file modes."""
    from pipelines.core.config import PROJECT_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_") and k != "DAGSTER_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args, "--data-dir", str(data_dir)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        preexec_fn=lambda: os.umask(0o022),
    )


def _build_cli_shop(data_dir: Path) -> dict:
    generated = retain_cli(data_dir, "generate", "--customers", str(CLI_SHOP_CUSTOMERS), "--seed", str(CLI_SHOP_SEED))
    assert generated.returncode == 0, generated.stderr
    ran = retain_cli(data_dir, "run")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    return {"run_output": ran.stdout}


@pytest.fixture(scope="session")
def cli_shop(tmp_path_factory) -> Path:
    """A small shop generated and run with `retain generate` and `retain run` in subprocesses
    (the privacy and crash-safety tests read it); this test process's own copy."""
    data_dir, _ = shared_build(tmp_path_factory, "cli-shop", _build_cli_shop)
    return data_dir


def daily_job():
    """The daily job, for `dagster.reconstructable` (a run started as the Dagster daemon starts it)."""
    from pipelines.definitions import defs

    return defs.resolve_job_def("daily_job")


def _build_cli_shop_daily(data_dir: Path, shop: Path) -> dict:
    """`shop` (the CLI-built shop) with one more day of landing files, through the daily job run as
    the Dagster daemon runs a scheduled or sensor run: `dagster.execute_job` with the job's own
    executor (`pipelines.executor.retain_executor`), not `retain run`'s `execute_in_process`."""
    from datetime import UTC, datetime

    import dagster as dg

    from pipelines.core.config import export_environment
    from pipelines.generate.next_day import append_next_day
    from pipelines.runner import summarise

    shutil.copytree(shop, data_dir)
    with pytest.MonkeyPatch.context() as mp:
        _isolate_environment(mp, data_dir)
        s = export_environment()
        increment = append_next_day(s.landing)
        from pipelines.definitions import defs

        started = datetime.now(UTC)
        with dg.DagsterInstance.get() as instance:
            result = dg.execute_job(dg.reconstructable(daily_job), instance=instance)
            records = instance.all_logs(result.run_id)
        summary = summarise(records, result.success, result.run_id, defs.resolve_asset_graph(), "daily_job", started)
    assert summary.success, f"the daily job failed: {summary.error}"
    engine = [r.user_message for r in records if r.dagster_event and r.dagster_event.event_type_value == "ENGINE_EVENT"]
    dbt = [r.user_message for r in records if r.step_key and r.step_key.startswith("retain_dbt")
           and r.user_message.startswith("dbt build")]
    return {"summary": summary, "increment": increment, "engine_events": engine, "dbt_messages": dbt}


@pytest.fixture(scope="session")
def cli_shop_daily(tmp_path_factory, cli_shop) -> tuple[Path, dict]:
    """`cli_shop` after `retain generate --next-day`'s function and the daily job as the Dagster
    daemon runs it (the DuckDB side of the Spark test's daily comparison, and the daily run's own
    tests); this process's copy, with the run's summary, engine events and what the day added."""
    return shared_build(tmp_path_factory, "cli-shop-daily", functools.partial(_build_cli_shop_daily, shop=cli_shop))


#: Test files whose fixtures run whole pipelines, slowest first: handed out first, so the two
#: test processes finish together. Every other file follows in collection order.
HEAVY_FIRST = (
    "test_spark.py", "test_crash_safety.py", "test_dashboard_signin.py", "test_privacy.py",
    "test_first_import.py", "test_products.py", "test_daily_run.py", "test_dashboard_browser.py",
    "test_dbt_project.py", "test_platform_parity.py", "test_backfill.py", "test_lift.py",
    "test_identity_rekey.py",
)


def pytest_collection_modifyitems(config, items):
    """Heaviest test files first (their order inside a file is kept)."""
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
