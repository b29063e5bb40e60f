"""Dagster definitions for retain: every asset in one lineage graph, files to exports.

Domains live in `pipelines/defs/<domain>/` and export `assets`, `asset_checks`, `sensors`,
`jobs` and `schedules` lists as they need. This module only collects them and adds the jobs
and schedules that span domains:

- `full_job`: everything, including (re)training the churn model: what `retain run` runs.
- `daily_job`: new files → dbt build → score → outreach lists → exports → publish
  (scheduled every day at 06:00 UTC; the landing sensor also targets it).
- `retrain_job`: retrain the churn model (scheduled on Mondays at 05:00 UTC).

Load it in the Dagster UI with `retain ui` (or `dagster dev -m pipelines.definitions`).
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import dagster as dg

from pipelines import dagster_sqlite
from pipelines.core.config import export_environment
from pipelines.defs.ops import make_publish_asset
from pipelines.defs.resources import RESOURCES
from pipelines.executor import retain_executor

export_environment()
# runs the Dagster daemon launches (`retain ui`) store their events like `retain run` does
dagster_sqlite.tune()

#: Stages in run order; each is a package under pipelines/defs.
DOMAINS = ("ingest", "dbt", "ml", "outreach", "lift")

#: Marts, scores and outreach lists older than this are stale (freshness checks warn).
FRESHNESS_HOURS = 26
FRESH_SCHEMAS = ("marts", "ml", "exports")

#: Assets that only the weekly retrain (and the first full run) materialise.
TRAIN_GROUP = "train"


def _load_domain(name: str) -> dict[str, list]:
    module = importlib.import_module(f"pipelines.defs.{name}")
    return {
        kind: list(getattr(module, kind, []))
        for kind in ("assets", "asset_checks", "sensors", "jobs", "schedules")
    }


def _asset_keys(assets: list) -> list[dg.AssetKey]:
    keys: list[dg.AssetKey] = []
    for a in assets:
        if isinstance(a, dg.AssetsDefinition):
            keys.extend(a.keys)
        elif isinstance(a, dg.AssetSpec):
            keys.append(a.key)
    return keys


def build_definitions() -> dg.Definitions:
    """Collect every domain's definitions and the cross-domain jobs and schedules."""
    parts = {kind: [] for kind in ("assets", "asset_checks", "sensors", "jobs", "schedules")}
    for domain in DOMAINS:
        for kind, items in _load_domain(domain).items():
            parts[kind].extend(items)

    publish = make_publish_asset(_asset_keys(parts["assets"]))
    assets = [*parts["assets"], publish]

    everything = dg.AssetSelection.all()
    full_job = dg.define_asset_job("full_job", selection=everything, description="Everything, including training.")
    daily_job = dg.define_asset_job(
        "daily_job",
        selection=everything - dg.AssetSelection.groups(TRAIN_GROUP),
        description="Ingest new files, dbt build, score, outreach lists, exports, publish.",
    )
    retrain_job = dg.define_asset_job(
        "retrain_job", selection=dg.AssetSelection.groups(TRAIN_GROUP), description="Retrain the churn model."
    )
    # New landing files go all the way to the dashboard: the sensor launches the daily job.
    from pipelines.defs.ingest import build_landing_sensor, landing_sensor

    sensors = [sens for sens in parts["sensors"] if sens.name != landing_sensor.name]
    sensors.append(build_landing_sensor(daily_job))

    # Marts, scores and outreach lists must have been rebuilt within a day (plus slack): a
    # freshness policy warns after FRESHNESS_HOURS and fails after twice that. Dagster's UI
    # shows it; `retain status` applies the same rule to the last successful run.
    policy = dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=2 * FRESHNESS_HOURS), warn_window=timedelta(hours=FRESHNESS_HOURS)
    )
    assets = list(
        dg.map_asset_specs(
            lambda spec: spec.replace_attributes(freshness_policy=policy)
            if spec.key.path[0] in FRESH_SCHEMAS
            else spec,
            assets,
        )
    )

    schedules = [
        dg.ScheduleDefinition(
            name="daily_schedule", job=daily_job, cron_schedule="0 6 * * *", execution_timezone="UTC"
        ),
        dg.ScheduleDefinition(
            name="weekly_retrain_schedule", job=retrain_job, cron_schedule="0 5 * * 1", execution_timezone="UTC"
        ),
        *parts["schedules"],
    ]
    return dg.Definitions(
        assets=assets,
        asset_checks=parts["asset_checks"],
        jobs=[full_job, daily_job, retrain_job, *parts["jobs"]],
        schedules=schedules,
        sensors=sensors,
        resources=RESOURCES,
        # every run in one process with the job's engine servers, however it was started
        executor=retain_executor,
    )


defs = build_definitions()
