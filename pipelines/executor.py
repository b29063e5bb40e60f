"""How retain's jobs run their steps, whoever starts the run: in one process, with the job's engine servers.

`retain run` executes a job in its own process (`pipelines.runner.run_job`). A run the Dagster
daemon starts (the daily schedule, the landing sensor, a launch from the UI) runs in a process
of its own too, but with the job's executor, which was Dagster's default: the multiprocess
executor, one new Python process per step. Each step then paid Python's start and the import of
Dagster, dbt and retain again (about 5 s; a 300-customer daily run has some 30 steps, and had
ingested 8 tables in 140 s when it was stopped), and the job's dbt steps started dbt from
scratch, on Spark each with a JVM of its own.

`retain_executor` is Dagster's in-process executor (same configuration) with what `run_job`
puts around a job (`engine_servers`): the warm dbt (`pipelines.dbt_server`) and, on a local
Spark master, one Spark Connect server for the run. The writer pool still serialises writing
steps across runs (`dagster.yaml`); within a run the steps ran one at a time anyway on two
cores. `execute_in_process` (what `run_job` calls) always runs in process and does not use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import dagster as dg
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan

#: Step keys of dbt's steps start with this (`retain_dbt_models`, `retain_dbt_after_scoring`, ...).
DBT_STEP_PREFIX = "retain_dbt"


@contextlib.contextmanager
def engine_servers(has_dbt_steps: bool) -> Iterator[None]:
    """What a job's dbt steps share: a warm dbt, and on a local Spark master one Spark Connect server.

    A job with dbt steps runs each `dbt` command as a fork of one process that imported dbt
    (and on Spark dbt-spark and pyspark's Connect client) at the job's start
    (`pipelines.dbt_server`), instead of importing it again for every step (about 2.5 s each on
    DuckDB, 2.8 s more on Spark). `RETAIN_WARM_DBT=0` turns it off.

    Spark on a local master: every dbt step of a job is a process of its own; without a
    server each would start and warm up a JVM of its own (10-40 s each). A server already
    named by RETAIN_SPARK_REMOTE (a cluster's, or a test's) is used as it is.
    """
    from pipelines.core import spark as sp
    from pipelines.dbt_server import SERVER_ENV, WARM_ENV, warm_dbt

    wanted = os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    with contextlib.ExitStack() as stack:
        if wanted and has_dbt_steps and not os.environ.get(SERVER_ENV):  # none started around this one
            stack.enter_context(warm_dbt())
        if sp.is_spark():
            s = sp.spark_settings()
            if not s.remote and s.master.startswith("local"):
                stack.enter_context(sp.local_connect_server(s))
        yield


class _WithEngineServers(dg.Executor):
    """An executor that runs `inner`'s execution inside `engine_servers`."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self):  # noqa: ANN201 - Dagster's RetryMode
        return self._inner.retries

    @property
    def step_dependency_config(self):  # noqa: ANN201 - Dagster's StepDependencyConfig
        return self._inner.step_dependency_config

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator:
        has_dbt = any(key.startswith(DBT_STEP_PREFIX) for key in execution_plan.step_keys_to_execute)
        with engine_servers(has_dbt):
            yield from self._inner.execute(plan_context, execution_plan)


@dg.executor(name="retain_in_process", config_schema=dg.in_process_executor.config_schema)
def retain_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's in-process executor around the job's engine servers (module docstring)."""
    return _WithEngineServers(dg.in_process_executor.executor_creation_fn(init_context))
