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
import json
import os
import shutil
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pipelines.core.spark import is_spark
from pipelines.defs.dbt.project import (
    AFTER_SCORING_TAG,
    dbt_environment,
    dbt_executable,
    dbt_project,
    ensure_manifest,
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
    dbt = DbtCliResource(
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
    args = ["build", *(["--full-refresh"] if full_refresh else [])]
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
    context.log.info(f"dbt {' '.join(args)} (data tests of incremental models read {rows})")
    invocation = dbt.cli(args, context=context)
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
    """Make this run's parse cache the one the next run starts from.

    dagster-dbt copies `target/partial_parse.msgpack` into each run's target folder. dbt
    re-parses everything when the profile changed since that file was written (the warehouse
    path is part of the profile), which cost 4-5 s at every run in another data folder than
    the last `dbt parse`; after this, only the first run in a folder pays it.
    """
    fresh = run_target / "partial_parse.msgpack"
    if not fresh.exists():
        return
    kept = dbt_project.project_dir / "target" / fresh.name
    tmp = kept.with_name(f".{fresh.name}.{os.getpid()}.tmp")
    try:
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
