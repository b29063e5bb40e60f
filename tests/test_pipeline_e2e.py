"""End to end on the shared warehouse: generated files → `retain run` → published snapshot → CLI."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.core.warehouse import open_snapshot
from pipelines.publish import current_snapshot, read_run_status

runner = CliRunner()

REQUIRED_MARTS = [
    "dim_customers",
    "fct_orders",
    "fct_support_tickets",
    "retention_cohorts",
    "kpi_monthly",
    "message_engagement_monthly",
    "complaint_recovery",
]


def _stage(summary, name):
    return next((s for s in summary.stages if s.stage == name), None)


def test_the_run_goes_through_every_stage(pipeline):
    summary = pipeline.summary
    assert summary.success
    names = [s.stage for s in summary.stages]
    for stage in ("ingest", "dbt", "train", "score", "outreach", "publish"):
        assert stage in names, names
    ingest = _stage(summary, "ingest")
    assert ingest.rows_in == sum(pipeline.generated.values()), "every generated row was read"
    assert ingest.rows_out == ingest.rows_in, "generated data is clean: nothing quarantined"
    assert _stage(summary, "dbt").checks_passed > 100 and _stage(summary, "dbt").checks_failed == 0
    assert _stage(summary, "score").rows_out > 0


def test_the_run_leaves_dbts_unit_tests_to_ci(pipeline):
    log = pipeline.data_dir / "logs" / f"dbt-{pipeline.summary.run_id[:8]}.log"
    finished = [line for line in log.read_text().splitlines() if line.startswith("Finished running")]
    assert len(finished) == 3, "the three dbt steps of the full job"
    assert all("data tests" in line and "unit test" not in line for line in finished), finished


def test_dbts_own_log_of_each_step_is_at_info_level(pipeline):
    """Each dbt step's own log says what ran, without every SQL statement (DBT_LOG_LEVEL_FILE=debug adds them)."""
    logs = sorted((pipeline.data_dir / "dbt-target").glob(f"retain_dbt_*-{pipeline.summary.run_id[:8]}-*/dbt.log"))
    assert len(logs) == 3, logs  # the models, after scoring and after outreach steps
    for log in logs:
        text = log.read_text()
        assert '"name": "LogModelResult"' in text and '"name": "SQLQuery"' not in text, log


def test_dbt_steps_write_no_json_artifacts_but_keep_the_parse_cache(pipeline):
    """dbt runs with --no-write-json (retain reads its event stream); the parse cache is still written."""
    folders = sorted((pipeline.data_dir / "dbt-target").glob(f"retain_dbt_*-{pipeline.summary.run_id[:8]}-*"))
    assert len(folders) == 3, folders
    for folder in folders:
        assert not (folder / "run_results.json").exists() and not (folder / "manifest.json").exists(), folder
        assert (folder / "partial_parse.msgpack").exists(), folder


def test_the_snapshot_has_every_mart_scores_and_lists_but_no_raw_data(pipeline):
    snap = current_snapshot(pipeline.settings.published)
    assert snap is not None
    with open_snapshot(snap) as con:
        listed = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        tables = {f"{s}.{t}" for s, t in listed}
        for mart in REQUIRED_MARTS:
            assert f"marts.{mart}" in tables
            assert con.execute(f"select count(*) from marts.{mart}").fetchall()[0][0] > 0, mart
        assert {"ml.churn_scores", "exports.outreach_lists", "exports.suppressions"} <= tables
    assert not any(t.startswith(("raw.", "staging.")) for t in tables)


def test_status_reports_the_run_and_freshness(pipeline):
    recorded = read_run_status(pipeline.settings.published)
    assert recorded["last_success"]["run_id"] == pipeline.summary.run_id
    result = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "success" in result.output and "fresh" in result.output
    assert "latest order in the published data" in result.output


def test_a_second_ingest_loads_nothing(pipeline):
    from pipelines.ingest import ingest

    with pipeline.connect() as con:
        before = con.execute("select count(*) from raw.orders").fetchall()[0][0]
    results = ingest()
    assert results and all(r.status == "unchanged" and r.rows_loaded == 0 for r in results), results
    result = runner.invoke(app, ["ingest"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    with pipeline.connect() as con:
        assert con.execute("select count(*) from raw.orders").fetchall()[0][0] == before
        assert dict(con.execute("select status, count(*) from raw._loads group by 1").fetchall()) == {"loaded": 8}


def test_export_writes_files_a_person_can_open(pipeline, tmp_path):
    result = runner.invoke(app, ["export", "--play", "all", "--format", "hubspot", "--out", str(tmp_path)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    manifests = list(tmp_path.glob("*/hubspot/*/manifest.json"))
    assert manifests, result.output
    for manifest_path in manifests:
        manifest = json.loads(manifest_path.read_text())
        assert manifest["columns"][:4] == ["Email", "First Name", "Last Name", "Phone Number"]
        for entry in manifest["files"]:
            if entry.get("kind", "data") != "data":
                continue
            with open(manifest_path.parent / entry["name"], newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh))
            assert header == manifest["columns"]


def test_model_card_and_plays(pipeline):
    card = runner.invoke(app, ["model"], env={"COLUMNS": "200"})
    assert card.exit_code == 0, card.output
    assert "ROC AUC" in card.output and "recency" in card.output.lower()
    plays = runner.invoke(app, ["plays"], env={"COLUMNS": "200"})
    assert plays.exit_code == 0 and "service_recovery" in plays.output
