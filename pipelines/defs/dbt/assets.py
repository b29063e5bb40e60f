"""Every dbt model as a Dagster asset, dbt tests as asset checks, in the same lineage graph as ingestion.

- A dbt source table `raw.<table>` maps to the ingestion asset key `["raw", "<table>"]`, so
  the graph runs from landing files through staging to the marts without a gap.
- A model's key is `[<schema>, <model>]`, e.g. `["staging", "stg_shop__orders"]`,
  `["marts", "kpi_monthly"]`; its group is its layer (staging, intermediate, marts).
- dbt tests become asset checks (dagster-dbt's default). A test of severity `error` is a
  blocking check, and a failed `dbt build` fails the step, so the churn model and the exports
  downstream do not run on data that broke a test. `warn` tests report without blocking.
- The step runs in the `duckdb_writer` pool: one writer on the warehouse at a time.
- dbt runs in its own process group and dies with the process that runs the step, even on
  `kill -9` (`pipelines.runs.dbt_launcher`); SIGTERM/SIGINT of `retain` kill it too.
- Runs leave dbt's unit tests out: they check model logic on fixed rows, not the data, so
  they belong to CI (`make test` runs every one of them on every change), as dbt advises for
  production builds. Run config `unit_tests: true` runs them too.
- The daily job (`daily_job`: schedule and landing sensor) scopes the data tests of
  incremental models to the rows the run wrote (`macros/test_scope.sql`). Every other job,
  and a full refresh, tests every row.
"""


import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from packaging import version

from pipelines.core.spark import is_spark
from pipelines.dbt_server import SERVER_ENV
from pipelines.defs.dbt.project import (
    AFTER_SCORING_TAG,
    dbt_environment,
    dbt_executable,
    dbt_project,
    ensure_manifest,
    partial_parse_cache,
    relative_warehouse,
)
from pipelines.defs.resources import WarehouseResource
from pipelines.engines import copy_models_to_warehouse
from pipelines.progress import Countdown, say
from pipelines.runs import StopGuard, dbt_launcher

#: dbt layers, which are also the warehouse schemas and the Dagster group names.
LAYERS = ("staging", "intermediate", "marts")

#: Name of the op that runs `dbt build`.
DBT_OP_NAME = "retain_dbt_models"

#: dbt tag of the models that read what the outreach step writes (the lift of each play): they
#: run after the outreach lists (`pipelines/defs/lift/`), not in this step.
AFTER_OUTREACH_TAG = "after_outreach"

#: dbt tag of the models that read the churn scores (the action tiers, `AFTER_SCORING_TAG` from
#: project.py): they run after scoring and before the outreach lists, which read them
#: (`pipelines/defs/lift/`), not in this step.

#: Jobs whose dbt step tests only what the run can break (see `DbtBuildConfig.test_scope`).
RUN_SCOPED_TEST_JOBS = frozenset({"daily_job"})

#: Environment variable `macros/test_scope.sql` reads: `run` scopes the data tests of
#: incremental models to the rows this run wrote, `all` tests every row.
TEST_SCOPE_ENV = "RETAIN_DBT_TEST_SCOPE"


class RetainDbtTranslator(DagsterDbtTranslator):
    """Asset keys and groups for retain's dbt nodes (see the module docstring)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        """`raw/<table>` for sources (the ingestion assets), `<schema>/<model>` for models.

        The `exports` and `ml` sources' tables are `exports/<table>` and `ml/<table>`, written by
        the outreach lists and scoring steps.
        """
        if dbt_resource_props["resource_type"] == "source":
            source = dbt_resource_props.get("source_name")
            schema = source if source in ("exports", "ml") else "raw"
            return dg.AssetKey([schema, dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """The model's layer: the first folder under models/ (staging, intermediate, marts)."""
        if dbt_resource_props["resource_type"] == "source":
            return None
        fqn = dbt_resource_props.get("fqn", [])
        layer = fqn[1] if len(fqn) > 2 else dbt_resource_props["schema"]
        return layer if layer in LAYERS else dbt_resource_props["schema"]


translator = RetainDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


