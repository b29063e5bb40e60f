"""Dagster assets for outreach: the lists after each scoring run, then every CRM export.

The exports (and the check between them) work on the batch the same Dagster run built,
read from the run's own event log (`run_outreach_batch`): with two runs at once, "the
newest batch" may be the other run's.

The work is done by `pipelines.outreach` (plain Python); these assets only open the warehouse,
call it and report what happened as metadata.
"""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext

from pipelines.core.config import settings
from pipelines.defs.resources import WarehouseResource
from pipelines.outreach import FORMATS, build_outreach_lists, export, latest_run_id
from pipelines.outreach.candidates import ACTION_TIERS_TABLE, INPUT_TABLES
from pipelines.outreach.exporter import LATEST, MANIFEST, read_latest

OUTREACH_LISTS_KEY = dg.AssetKey(["exports", "outreach_lists"])
CRM_EXPORTS_KEY = dg.AssetKey(["exports", "crm_exports"])
GROUP = "outreach"


def _churn_scores_key() -> dg.AssetKey:
    """The ML domain's churn scores asset (whatever its prefix), else `ml/churn_scores`."""
    try:
        from pipelines.defs import ml as ml_defs  # the ML domain may not be built yet
    except ImportError:
        return dg.AssetKey(["ml", "churn_scores"])
    for item in getattr(ml_defs, "assets", []):
        keys = item.keys if isinstance(item, dg.AssetsDefinition) else [getattr(item, "key", None)]
        for key in keys:
            if key is not None and key.path[-1] == "churn_scores":
                return key
    return dg.AssetKey(["ml", "churn_scores"])


CHURN_SCORES_KEY = _churn_scores_key()
#: The marts the outreach candidates read, as `pipelines/outreach/candidates.py` declares them.
MART_INPUTS = [dg.AssetKey(table.split(".")) for table in INPUT_TABLES if table.startswith("marts.")]
#: The action tiers, built by the dbt step after scoring (`pipelines/defs/lift/`): the lists read them.
ACTION_TIERS_KEY = dg.AssetKey(ACTION_TIERS_TABLE.split("."))
#: The next products that plays with `recommend_products` put on their lists.
PRODUCT_RECOMMENDATIONS_KEY = dg.AssetKey(["ml", "product_recommendations"])


