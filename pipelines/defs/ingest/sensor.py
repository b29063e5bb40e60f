"""`landing_sensor`: start an ingestion run when landing files appear or change.

The cursor is a JSON object `{relative path: [size, mtime_ns]}` of every file already handed
to a run. A tick requests one run for the files that are new or whose size or mtime changed;
its `run_key` is a hash of exactly those files' fingerprints, so a repeated tick (or a
restarted daemon with an old cursor) never launches the same run twice. Files still being
written wait for a later tick: `*.tmp`, `*.part`, dotfiles, and files modified in the last
`RETAIN_LANDING_SETTLE_SECONDS` seconds (default 5). Whether a file's content is really new
is decided by the run itself (sha256 in the ledger), so a touched file costs one quick no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import dagster as dg

from pipelines.core.config import settings
from pipelines.core.contract import SOURCE_NAMES
from pipelines.importers.driver import import_folders, platform_files
from pipelines.ingest import landing_files

SETTLE_ENV = "RETAIN_LANDING_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 5.0


def settle_seconds() -> float:
    """How long a file must be unmodified before a tick picks it up."""
    return float(os.environ.get(SETTLE_ENV, DEFAULT_SETTLE_SECONDS))


def scan_landing(previous: dict[str, list[int]], settle: float, now: float | None = None):
    """Compare the landing folder with the cursor.

    Returns (new or changed files → fingerprint, the next cursor, files still settling).
    A settling file keeps its old fingerprint in the cursor (if any), so it is reported once
    it has settled; a file that disappeared drops out of the cursor.
    """
    now = time.time() if now is None else now
    landing = settings().landing
    changed: dict[str, list[int]] = {}
    cursor: dict[str, list[int]] = {}
    settling: list[str] = []
    # contract folders, then platform folders (shopify/, ...) and folders with a _mapping.yaml
    paths = [p for name in SOURCE_NAMES for p in landing_files(landing, name)]
    paths += [p for folder in import_folders(landing) for p in platform_files(folder)]
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:  # moved away between listing and stat
            continue
        rel = path.relative_to(landing).as_posix()
        if now - st.st_mtime < settle:
            settling.append(rel)
            if rel in previous:
                cursor[rel] = previous[rel]
            continue
        fingerprint = [st.st_size, st.st_mtime_ns]
        cursor[rel] = fingerprint
        if previous.get(rel) != fingerprint:
            changed[rel] = fingerprint
    return changed, cursor, settling


def build_landing_sensor(job, name: str = "landing_sensor", minimum_interval_seconds: int = 30):
    """The landing sensor, targeting `job` (the integrator may point it at the daily job)."""

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        description=(
            "Starts a run when files in the landing folder are new or changed (size or mtime), once they "
            f"have not been modified for {SETTLE_ENV} seconds (default {DEFAULT_SETTLE_SECONDS:g}); "
            "*.tmp, *.part and dotfiles are ignored."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        previous = json.loads(context.cursor) if context.cursor else {}
        changed, cursor, settling = scan_landing(previous, settle_seconds())
        next_cursor = json.dumps(cursor, sort_keys=True)
        if not changed:
            reason = f"no new landing files ({len(settling)} still being written)" if settling else "no new files"
            return dg.SensorResult(skip_reason=reason, cursor=next_cursor)
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:24]
        files = sorted(changed)
        context.log.info(f"{len(files)} new or changed landing files: {', '.join(files[:20])}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"landing-{digest}", tags={"retain/new_files": str(len(files))})],
            cursor=next_cursor,
        )

    return _sensor