class RetainDbtCli(DbtCliResource):
    """dagster-dbt's `DbtCliResource` without two costs retain does not need, each paid per dbt step.

    - It runs `dbt --version` to learn dbt's version: a second dbt start-up, 1.5-1.8 s. retain's
      dbt is the one installed beside this interpreter (`dbt_executable`), so its version is
      dbt-core's package version.
    - It loads the dbt adapter in this process (about 0.6 s), which dagster-dbt only uses for
      `fetch_row_counts()` and `fetch_column_metadata()`; retain calls neither.

    Both are private hooks of dagster-dbt (0.29): if a later version renames them, these overrides
    are simply not called and the step works as before, only slower.
    """

    @property
    def _cli_version(self) -> version.Version:  # type: ignore[override]
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):  # noqa: ANN001, ANN202 - dagster-dbt's signature
        return None


#: dbt's parse cache in a step's target folder (dagster-dbt and dbt read it there).
PARTIAL_PARSE = "partial_parse.msgpack"

#: dbt target folders (compiled SQL, run results, dbt's own log) kept per data folder.
KEEP_DBT_TARGETS = 20


def dbt_target_path(step: str, run_id: str) -> Path:
    """A new `<data dir>/dbt-target/<step>-<run>-<n>` folder for one dbt invocation.

    Under the data folder, not the project's `target/`: a scheduled deployment runs dbt three
    times a day or more, and each folder holds about 8 MB (the manifest). The newest
    KEEP_DBT_TARGETS are kept, older ones deleted here.
    """
    from pipelines.core.config import settings

    root = settings().data_dir / "dbt-target"
    root.mkdir(parents=True, exist_ok=True)
    old = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(len(old) - KEEP_DBT_TARGETS + 1, 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    folder = root / f"{step}-{run_id[:8]}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    return folder


#: dbt's own log in the step's target folder: `info` (each node's start, end and result). At
#: dbt's default, `debug`, it also holds every SQL statement, and writing them took about 8% of
#: a step's CPU on a small shop. `DBT_LOG_LEVEL_FILE=debug` in the environment brings them back.
STEP_LOG_LEVEL_FILE = "info"


def step_log_level() -> dict[str, str]:
    """The level of dbt's file log for a step: DBT_LOG_LEVEL_FILE if set, else STEP_LOG_LEVEL_FILE."""
    return {"DBT_LOG_LEVEL_FILE": os.environ.get("DBT_LOG_LEVEL_FILE") or STEP_LOG_LEVEL_FILE}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the `with` block only (dagster-dbt passes os.environ to dbt)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class DbtBuildConfig(dg.Config):
    """Run configuration of the dbt step."""

    full_refresh: bool = False  # rebuild incremental models (orders, messages) from scratch
    # A backfill: rebuild the incremental models' rows dated in this range (YYYY-MM-DD, both
    # ends included), leave other periods alone (dbt vars, see macros/backfill.sql).
    backfill_start: str | None = None
    backfill_end: str | None = None
    # What the data tests read. `all`: every row. `run`: on incremental models only the rows
    # this run wrote (a full refresh writes them all). `auto`: `run` in the daily job
    # (RUN_SCOPED_TEST_JOBS) unless it is a full refresh or a backfill, else `all`.
    test_scope: Literal["auto", "run", "all"] = "auto"
    # Run dbt's unit tests too (model logic on fixed rows; CI runs them on every change). Never
    # in a backfill: its vars would apply to the unit tests' rows.
    unit_tests: bool = False

    def resolved_test_scope(self, job_name: str | None) -> str:
        """`run` or `all` for a run of `job_name` (see `test_scope`)."""
        if self.test_scope != "auto":
            return self.test_scope
        special = self.full_refresh or self.backfill_start or self.backfill_end
        return "run" if job_name in RUN_SCOPED_TEST_JOBS and not special else "all"

    def dbt_vars(self) -> dict[str, str]:
        """The dbt vars this configuration sets (empty when it sets none)."""
        backfill = {"backfill_start": self.backfill_start, "backfill_end": self.backfill_end}
        return {name: value for name, value in backfill.items() if value}


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    dagster_dbt_translator=translator,
    name=DBT_OP_NAME,
    pool="duckdb_writer",
    exclude=f"tag:{AFTER_OUTREACH_TAG} tag:{AFTER_SCORING_TAG}",
)
def retain_dbt_models(
    context: dg.AssetExecutionContext, config: DbtBuildConfig, warehouse: WarehouseResource
) -> Iterator[Any]:
    """`dbt build` (models and data tests) of the selected models on the warehouse."""
    yield from dbt_build(context, config, warehouse)


