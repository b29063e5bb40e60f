"""The Dagster definitions: one lineage graph, the jobs and schedules a data team relies on."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.defs.ops.assets import PUBLISH_KEY


@pytest.fixture(scope="module")
def defs():
    from pipelines.definitions import defs

    return defs


def test_definitions_load_and_validate(defs):
    dg.Definitions.validate_loadable(defs)


def test_publish_runs_after_every_other_asset(defs):
    graph = defs.resolve_asset_graph()
    others = {k for k in graph.get_all_asset_keys() if k != PUBLISH_KEY}
    assert others, "no assets besides publish"
    upstream = graph.get(PUBLISH_KEY).parent_keys
    assert others <= set(upstream) | {
        k for k in others if graph.get(k).is_external
    }, "publish must wait for every asset, so a failure anywhere keeps the old snapshot"


def test_jobs_select_the_right_stages(defs):
    graph = defs.resolve_asset_graph()
    full = defs.resolve_job_def("full_job")
    daily = defs.resolve_job_def("daily_job")
    retrain = defs.resolve_job_def("retrain_job")
    full_keys = set(full.asset_layer.selected_asset_keys)
    daily_keys = set(daily.asset_layer.selected_asset_keys)
    retrain_keys = set(retrain.asset_layer.selected_asset_keys)
    assert PUBLISH_KEY in full_keys and PUBLISH_KEY in daily_keys
    assert daily_keys < full_keys or not retrain_keys
    for key in retrain_keys:
        assert graph.get(key).group_name == "train"
        assert key not in daily_keys
    # recommendations every run; their backtest only with training (weekly retrain, full run)
    from pipelines.defs.ml.recommendations import PRODUCT_RECOMMENDATIONS_KEY, RECOMMENDATION_BACKTEST_KEY

    assert PRODUCT_RECOMMENDATIONS_KEY in daily_keys and PRODUCT_RECOMMENDATIONS_KEY in full_keys
    assert RECOMMENDATION_BACKTEST_KEY not in daily_keys
    assert RECOMMENDATION_BACKTEST_KEY in retrain_keys and RECOMMENDATION_BACKTEST_KEY in full_keys
    # one step for both, so that the full run codes the order lines once (each job takes its subset)
    recommend = graph.get(PRODUCT_RECOMMENDATIONS_KEY).assets_def
    assert recommend is graph.get(RECOMMENDATION_BACKTEST_KEY).assets_def and recommend.can_subset
    assert graph.get(PRODUCT_RECOMMENDATIONS_KEY).group_name == "score"
    assert graph.get(RECOMMENDATION_BACKTEST_KEY).group_name == "train"


def test_schedules(defs):
    daily = defs.resolve_schedule_def("daily_schedule")
    weekly = defs.resolve_schedule_def("weekly_retrain_schedule")
    assert daily.job_name == "daily_job" and daily.cron_schedule == "0 6 * * *"
    assert weekly.job_name == "retrain_job" and weekly.cron_schedule == "0 5 * * 1"
    assert daily.execution_timezone == weekly.execution_timezone == "UTC"
    # The next ticks are where a data team expects them.
    from datetime import datetime

    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 23, 6, 0))
    request = daily.evaluate_tick(ctx)
    assert request.run_requests and request.run_requests[0].job_name in (None, "daily_job")


def test_every_asset_has_a_group_and_writers_share_one_pool(defs):
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_external:
            continue
        assert node.group_name and node.group_name != "default", f"{key.to_user_string()} has no group"
    for assets_def in defs.assets or []:
        if isinstance(assets_def, dg.AssetsDefinition) and assets_def.is_executable:
            pools = {op.pool for op in assets_def.node_def.iterate_op_defs()} if hasattr(
                assets_def.node_def, "iterate_op_defs"
            ) else {assets_def.op.pool}
            assert pools == {"duckdb_writer"}, f"{assets_def.keys} writes without the duckdb_writer pool"


def test_the_dbt_step_reads_dbts_version_without_starting_dbt(monkeypatch):
    """dagster-dbt started `dbt --version` before every step (1.5-1.8 s); retain's resource knows it."""
    import importlib.metadata
    import subprocess

    from pipelines.defs.dbt.assets import RetainDbtCli
    from pipelines.defs.dbt.project import dbt_executable, dbt_project

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"started a process: {args}")

    monkeypatch.setattr(subprocess, "check_output", no_subprocess)
    import dagster_dbt.core.resource as resource

    monkeypatch.setattr(resource, "check_output", no_subprocess, raising=False)
    dbt = RetainDbtCli(project_dir=dbt_project, profiles_dir=str(dbt_project.profiles_dir),
                       dbt_executable=dbt_executable())
    assert str(dbt._cli_version) == importlib.metadata.version("dbt-core")
    assert dbt._initialize_dbt_core_adapter(["build"]) is None


def test_dbt_target_folders_are_under_the_data_folder_and_the_newest_are_kept(tmp_path, monkeypatch):
    import os
    import time

    from pipelines.defs.dbt.assets import KEEP_DBT_TARGETS, dbt_target_path

    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    made = []
    for i in range(KEEP_DBT_TARGETS + 5):
        made.append(dbt_target_path("retain_dbt_models", f"run{i:05d}xyz"))
        os.utime(made[-1], (time.time() - 1000 + i, time.time() - 1000 + i))
    left = sorted((tmp_path / "dbt-target").iterdir())
    assert len(left) == KEEP_DBT_TARGETS
    assert made[-1] in left and made[0] not in left
    assert all(p.parent == tmp_path / "dbt-target" for p in made)
