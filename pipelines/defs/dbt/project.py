"""The retain dbt project as Dagster and the CLI see it: where it is, its manifest, a CLI helper.

The manifest (`target/manifest.json`) is git-ignored, so a fresh clone has none. `ensure_manifest()`
runs `dbt parse` when the manifest is missing or older than any dbt source file (models,
macros, singular tests, dbt_project.yml, profiles.yml). Parsing needs no network and no
warehouse connection. It parses into a private folder and moves the manifest into place
atomically, so two processes starting at once never read a half-written file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dagster_dbt import DbtProject

from pipelines.core.config import PROJECT_ROOT, duckdb_memory_limit, export_environment
from pipelines.core.spark import export_spark_environment, is_spark, require_java

#: Folders and files whose change makes the manifest stale.
DBT_SOURCES = ("models", "macros", "seeds", "tests/dbt", "dbt_project.yml", "profiles.yml")

dbt_project = DbtProject(project_dir=PROJECT_ROOT, profiles_dir=PROJECT_ROOT)

#: profiles.yml's DuckDB `path` when retain starts dbt: the warehouse's file name, relative to
#: dbt's working folder `RETAIN_DBT_CWD` (the warehouse's folder). dbt re-parses the whole
#: project (4-5 s) whenever the profile's connection settings differ from those its parse cache
#: was made with; with the absolute path that was every run in another data folder, and every
#: run while runs in two data folders took turns. The file name is the same in every folder.
DBT_WAREHOUSE_ENV = "RETAIN_DBT_WAREHOUSE"
DBT_CWD_ENV = "RETAIN_DBT_CWD"


def dbt_executable() -> str:
    """The `dbt` next to the running interpreter (works without an activated virtualenv)."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else (shutil.which("dbt") or "dbt")


def dbt_environment() -> dict[str, str]:
    """The environment dbt runs in: resolved RETAIN_* paths and this project's profiles.

    Also sets DBT_INDIRECT_SELECTION=cautious (unless set): when Dagster runs a subset of the
    models, a test that also reads a model outside the subset (a relationship) is skipped
    rather than failing on a table that may not exist yet.
    """
    export_environment()
    if is_spark():  # profiles.yml's `spark` target reads the session settings from the environment
        require_java()
        export_spark_environment()
    # profiles.yml passes it to DuckDB: a bad value fails here with its name, not deep in dbt
    os.environ["RETAIN_DUCKDB_MEMORY_LIMIT"] = duckdb_memory_limit()
    os.environ.setdefault("DBT_INDIRECT_SELECTION", "cautious")
    env = dict(os.environ)
    env["DBT_PROFILES_DIR"] = str(PROJECT_ROOT)
    env["DBT_PROJECT_DIR"] = str(PROJECT_ROOT)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def relative_warehouse(warehouse: str | os.PathLike) -> dict[str, str]:
    """Environment for dbt naming `warehouse` by its file name, to run in its folder.

    dbt started with these variables must run in `DBT_CWD_ENV`'s folder: `dbt_cli` does, and so
    does the dbt step's launcher (`pipelines.runs.dbt_launcher`). See `DBT_WAREHOUSE_ENV`.
    """
    path = Path(warehouse)
    return {DBT_WAREHOUSE_ENV: path.name, DBT_CWD_ENV: str(path.parent)}


def _newest_source_mtime(root: Path = PROJECT_ROOT) -> float:
    newest = 0.0
    for name in DBT_SOURCES:
        path = root / name
        if path.is_file():
            newest = max(newest, path.stat().st_mtime)
        elif path.is_dir():
            for file in path.rglob("*"):
                if file.suffix in (".sql", ".yml", ".yaml", ".md") and file.is_file():
                    newest = max(newest, file.stat().st_mtime)
    return newest


def manifest_is_stale(manifest: Path | None = None) -> bool:
    """True when the manifest is missing or older than a dbt source file."""
    manifest = manifest or dbt_project.manifest_path
    return not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime()


def partial_parse_cache() -> Path:
    """dbt's parse cache that the next dbt step of this engine starts from (`target/`).

    One file per engine: the DuckDB and Spark profiles differ, and a cache made with the other
    one makes dbt parse everything again.
    """
    engine = "spark" if is_spark() else "duckdb"
    return dbt_project.project_dir / "target" / f"partial_parse.{engine}.msgpack"


def ensure_manifest() -> Path:
    """Return the path of an up-to-date manifest, running `dbt parse` first if needed."""
    manifest = dbt_project.manifest_path
    if not manifest_is_stale(manifest):
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parse-", dir=manifest.parent) as scratch:
        result = subprocess.run(
            [dbt_executable(), "parse", "--target-path", scratch, "--quiet"],
            cwd=PROJECT_ROOT,  # parsing opens no connection; the profile matches the dbt steps'
            env={**dbt_environment(), **relative_warehouse(os.environ["RETAIN_WAREHOUSE"])},
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"dbt parse failed in {PROJECT_ROOT} (exit {result.returncode}):\n"
                f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
        # the dbt steps start from it (pipelines/defs/dbt/assets.py), so they skip most of the parsing
        partial = Path(scratch) / "partial_parse.msgpack"
        if partial.exists():
            os.replace(partial, partial_parse_cache())
        os.replace(Path(scratch) / "manifest.json", manifest)
    return manifest


#: dbt tag of the models that read the churn scores (the action tiers): `retain score` and the
#: Dagster step `retain_dbt_after_scoring` build them right after scoring.
AFTER_SCORING_TAG = "after_scoring"


def dbt_cli(args: list[str], *, check: bool = False) -> int:
    """Run `dbt <args>` on the retain project with the resolved warehouse; return the exit code.

    Output goes to the terminal. Used by the CLI, e.g. `retain docs` runs
    `dbt_cli(["docs", "generate"])` then `dbt_cli(["docs", "serve", "--port", "8080"])`.
    With check=True a non-zero exit raises CalledProcessError.
    """
    command = [dbt_executable(), *args]
    env = dbt_environment()
    env.update(relative_warehouse(env["RETAIN_WAREHOUSE"]))  # the parse cache of the dbt steps holds
    Path(env[DBT_CWD_ENV]).mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(command, cwd=env[DBT_CWD_ENV], env=env, check=check)
    return completed.returncode
