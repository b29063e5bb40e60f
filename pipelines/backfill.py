"""Backfills: rebuild a past date range of the warehouse without touching other periods.

    retain backfill --start 2025-03-01 --end 2025-03-31

runs `backfill_job` (the dbt build alone: staging, intermediate, marts and their tests) with
the dbt vars `backfill_start`/`backfill_end`. The incremental models (stg_shop__orders,
stg_messaging__messages, fct_orders, message_engagement_monthly) rewrite exactly their rows
dated in the range, from all the raw data there is, and keep every other row as it is (see
macros/backfill.sql); the table models are rebuilt as in every run. Training, scoring,
outreach lists, CRM exports and the published dashboard snapshot are not part of it: the
next daily run scores and publishes on the corrected history, so a backfill never sends a
list to a CRM by itself.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from pipelines.core.config import settings
from pipelines.runner import RunSummary, run_job

#: The Dagster job a backfill runs (defined in pipelines/defs/dbt).
BACKFILL_JOB = "backfill_job"
#: Run tag holding the range, `<start>..<end>`: find backfills in the Dagster UI with it.
BACKFILL_TAG = "retain/backfill"


class BackfillError(ValueError):
    """A backfill that cannot run as asked (bad range, no warehouse built yet)."""


def _as_date(value: object, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise BackfillError(f"{name} must be a date, got {value!r}")


def validate_range(start: date, end: date, today: date | None = None) -> tuple[date, date]:
    """Check a backfill range and return it as two dates (a datetime counts as its date).

    Both ends are included. Raises BackfillError when start is after end or the range
    reaches past `today` (default: today in UTC), since there is nothing to rebuild there yet.
    """
    start, end = _as_date(start, "start"), _as_date(end, "end")
    today = today or datetime.now(UTC).date()
    if start > end:
        raise BackfillError(f"the range is empty: start ({start}) is after end ({end})")
    if end > today:
        raise BackfillError(f"the range reaches into the future: end ({end}) is after today ({today}, UTC)")
    return start, end


def incremental_models() -> list[tuple[str, str]]:
    """(schema, table) of every incremental dbt model: the tables a backfill rewrites in part."""
    from pipelines.defs.dbt import dbt_project, ensure_manifest

    ensure_manifest()
    nodes = json.loads(dbt_project.manifest_path.read_text())["nodes"].values()
    return sorted(
        (n["schema"], n.get("alias") or n["name"])
        for n in nodes
        if n["resource_type"] == "model" and n["config"].get("materialized") == "incremental"
    )


def _check_warehouse_built() -> None:
    """A backfill on a warehouse without the incremental tables would create them holding the
    range alone, and build every mart on that: refuse, and say what to run first."""
    from pipelines.core.warehouse import WarehouseBusy, connect

    warehouse = settings().warehouse
    if not warehouse.exists():
        raise BackfillError(f"no warehouse at {warehouse}: run `retain run` first")
    try:
        with connect(warehouse, read_only=True) as con:
            present = set(con.execute("select table_schema, table_name from information_schema.tables").fetchall())
    except WarehouseBusy as exc:
        raise BackfillError(f"the warehouse {warehouse} is busy (another run is writing?): {exc}") from exc
    missing = [f"{schema}.{table}" for schema, table in incremental_models() if (schema, table) not in present]
    if missing:
        raise BackfillError(f"the warehouse has not been built yet (no {', '.join(missing)}): run `retain run` first")


def backfill_run_config(start: date, end: date) -> dict:
    """The run config of `backfill_job`: the range for the dbt step."""
    from pipelines.defs.dbt import DBT_OP_NAME

    return {"ops": {DBT_OP_NAME: {"config": {"backfill_start": start.isoformat(), "backfill_end": end.isoformat()}}}}


def backfill(start: date, end: date, *, verbose: bool = False) -> RunSummary:
    """Rebuild the warehouse's rows dated from `start` to `end` (both included) through Dagster.

    Validates the range first (BackfillError: start after end, end in the future, no built
    warehouse), then runs `backfill_job` tagged `retain/backfill=<start>..<end>` and returns
    its per-stage summary; the run is recorded like any other (`retain status`, `retain ui`).
    Each model's rewrite is one transaction: a model that fails keeps its rows as they were.
    """
    start, end = validate_range(start, end)
    _check_warehouse_built()
    return run_job(
        BACKFILL_JOB,
        tags={BACKFILL_TAG: f"{start.isoformat()}..{end.isoformat()}"},
        run_config=backfill_run_config(start, end),
        verbose=verbose,
    )
