"""Run a retain job in-process through Dagster and summarise it per stage.

`retain run` and `retain backfill` call `run_job`; the run goes to the project's Dagster
instance (DAGSTER_HOME = the repository root, storage under data/dagster), so it shows in
`retain ui` like a scheduled run. The per-stage summary (rows in, rows out, seconds, checks
passed and failed) comes from the run's own event log, and the outcome is recorded in
`published/status.json` for `retain status` and the dashboard banner.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from pipelines.core.config import export_environment
from pipelines.executor import DBT_STEP_PREFIX, engine_servers
from pipelines.progress import PeakMemory, progress_logger, set_stream, stream
from pipelines.publish import record_run_status
from pipelines.runs import SlotWatcher, StopGuard, process_tags, recover_dead_runs


@dataclass
class StageSummary:
    """What one stage (an asset group) did in a run."""

    stage: str
    assets: int = 0
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    checks_passed: int = 0
    checks_failed: int = 0
    checks_warned: int = 0
    peak_rss_mb: float = 0.0
    failed_checks: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    #: Why an asset of the stage did nothing on purpose (metadata `skipped_reason`: short history, ...).
    skipped: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    """The outcome of one run."""

    run_id: str
    job: str
    success: bool
    started_at: str
    finished_at: str
    stages: list[StageSummary]
    error: str | None = None

    def as_status(self) -> dict:
        """The record kept in published/status.json."""
        return {
            "run_id": self.run_id,
            "job": self.job,
            "success": self.success,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "failed_checks": [c for s in self.stages for c in s.failed_checks],
            "failed_steps": [c for s in self.stages for c in s.failed_steps],
            "stages": [s.__dict__ for s in self.stages],
        }


#: The dbt build materialises all three layers in one step: one stage, "dbt".
DBT_LAYERS = {"staging", "intermediate", "marts"}
DBT_STAGE = "dbt"
STAGE_ORDER = ["ingest", "dbt", "train", "score", "outreach", "exports", "uplift", "publish"]


def _int(value) -> int:
    raw = getattr(value, "value", value)
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def _root_message(error) -> str:
    """The message of the innermost cause of a Dagster error (the user's exception)."""
    if error is None:
        return ""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(error.message).strip()


def _group_of_step(step: str, group_for) -> str:
    """The stage of a step that materialised nothing (it failed): its asset's group, if any."""
    group = group_for(dg.AssetKey(step.split("__")))
    return step if group == "default" else group


def summarise(
    records: list,
    success: bool,
    run_id: str,
    graph,
    job: str,
    started: datetime,
    peaks: dict[str, float] | None = None,
) -> RunSummary:
    """Turn a run's events into one summary row per stage.

    A stage is the asset group of the step's assets; a step that materialises several
    groups at once is one stage: `dbt` for the dbt build, otherwise the group of the step's
    own asset (`ml__product_recommendations`, which also backtests, counts as `score`).
    """
    step_groups: dict[str, list[str]] = defaultdict(list)
    step_assets: dict[str, set] = defaultdict(set)
    step_rows: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    step_checks: dict[str, list] = defaultdict(lambda: [0, 0, [], 0])
    step_seconds: dict[str, float] = {}
    step_skipped: dict[str, list[str]] = defaultdict(list)
    failed: list[str] = []
    step_start: dict[str, float] = {}
    error = None

    def group_for(key: dg.AssetKey) -> str:
        try:
            return graph.get(key).group_name or "default"
        except KeyError:
            return "default"

    def note_group(step: str, name: str) -> None:
        if name not in step_groups[step]:
            step_groups[step].append(name)

    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        step = event.step_key
        kind = event.event_type_value
        if kind == "STEP_START":
            step_start[step] = record.timestamp
        elif kind == "STEP_UP_FOR_RETRY":
            # The first attempt's exception is the real cause; the final failure only says
            # that the retries ran out.
            error = error or _root_message(event.event_specific_data.error)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step_seconds[step] = record.timestamp - step_start.get(step, record.timestamp)
            if kind == "STEP_FAILURE":
                failed.append(step)
                error = error or _root_message(event.event_specific_data.error)
        elif kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            note_group(step, group_for(mat.asset_key))
            step_assets[step].add(mat.asset_key)
            md = mat.metadata
            step_rows[step][0] += _int(md.get("rows_in", 0))
            step_rows[step][1] += _int(md.get("rows_out", md.get("dagster/row_count", 0)))
            if "skipped_reason" in md:
                step_skipped[step].append(str(getattr(md["skipped_reason"], "value", md["skipped_reason"])))
        elif kind == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            note_group(step, group_for(ev.asset_key))
            checks = step_checks[step]
            if ev.passed:
                checks[0] += 1
            elif ev.severity == dg.AssetCheckSeverity.WARN:
                checks[3] += 1
            else:
                checks[1] += 1
                checks[2].append(f"{ev.asset_key.to_user_string()}:{ev.check_name}")

    stages: dict[str, StageSummary] = {}
    for step in step_seconds:
        groups = step_groups.get(step) or [_group_of_step(step, group_for)]
        if len(groups) == 1:
            name = groups[0]
        elif set(groups) <= DBT_LAYERS:
            name = DBT_STAGE
        else:  # one step, several stages' assets (the recommendations and their backtest): the step's own
            step_group = _group_of_step(step, group_for)
            name = step_group if step_group in groups else "+".join(groups)
        st = stages.setdefault(name, StageSummary(stage=name))
        st.assets += len(step_assets[step])
        st.rows_in += step_rows[step][0]
        st.rows_out += step_rows[step][1]
        st.seconds += step_seconds[step]
        st.peak_rss_mb = round(max(st.peak_rss_mb, (peaks or {}).get(step, 0.0)), 1)
        st.checks_passed += step_checks[step][0]
        st.checks_failed += step_checks[step][1]
        st.checks_warned += step_checks[step][3]
        st.failed_checks += step_checks[step][2]
        if step in failed:
            st.failed_steps.append(step)
        st.skipped += step_skipped[step]

    def order(s: StageSummary) -> int:
        first = s.stage.split("+")[0]
        return STAGE_ORDER.index(first) if first in STAGE_ORDER else len(STAGE_ORDER)

    return RunSummary(
        run_id=run_id,
        job=job,
        success=success,
        started_at=started.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        stages=sorted(stages.values(), key=order),
        error=None if success else error,  # a retried step that then succeeded is no error
    )


def run_job(
    job: str = "full_job", tags: dict[str, str] | None = None, run_config: dict | None = None, verbose: bool = False
) -> RunSummary:
    """Execute `job` in-process on the project's Dagster instance and record the outcome.

    Progress goes to stderr, one line per step (`verbose` adds Dagster's engine events).
    Before the run starts, runs whose process died are marked failed and their writer slots
    freed; the run records its process in its tags; while a step waits for the writer slot
    the run says who holds it; SIGTERM and SIGINT stop it, and dbt with it (`pipelines.runs`).
    """
    from dagster._core.utils import make_new_run_id

    s = export_environment()
    from pipelines.definitions import defs  # after export_environment: dbt reads the env at import (and tunes
    # Dagster's SQLite storage: pipelines.dagster_sqlite)

    started = datetime.now(UTC)
    job_def = defs.resolve_job_def(job).with_logger_defs({"progress": progress_logger})
    previous, terminal = stream(), os.fdopen(os.dup(2), "w", buffering=1)
    set_stream(terminal)
    run_id = make_new_run_id()
    try:
        with (
            engine_servers(any(name.startswith(DBT_STEP_PREFIX) for name in job_def.graph.node_dict)),
            dg.DagsterInstance.get() as instance,
            StopGuard() as guard,
            PeakMemory() as memory,
        ):
            recover_dead_runs(instance)
            guard.on_stop(lambda: _stopped(instance, run_id, job, started, s.published))
            with SlotWatcher(instance, run_id):
                result = job_def.execute_in_process(
                    instance=instance,
                    run_id=run_id,
                    raise_on_error=False,
                    tags={**process_tags(), **(tags or {})},
                    run_config={"loggers": {"progress": {"config": {"verbose": verbose}}}, **(run_config or {})},
                )
            records = instance.all_logs(result.run_id)
    finally:  # the terminal's copy of stderr is this run's: closed with it (one file descriptor per run)
        set_stream(previous)
        terminal.close()
    summary = summarise(records, result.success, result.run_id, defs.resolve_asset_graph(), job, started, memory.peaks)
    record_run_status(s.published, summary.as_status())
    return summary


def _stopped(instance: dg.DagsterInstance, run_id: str, job: str, started: datetime, published) -> None:
    """A signal stops the run: mark it failed, free its slots, record it (the process exits next)."""
    from pipelines.runs import current_step

    run = instance.get_run_by_id(run_id)
    step = current_step(instance, run_id) if run is not None else None
    message = "stopped by a signal (SIGTERM or SIGINT)" + (f" during step {step}" if step else "")
    if run is not None and not run.is_finished:
        instance.report_run_failed(run, message=f"retain was {message}; dbt and every step it started were killed.")
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    record_run_status(
        published,
        RunSummary(run_id, job, False, started.isoformat(), datetime.now(UTC).isoformat(), [], message).as_status(),
    )
