"""The engine switch, the Spark settings and the Parquet raw layer, without starting Spark.

Fast checks (no JVM): RETAIN_ENGINE is validated, dbt's `spark` profile carries exactly the
session settings of `pipelines.core.spark.session_conf`, a missing Java says what to
install, and the lake's raw layer follows the ingestion ledger through a crash between the
commit and the Parquet write. tests/test_spark.py runs the engines end to end.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.core import spark as sp


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in [v for v in os.environ if v.startswith("RETAIN_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_engine_defaults_to_duckdb_and_rejects_unknown_names(clean_env, monkeypatch):
    assert sp.engine() == "duckdb"
    monkeypatch.setenv("RETAIN_ENGINE", " Spark ")
    assert sp.is_spark()
    monkeypatch.setenv("RETAIN_ENGINE", "snowflake")
    with pytest.raises(ValueError, match="RETAIN_ENGINE='snowflake'.*duckdb, spark"):
        sp.engine()
    monkeypatch.setenv("RETAIN_SPARK_SHUFFLE_PARTITIONS", "0")
    with pytest.raises(ValueError, match="RETAIN_SPARK_SHUFFLE_PARTITIONS"):
        sp.spark_settings()


def test_dbt_profile_sets_exactly_the_session_settings(clean_env, monkeypatch):
    """profiles.yml's spark target, rendered with the exported variables, equals session_conf()."""
    from jinja2 import Template

    monkeypatch.setenv("RETAIN_SPARK_MASTER", "local[3]")
    s = sp.export_spark_environment()
    profile = yaml.safe_load((Path(sp.__file__).parents[2] / "profiles.yml").read_text())
    params = profile["retain"]["outputs"]["spark"]["server_side_parameters"]

    def env_var(name, default=None):
        return os.environ.get(name, default)

    rendered = {key: Template(str(value)).render(env_var=env_var) for key, value in params.items()}
    assert rendered == sp.session_conf(s)
    assert rendered["spark.master"] == "local[3]"
    assert rendered["spark.sql.session.timeZone"] == "UTC"
    assert Path(s.metastore).is_dir()


def _render(output: str) -> tuple[str, dict[str, str]]:
    """profiles.yml's target and the server_side_parameters of `output`, rendered with this environment."""
    from jinja2 import Template

    def env_var(name, default=None):
        return os.environ.get(name, default)

    profile = yaml.safe_load((Path(sp.__file__).parents[2] / "profiles.yml").read_text())["retain"]
    params = profile["outputs"][output]["server_side_parameters"]
    target = Template(profile["target"]).render(env_var=env_var)
    return target, {key: Template(str(value)).render(env_var=env_var) for key, value in params.items()}


def test_spark_connect_target_sets_the_runtime_settings_only(clean_env, monkeypatch):
    """With RETAIN_SPARK_REMOTE dbt uses the `spark_connect` output: the SQL settings, no master."""
    monkeypatch.setenv("SPARK_REMOTE", "")  # restored (unset) after the test, whatever it sets
    monkeypatch.setenv("RETAIN_ENGINE", "spark")
    monkeypatch.setenv("RETAIN_SPARK_CODEGEN", "false")
    assert _render("spark")[0] == "spark"
    monkeypatch.setenv("RETAIN_SPARK_REMOTE", "sc://127.0.0.1:15002")
    s = sp.export_spark_environment()
    target, rendered = _render("spark_connect")
    assert target == "spark_connect"
    assert os.environ["SPARK_REMOTE"] == "sc://127.0.0.1:15002"  # pyspark's builder connects there
    assert rendered == {key: sp.session_conf(s)[key] for key in sp.RUNTIME_CONF}
    assert rendered["spark.sql.codegen.factoryMode"] == "NO_CODEGEN"
    monkeypatch.setenv("RETAIN_ENGINE", "duckdb")
    assert _render("spark_connect")[0] == "duckdb"
    monkeypatch.setenv("RETAIN_SPARK_REMOTE", "localhost:15002")
    with pytest.raises(ValueError, match="sc://host:port"):
        sp.spark_settings()
    monkeypatch.setenv("RETAIN_SPARK_REMOTE", "")
    monkeypatch.setenv("RETAIN_SPARK_CODEGEN", "maybe")
    with pytest.raises(ValueError, match="RETAIN_SPARK_CODEGEN='maybe' must be true or false"):
        sp.spark_settings()
    sp.export_spark_environment(sp.SparkSettings("/tmp/lake", "local[1]", 1, "1g"))
    assert "SPARK_REMOTE" not in os.environ


def test_missing_java_names_the_package_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(sp.JavaMissing, match="apt-get install openjdk-17-jre-headless"):
        sp.require_java()


def test_raw_layer_follows_the_ledger_through_a_crash(clean_env, monkeypatch):
    """Each committed load becomes one Parquet folder; leftovers and unknown loads are cleaned up."""
    from pipelines.core.config import export_environment, settings
    from pipelines.core.warehouse import connect
    from pipelines.engines import parquet_relation
    from pipelines.generate import generate
    from pipelines.ingest import ingest, lake

    monkeypatch.setenv("RETAIN_ENGINE", "spark")
    export_environment()
    generate(settings().landing, customers=60, seed=3)
    results = ingest()
    raw = Path(sp.spark_settings().raw)
    orders = [r for r in results if r.source == "orders" and r.status == "loaded"]
    assert orders
    folder = raw / "orders" / f"load-{orders[0].load_id:09d}"
    con = connect()
    assert con.execute(f"SELECT count(*) FROM {parquet_relation(folder)}").fetchone()[0] == orders[0].rows_loaded
    assert (raw / "_loads").is_dir() and (raw / "_customer_identity").is_dir()
    # personal data (emails, phones): owner-only like everything else retain writes
    assert (folder / "data.parquet").stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700

    # a crash after the commit, before the folder was renamed into place: half-written temp left
    shutil.rmtree(folder)
    (raw / "orders" / ".tmp-load-000000999-1").mkdir()
    (raw / "orders" / "load-000000999").mkdir()  # a load the ledger does not hold
    written = lake.sync(con, ["orders"])
    assert written == {"orders": 1}
    assert folder.is_dir()
    assert sorted(p.name for p in (raw / "orders").iterdir()) == [folder.name]
    con.close()