def dbt_build(context: dg.AssetExecutionContext, config: DbtBuildConfig, warehouse: WarehouseResource) -> Iterator[Any]:
    """Run `dbt build` of the step's selected models on the warehouse, streaming Dagster events."""
    dbt_environment()  # RETAIN_WAREHOUSE must be absolute before dbt reads profiles.yml
    # profiles.yml reads the file and the memory cap from the environment: the resource's own
    os.environ["RETAIN_WAREHOUSE"] = str(warehouse.location)
    if warehouse.memory_limit:
        os.environ["RETAIN_DUCKDB_MEMORY_LIMIT"] = warehouse.memory_limit
    # dbt must never outlive this process: it runs through a launcher that gives it its own
    # process group and kills it when its parent dies (pipelines/runs.py)
    os.environ["RETAIN_DBT_PARENT_PID"] = str(os.getpid())
    dbt = RetainDbtCli(
        project_dir=dbt_project,
        profiles_dir=str(dbt_project.profiles_dir),
        dbt_executable=dbt_launcher(dbt_executable()),
    )
    full_refresh = config.full_refresh
    if not full_refresh and not (config.backfill_start or config.backfill_end):
        rekeyed = _rekeyed_models(warehouse)
        if rekeyed:
            # a later file linked customer keys these incremental models hold under the old id
            context.log.info(f"customer keys re-linked in {', '.join(rekeyed)}: full refresh")
            full_refresh = True
    # --no-write-json: retain reads dbt's results from its event stream, not from run_results.json
    # and manifest.json, which dbt would otherwise write twice per step (about 0.7 s a step)
    args = ["build", *(["--full-refresh"] if full_refresh else []), "--no-write-json"]
    if dbt_vars := config.dbt_vars():
        args = _with_vars(args, dbt_vars)
    scope = config.resolved_test_scope(context.job_name)
    # read by macros/test_scope.sql when dbt executes (set every time: the process may run other jobs)
    os.environ[TEST_SCOPE_ENV] = scope
    if not config.unit_tests or config.backfill_start or config.backfill_end:
        args += ["--exclude-resource-type", "unit_test"]
    if is_spark():
        # the models reading what scoring and outreach wrote in the warehouse find it in the lake
        os.environ[SPARK_SOURCES_ENV] = ",".join(_sync_warehouse_sources(warehouse))
    rows = "rows written by this run" if scope == "run" else "all rows"
    # the launcher writes to dbt's output when the warm dbt does not answer and it starts dbt itself
    warm = "a fork of the job's warm dbt" if os.environ.get(SERVER_ENV) else "dbt started from scratch"
    context.log.info(f"dbt {' '.join(args)} (data tests of incremental models read {rows}; {warm})")
    target = dbt_target_path(context.op.name, context.run_id)
    cache = partial_parse_cache()
    if cache.exists():  # dbt then parses only what changed since (about 1 s instead of 4-5)
        shutil.copyfile(cache, target / PARTIAL_PARSE)
    # profiles.yml names the warehouse by its file name; the launcher starts dbt in its folder
    with _environment({**relative_warehouse(warehouse.location), **step_log_level()}):
        invocation = dbt.cli(args, context=context, target_path=target)
    guard = StopGuard.current()
    if guard is not None:  # SIGTERM / SIGINT of retain kill dbt's process group
        guard.child_groups.add(invocation.process.pid)
    log_path = dbt_log_path(context.run_id)
    say(f"  dbt's output: {log_path}")
    countdown = Countdown("dbt", len(context.selected_asset_keys) + len(context.selected_asset_check_keys))
    try:
        # dagster-dbt echoes every dbt line to stdout: to the log file, not the console
        with log_path.open("a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            for event in invocation.stream():
                countdown.tick()
                yield event
    finally:
        countdown.close()
        if guard is not None:
            guard.child_groups.discard(invocation.process.pid)
        if invocation.process.poll() is None:  # the step failed or was interrupted mid-stream
            with contextlib.suppress(ProcessLookupError):
                os.killpg(invocation.process.pid, signal.SIGKILL)
            invocation.process.wait()
    _keep_partial_parse(invocation.target_path)
    if is_spark():
        # training, outreach and publishing read the warehouse file: give them Spark's tables
        with warehouse.connect() as con:
            copied = copy_models_to_warehouse(con)
        context.log.info(f"copied {len(copied)} Spark tables ({sum(copied.values()):,} rows) into {warehouse.location}")


#: Environment variable listing the sources outside `raw` that the lake holds (macros/spark_sources.sql).
SPARK_SOURCES_ENV = "RETAIN_SPARK_SOURCES"


def _sync_warehouse_sources(warehouse: WarehouseResource) -> list[str]:
    """Write the warehouse's tables that dbt reads as sources outside `raw` to the lake (Spark engine)."""
    if not warehouse.location.exists():
        return []
    with warehouse.connect(read_only=True) as con:
        return sync_warehouse_sources(con)


def sync_warehouse_sources(con) -> list[str]:
    """`_sync_warehouse_sources` on an open warehouse connection (also `retain score`); returns what the lake holds."""
    from pipelines.ingest import lake

    nodes = json.loads(ensure_manifest().read_text())["sources"].values()
    wanted = sorted({(n["schema"], n["identifier"]) for n in nodes if n["schema"] != "raw"})
    return lake.sync_sources(con, wanted) if wanted else []


#: dbt output files kept per data folder (the newest; older ones are deleted at the next run).
KEEP_DBT_LOGS = 20


def dbt_log_path(run_id: str) -> Path:
    """`<data dir>/logs/dbt-<run>.log` for this run's dbt output; keeps the newest KEEP_DBT_LOGS."""
    from pipelines.core.config import settings

    folder = settings().data_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    old = sorted(folder.glob("dbt-*.log"), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(len(old) - KEEP_DBT_LOGS + 1, 0)]:
        stale.unlink(missing_ok=True)
    return folder / f"dbt-{run_id[:8]}.log"


def _rekeyed_models(warehouse: WarehouseResource) -> list[str]:
    """Incremental models holding a customer id the identity table now resolves to another id."""
    from pipelines.importers.identity import rekeyed_tables

    nodes = json.loads(ensure_manifest().read_text())["nodes"].values()
    incremental = [(n["schema"], n["name"]) for n in nodes
                   if n["resource_type"] == "model" and n["config"].get("materialized") == "incremental"]
    if not warehouse.location.exists():
        return []
    with warehouse.connect(read_only=True) as con:
        return rekeyed_tables(con, incremental)


def _keep_partial_parse(run_target: Path) -> None:
    """Make this step's parse cache the one the next dbt step of this engine starts from.

    The profile names the warehouse by its file name only (`relative_warehouse`), so the cache
    holds across data folders: after a change to the dbt project only the first step re-parses.
    """
    fresh = run_target / PARTIAL_PARSE
    if not fresh.exists():
        return
    kept = partial_parse_cache()
    tmp = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fresh, tmp)
        os.replace(tmp, kept)
    except OSError:
        tmp.unlink(missing_ok=True)  # only a cache: the next run parses a little longer


def _with_vars(args: list[str], dbt_vars: dict[str, str]) -> list[str]:
    """`args` with `--vars` holding `dbt_vars`, merged into a `--vars` already in `args`."""
    if "--vars" not in args:
        return [*args, "--vars", json.dumps(dbt_vars)]
    at = args.index("--vars") + 1
    merged = {**(yaml.safe_load(args[at]) or {}), **dbt_vars}
    return [*args[:at], json.dumps(merged), *args[at + 1 :]]
