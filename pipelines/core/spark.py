"""The engine switch and the Spark side of retain: settings, the session, Java.

retain runs its dbt project and its scoring on one of two engines, chosen by
`RETAIN_ENGINE` (`duckdb`, the default, or `spark`):

| variable | default | meaning |
| --- | --- | --- |
| RETAIN_ENGINE | duckdb | `duckdb` or `spark` |
| RETAIN_LAKE | $RETAIN_DATA_DIR/lake | the lake folder (a local path, or an object store URL on a cluster) |
| RETAIN_SPARK_MASTER | local[2] | Spark master of the local session (`local[N]`, `spark://host:7077`, `yarn`, ...) |
| RETAIN_SPARK_SHUFFLE_PARTITIONS | 4 | `spark.sql.shuffle.partitions` (Spark's 200 is far too many on one machine) |
| RETAIN_SPARK_DRIVER_MEMORY | 2g | memory of the driver JVM (a local session runs everything in it) |

The lake holds, under `RETAIN_LAKE`:

* `raw/<table>/load-<load_id>/*.parquet`: what ingestion validated, one folder per load,
  moved into place only after the load committed (`pipelines.ingest.lake`);
* `warehouse/<schema>.db/<table>/`: the tables dbt builds on Spark (Parquet);
* `metastore/`: the catalog of a local session (Derby), which only dbt's session opens.

Every Spark setting retain makes is in `session_conf()`: dbt's profile (`profiles.yml`,
target `spark`) reads it from the `RETAIN_SPARK_*` variables `export_spark_environment`
sets, and `session()` (scoring, publishing, tests) applies the same dict, so both sides
compute in UTC with the same partitions. Python sessions use an in-memory catalog and read
dbt's tables by their folder (`table_path`): the local Derby catalog admits one process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.core.config import settings

if TYPE_CHECKING:  # pyspark is imported only when Spark is used
    from pyspark.sql import SparkSession

ENGINES = ("duckdb", "spark")

#: The Debian package that provides the Java runtime Spark 4 needs.
JAVA_PACKAGE = "openjdk-17-jre-headless"


class JavaMissing(RuntimeError):
    """Spark needs a Java 17 runtime and none was found."""


def engine() -> str:
    """RETAIN_ENGINE, checked: `duckdb` (default) or `spark`."""
    value = os.environ.get("RETAIN_ENGINE", "").strip().lower() or "duckdb"
    if value not in ENGINES:
        raise ValueError(f"RETAIN_ENGINE={value!r} is not an engine retain knows: use one of {', '.join(ENGINES)}")
    return value


def is_spark() -> bool:
    """True when RETAIN_ENGINE=spark."""
    return engine() == "spark"


def _positive_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r} must be a whole number of 1 or more")
    return int(value)


@dataclass(frozen=True)
class SparkSettings:
    """Where the lake is and how the local session is set up (see the module docstring)."""

    lake: str
    master: str
    shuffle_partitions: int
    driver_memory: str

    @property
    def raw(self) -> str:
        """Folder of the raw Parquet layer: one sub-folder per raw table."""
        return f"{self.lake}/raw"

    @property
    def warehouse_dir(self) -> str:
        """`spark.sql.warehouse.dir`: dbt's tables live in `<schema>.db/<table>` below it."""
        return f"{self.lake}/warehouse"

    @property
    def metastore(self) -> str:
        """Folder of the local session's Derby catalog."""
        return f"{self.lake}/metastore"


def spark_settings() -> SparkSettings:
    """Read the RETAIN_SPARK_* variables and RETAIN_LAKE now."""
    lake = os.environ.get("RETAIN_LAKE", "").strip()
    if not lake:
        lake = str(settings().data_dir / "lake")
    elif "://" not in lake:
        lake = str(Path(lake).expanduser().resolve())
    memory = os.environ.get("RETAIN_SPARK_DRIVER_MEMORY", "").strip() or "2g"
    return SparkSettings(
        lake=lake.rstrip("/"),
        master=os.environ.get("RETAIN_SPARK_MASTER", "").strip() or "local[2]",
        shuffle_partitions=_positive_int("RETAIN_SPARK_SHUFFLE_PARTITIONS", 4),
        driver_memory=memory,
    )