@dg.asset(
    key=OUTREACH_LISTS_KEY,
    deps=[CHURN_SCORES_KEY, ACTION_TIERS_KEY, PRODUCT_RECOMMENDATIONS_KEY, *MART_INPUTS],
    group_name=GROUP,
    pool="duckdb_writer",
    kinds={"duckdb"},
    description=(
        "Who to contact today and how: each customer in at most one play of the playbook "
        "(pipelines/outreach/playbook.yaml or RETAIN_PLAYBOOK), after suppression. Writes "
        "exports.runs, exports.outreach_lists and exports.suppressions (history per run)."
    ),
)
def outreach_lists(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Build the outreach lists for the latest scores (rule-only plays when scoring was skipped)."""
    from ml.status import read_status

    s = settings()
    with warehouse.connect() as con:  # a lock held for a moment (the dashboard reading) is retried
        status = read_status(con)
        missing = status.get("scoring_reason") if status.get("scoring") == "skipped" else None
        summary = build_outreach_lists(con, as_of=s.as_of, scores_missing=missing)
    for play, why in summary.skipped_plays.items():
        context.log.warning(f"play {play} skipped: {why}")
    context.log.info(
        f"outreach run {summary.run_id} for {summary.as_of_date}: {summary.listed} listed, "
        f"{summary.suppressed} suppressed of {summary.eligible} eligible"
    )
    plays = "\n".join(
        f"| {name} | {c['eligible']} | {c['suppressed']} | {c['held_out']} | {c['listed']} |"
        for name, c in summary.by_play.items()
    )
    return dg.MaterializeResult(
        metadata={
            "outreach_run_id": summary.run_id,
            "as_of_date": summary.as_of_date.isoformat(),
            "candidates": summary.candidates,
            "eligible": summary.eligible,
            "suppressed": summary.suppressed,
            "held_out": summary.held_out,
            "listed": summary.listed,
            "plays": dg.MetadataValue.md(
                "| play | eligible | suppressed | held out | listed |\n| --- | --- | --- | --- | --- |\n" + plays
            ),
            "suppressions_by_reason": dg.MetadataValue.json(summary.by_reason),
            **({"skipped_reason": f"{len(summary.skipped_plays)} plays need churn scores and were skipped "
                                  f"({', '.join(summary.skipped_plays)}); the rule-only plays ran",
                "skipped_plays": dg.MetadataValue.json(summary.skipped_plays)} if summary.skipped_plays else {}),
        }
    )


@dg.asset(
    key=CRM_EXPORTS_KEY,
    deps=[OUTREACH_LISTS_KEY],
    group_name=GROUP,
    pool="duckdb_writer",
    kinds={"csv"},
    description=(
        "Every play in every format (csv, HubSpot, Klaviyo, Salesforce, Mailchimp, Google Customer "
        "Match, Meta Custom Audiences) under RETAIN_EXPORTS/<play>/<format>/<run_id>/, with "
        "manifest.json and added/changed/removed diffs against the previous export."
    ),
)
def crm_exports(context: AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Export this run's outreach batch in every format."""
    s = settings()
    batch = run_outreach_batch(context.instance, context.run, context.log)
    with warehouse.connect(read_only=True) as con:
        results = export(con, "all", "all", s.exports, run_id=batch)
    written = [r for r in results if not r.skipped]
    rows = "\n".join(
        f"| {r.play} | {r.format} | {r.rows} | {r.added} | {r.changed} | {r.removed} |" for r in written
    )
    context.log.info(f"{len(written)} exports written to {s.exports}")
    return dg.MaterializeResult(
        metadata={
            "outreach_run_id": written[0].run_id if written else (results[0].run_id if results else ""),
            "folder": dg.MetadataValue.path(str(s.exports)),
            "exports": len(written),
            "skipped": len(results) - len(written),
            "rows": sum(r.rows for r in written),
            "summary": dg.MetadataValue.md(
                "| play | format | rows | added | changed | removed |\n| --- | --- | --- | --- | --- | --- |\n" + rows
            ),
        }
    )


@dg.asset_check(
    asset=OUTREACH_LISTS_KEY,
    name="one_play_and_no_suppressed_customer",
    blocking=True,
    pool="duckdb_writer",
    description=(
        "In this run's outreach batch no customer is in two plays, and no suppressed or held-out customer is listed."
    ),
)
def outreach_lists_check(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Fail (and stop the exports) if this run's batch breaks the one-play or suppression rules."""
    batch = run_outreach_batch(context.instance, context.run, context.log)
    with warehouse.connect(read_only=True) as con:
        run_id = batch or latest_run_id(con)
        if run_id is None:
            return dg.AssetCheckResult(passed=False, metadata={"problem": "no outreach run"})
        dupes, suppressed_listed, held_out_listed = con.execute(
            """SELECT
                 (SELECT count(*) FROM (SELECT customer_id FROM exports.outreach_lists WHERE run_id = $1
                                        GROUP BY customer_id HAVING count(*) > 1)),
                 (SELECT count(DISTINCT l.customer_id) FROM exports.outreach_lists l
                  JOIN exports.suppressions s USING (run_id, customer_id) WHERE l.run_id = $1),
                 (SELECT count(DISTINCT l.customer_id) FROM exports.outreach_lists l
                  JOIN exports.holdouts h USING (run_id, customer_id) WHERE l.run_id = $1)""",
            [run_id],
        ).fetchall()[0]
    return dg.AssetCheckResult(
        passed=dupes == 0 and suppressed_listed == 0 and held_out_listed == 0,
        metadata={"outreach_run_id": run_id, "customers_in_two_plays": dupes,
                  "suppressed_but_listed": suppressed_listed, "held_out_but_listed": held_out_listed},
    )


def run_outreach_batch(instance: dg.DagsterInstance, run: dg.DagsterRun, log=None) -> str | None:
    """The outreach batch (`exports.runs.run_id`) that this Dagster run's outreach step built.

    Two runs at once must each export their own lists, never "the newest": the batch id is
    read from this run's own materialization of `exports/outreach_lists` (or, for a re-run
    from a failed step, from the run it re-executes). A run that did not build lists (only
    the exports selected) exports the batch of the last successful outreach step.
    """
    seen: set[str] = set()
    current: dg.DagsterRun | None = run
    while current is not None and current.run_id not in seen:
        seen.add(current.run_id)
        batch = None
        for record in instance.all_logs(current.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            mat = record.asset_materialization
            if mat is not None and mat.asset_key == OUTREACH_LISTS_KEY and "outreach_run_id" in mat.metadata:
                batch = str(mat.metadata["outreach_run_id"].value)
        if batch:
            return batch
        current = instance.get_run_by_id(current.parent_run_id) if current.parent_run_id else None
    latest = instance.get_latest_materialization_event(OUTREACH_LISTS_KEY)
    mat = latest.asset_materialization if latest is not None else None
    if mat is not None and "outreach_run_id" in mat.metadata:
        if log is not None:
            log.info("this run built no outreach lists: using the last materialized batch")
        return str(mat.metadata["outreach_run_id"].value)
    return None


def _file_problem(path: Path, sha256: str) -> str | None:
    if not path.exists():
        return f"{path} is missing"
    with open(path, "rb") as fh:
        if hashlib.file_digest(fh, "sha256").hexdigest() != sha256:
            return f"{path} does not match its sha256 in the manifest"
    return None


def _export_files(folder: Path) -> list[tuple[Path, str]]:
    manifest = json.loads((folder / MANIFEST).read_text())
    return [(folder / e["name"], e["sha256"]) for e in manifest["files"] + manifest["diff"]["files"]]


@dg.asset_check(
    asset=CRM_EXPORTS_KEY,
    name="latest_exports_match_manifests",
    description="Every play × format has a LATEST export whose files match the sha256 in its manifest.",
)
def crm_exports_check() -> dg.AssetCheckResult:
    """Re-hash the latest export of every play and format against its manifest."""
    root = settings().exports
    problems: list[str] = []
    files: list[tuple[Path, str]] = []
    checked = 0
    for latest in sorted(root.glob(f"*/*/{LATEST}")) if root.exists() else []:
        base = latest.parent
        if base.name not in FORMATS:
            continue
        run_id = read_latest(base)
        if run_id is None or not (base / run_id / MANIFEST).exists():
            problems.append(f"{base}: LATEST does not point at a complete export")
            continue
        files += _export_files(base / run_id)
        checked += 1
    # SHA-256 releases the GIL: the files (about 400 MB at 1M customers) are hashed in threads.
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems += [p for p in pool.map(lambda f: _file_problem(*f), files) if p]
    return dg.AssetCheckResult(
        passed=checked > 0 and not problems,
        metadata={"exports_checked": checked, "problems": dg.MetadataValue.json(problems[:20])},
    )


#: The holdout tables, written by the lists step with the lists (`exports/outreach_lists`).
HOLDOUT_TABLES = [
    dg.AssetSpec(
        ["exports", table], deps=[OUTREACH_LISTS_KEY], group_name=GROUP, kinds={"duckdb"},
        description=f"exports.{table}: {what}, written by exports/outreach_lists with the lists.",
    )
    for table, what in (
        ("holdouts", "the customers each play held out to measure its lift (never exported)"),
        ("experiments", "each play's holdout share, experiment id and outcome windows per run"),
    )
]