def session_conf(s: SparkSettings | None = None) -> dict[str, str]:
    """Every Spark setting retain makes, for dbt's session and for `session()` alike.

    - UTC: timestamps without an offset are UTC everywhere, as in DuckDB;
    - few shuffle partitions: on a few cores Spark's 200 tasks per shuffle cost more than
      they compute; adaptive execution is off because it coalesces partitions differently
      from run to run (and failed a dbt unit test with a ClassCastException in Spark 4.3);
    - ANSI mode stays on (Spark 4's default): a bad cast fails instead of giving NULL;
    - no UI and a warehouse folder inside the lake.
    """
    s = s or spark_settings()
    return {
        "spark.master": s.master,
        "spark.driver.memory": s.driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.default.parallelism": str(s.shuffle_partitions),
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.warehouse.dir": s.warehouse_dir,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={s.metastore} -Duser.timezone=UTC",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={s.metastore}/db;create=true",
    }


#: Environment variable each session setting is passed to profiles.yml through.
PROFILE_ENV = {
    "spark.master": "RETAIN_SPARK_MASTER",
    "spark.driver.memory": "RETAIN_SPARK_DRIVER_MEMORY",
    "spark.sql.shuffle.partitions": "RETAIN_SPARK_SHUFFLE_PARTITIONS",
    "spark.default.parallelism": "RETAIN_SPARK_SHUFFLE_PARTITIONS",
    "spark.sql.warehouse.dir": "RETAIN_SPARK_WAREHOUSE_DIR",
    "spark.driver.extraJavaOptions": "RETAIN_SPARK_DRIVER_JAVA_OPTIONS",
    "spark.hadoop.javax.jdo.option.ConnectionURL": "RETAIN_SPARK_METASTORE_URL",
}


def export_spark_environment(s: SparkSettings | None = None) -> SparkSettings:
    """Set the variables profiles.yml reads for the `spark` target (and RETAIN_LAKE, resolved)."""
    s = s or spark_settings()
    conf = session_conf(s)
    os.environ["RETAIN_LAKE"] = s.lake
    os.environ["RETAIN_SPARK_RAW"] = s.raw
    for key, variable in PROFILE_ENV.items():
        os.environ[variable] = conf[key]
    if "://" not in s.lake:
        Path(s.metastore).mkdir(parents=True, exist_ok=True)
    return s


def require_java() -> str:
    """The `java` Spark will start; raises JavaMissing (saying what to install) when there is none."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not java:
        raise JavaMissing(
            "RETAIN_ENGINE=spark needs a Java 17 runtime and no `java` was found (PATH or JAVA_HOME). "
            f"On Debian or Ubuntu: apt-get install {JAVA_PACKAGE}"
        )
    return java


@lru_cache(maxsize=1)
def java_available() -> bool:
    """True when a Java runtime answers `java -version` (tests skip the Spark runs without one)."""
    try:
        java = require_java()
    except JavaMissing:
        return False
    try:
        return subprocess.run([java, "-version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def session(app_name: str = "retain") -> SparkSession:
    """The process's Spark session with retain's settings and an in-memory catalog.

    Reads dbt's tables through `table(spark, schema, name)`. One session per process
    (`getOrCreate`): a second call returns the same one.
    """
    require_java()
    from pyspark.sql import SparkSession

    s = export_spark_environment()
    builder = SparkSession.builder.appName(app_name)
    for key, value in session_conf(s).items():
        if key.startswith("spark.hadoop.javax.jdo"):
            continue  # no metastore here: the catalog is in memory
        builder = builder.config(key, value)
    builder = builder.config("spark.sql.catalogImplementation", "in-memory")
    return builder.getOrCreate()


def table_path(schema: str, name: str, s: SparkSettings | None = None) -> str:
    """Folder of the table dbt built as `<schema>.<name>` on Spark."""
    s = s or spark_settings()
    return f"{s.warehouse_dir}/{schema}.db/{name}"


def table(spark: SparkSession, schema: str, name: str):
    """dbt's table `<schema>.<name>` as a DataFrame, read from its folder in the lake."""
    return spark.read.parquet(table_path(schema, name))
