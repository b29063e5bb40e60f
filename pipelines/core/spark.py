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
| RETAIN_SPARK_CODEGEN | true | `false`: no Java code generation (interpreted plans: faster on tiny tables, the tests) |
| RETAIN_SPARK_REMOTE | (none) | Spark Connect server (`sc://host:15002`) dbt and scoring use instead of own sessions |

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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name}={value!r} must be true or false")
    return value in ("true", "1", "yes")


@dataclass(frozen=True)
class SparkSettings:
    """Where the lake is and how the local session is set up (see the module docstring)."""

    lake: str
    master: str
    shuffle_partitions: int
    driver_memory: str
    codegen: bool = True
    remote: str | None = None

    @property
    def raw(self) -> str:
        """Folder of the raw Parquet layer: one sub-folder per raw table."""
        return f"{self.lake}/raw"

    @property
    def warehouse_dir(self) -> str:
        """`spark.sql.warehouse.dir`: dbt's tables live in `<schema>.db/<table>` below it."""
        return f"{self.lake}/warehouse"

    @property
    def scores(self) -> str:
        """Folder the churn scores computed on Spark's workers are written to (then copied to the warehouse)."""
        return f"{self.lake}/scores/churn_scores"

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
        codegen=_flag("RETAIN_SPARK_CODEGEN", True),
        remote=_remote(),
    )


def _remote() -> str | None:
    value = os.environ.get("RETAIN_SPARK_REMOTE", "").strip()
    if not value:
        return None
    if not value.startswith("sc://"):
        raise ValueError(f"RETAIN_SPARK_REMOTE={value!r} must be a Spark Connect URL, sc://host:port")
    return value


def session_conf(s: SparkSettings | None = None) -> dict[str, str]:
    """Every Spark setting retain makes, for dbt's session and for `session()` alike.

    - UTC: timestamps without an offset are UTC everywhere, as in DuckDB;
    - few shuffle partitions: on a few cores Spark's 200 tasks per shuffle cost more than
      they compute; adaptive execution is off because it coalesces partitions differently
      from run to run (and failed a dbt unit test with a ClassCastException in Spark 4.3);
    - ANSI mode stays on (Spark 4's default): a bad cast fails instead of giving NULL;
    - no UI and a warehouse folder inside the lake;
    - code generation (`RETAIN_SPARK_CODEGEN`): Spark compiles each query's plan to Java
      (Janino) before it runs. On large tables that pays; on the few hundred rows of a test
      the compiling is most of a query's time, so `false` runs the plans interpreted.
    - the parallel garbage collector in the driver JVM (a local session or Connect server):
      G1, Java 17's default, spent a quarter of the end-to-end test's server time collecting,
      mostly forced by large buffers (docs/scale-out.md, "The garbage collector");
    - Hadoop's file-system umask 077: the lake holds personal data, so Spark writes it
      owner-only (Hadoop's default 022 leaves it readable by other accounts).
    """
    s = s or spark_settings()
    return {
        "spark.master": s.master,
        "spark.driver.memory": s.driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.default.parallelism": str(s.shuffle_partitions),
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.codegen.wholeStage": "true" if s.codegen else "false",
        "spark.sql.codegen.factoryMode": "FALLBACK" if s.codegen else "NO_CODEGEN",
        "spark.sql.warehouse.dir": s.warehouse_dir,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={s.metastore} -Duser.timezone=UTC -XX:+UseParallelGC",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={s.metastore}/db;create=true",
        "spark.hadoop.fs.permissions.umask-mode": "077",
    }


#: Environment variable each session setting is passed to profiles.yml through.
PROFILE_ENV = {
    "spark.master": "RETAIN_SPARK_MASTER",
    "spark.driver.memory": "RETAIN_SPARK_DRIVER_MEMORY",
    "spark.sql.shuffle.partitions": "RETAIN_SPARK_SHUFFLE_PARTITIONS",
    "spark.default.parallelism": "RETAIN_SPARK_SHUFFLE_PARTITIONS",
    "spark.sql.warehouse.dir": "RETAIN_SPARK_WAREHOUSE_DIR",
    "spark.sql.codegen.wholeStage": "RETAIN_SPARK_WHOLE_STAGE_CODEGEN",
    "spark.sql.codegen.factoryMode": "RETAIN_SPARK_CODEGEN_FACTORY_MODE",
    "spark.driver.extraJavaOptions": "RETAIN_SPARK_DRIVER_JAVA_OPTIONS",
    "spark.hadoop.javax.jdo.option.ConnectionURL": "RETAIN_SPARK_METASTORE_URL",
}


#: The settings of `session_conf` a client sets on its own session of a Spark Connect server
#: (the others are the server's, fixed when it starts).
RUNTIME_CONF = (
    "spark.sql.session.timeZone",
    "spark.sql.shuffle.partitions",
    "spark.sql.adaptive.enabled",
    "spark.sql.codegen.wholeStage",
    "spark.sql.codegen.factoryMode",
    "spark.sql.sources.partitionOverwriteMode",
    "spark.sql.execution.arrow.pyspark.enabled",
)


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
    # dbt-spark's `session` method and pyspark's builder connect to a Spark Connect server
    # when SPARK_REMOTE is set (profiles.yml then picks the `spark_connect` output)
    if s.remote:
        os.environ["SPARK_REMOTE"] = s.remote
    else:
        os.environ.pop("SPARK_REMOTE", None)
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
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

    # the Python workers of a local session run this interpreter and import retain's `ml`
    # package (distributed scoring)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    s = export_spark_environment()
    if s.remote:  # the server has its own settings; the SQL ones are set per session
        builder = SparkSession.builder.remote(s.remote).appName(app_name)
        for key in RUNTIME_CONF:
            builder = builder.config(key, session_conf(s)[key])
        return builder.getOrCreate()
    builder = SparkSession.builder.appName(app_name)
    for key, value in session_conf(s).items():
        if key.startswith("spark.hadoop.javax.jdo"):
            continue  # no metastore here: the catalog is in memory
        builder = builder.config(key, value)
    builder = builder.config("spark.sql.catalogImplementation", "in-memory")
    return builder.getOrCreate()


#: The settings a Spark Connect server takes on its command line rather than as `--conf`.
_SUBMIT_OPTIONS = {"spark.master": "--master", "spark.driver.memory": "--driver-memory",
                   "spark.driver.extraJavaOptions": "--driver-java-options"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """The server gets SIGKILL when the process that started it dies (Linux), and its own group."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextmanager
def local_connect_server(s: SparkSettings | None = None, timeout: float = 300.0) -> Iterator[str]:
    """A Spark Connect server on this machine for the duration of the block: one JVM for many clients.

    Each dbt step of a job is a process of its own, and with dbt-spark's `session` method each
    would start (and warm up) a JVM of its own. Inside this block `RETAIN_SPARK_REMOTE` points
    dbt and the scoring session at one server instead, started with `session_conf()` and the
    Hive catalog of the lake; it listens on 127.0.0.1 only and is stopped at the end (it dies
    with this process too). Yields its `sc://` URL. Its log: `<lake>/connect-server.log`.
    """
    java = require_java()
    s = s or spark_settings()
    from pyspark.find_spark_home import _find_spark_home

    port = _free_port()
    conf = session_conf(s)
    cmd = [str(Path(_find_spark_home()) / "bin" / "spark-submit"),
           "--class", "org.apache.spark.sql.connect.service.SparkConnectServer", "--name", "retain"]
    for key, option in _SUBMIT_OPTIONS.items():
        cmd += [option, conf[key]]
    # warnings only: at INFO the server logs every plan it receives (megabytes per dbt build)
    for key, value in {**conf, "spark.sql.catalogImplementation": "hive", "spark.log.level": "WARN",
                       "spark.connect.grpc.binding.address": "127.0.0.1",
                       "spark.connect.grpc.binding.port": str(port)}.items():
        if key not in _SUBMIT_OPTIONS:
            cmd += ["--conf", f"{key}={value}"]
    cmd.append("spark-internal")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "JAVA_HOME": str(Path(java).resolve().parents[1]),
           "PYTHONPATH": os.pathsep.join(p for p in [root, os.environ.get("PYTHONPATH", "")] if p)}
    env.pop("SPARK_REMOTE", None)
    Path(s.metastore).mkdir(parents=True, exist_ok=True)
    log_path = Path(s.lake) / "connect-server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                  cwd=s.lake, preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads started yet
    url = f"sc://127.0.0.1:{port}"
    saved = os.environ.get("RETAIN_SPARK_REMOTE")
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the Spark Connect server stopped at start (exit {server.returncode}):\n{tail}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no Spark Connect server on port {port} after {timeout:.0f} s: {log_path}") from None
                time.sleep(0.5)
        os.environ["RETAIN_SPARK_REMOTE"] = url
        export_spark_environment()
        # before any step writes: folders a killed run left would stop its next CREATE TABLE
        for folder in remove_unregistered_table_folders(session("retain-cleanup"), s.warehouse_dir):
            print(f"retain: removed {folder}, a table folder a stopped run left unregistered", file=sys.stderr)
        yield url
    finally:
        _stop_remote_session()
        if saved is None:
            os.environ.pop("RETAIN_SPARK_REMOTE", None)
        else:
            os.environ["RETAIN_SPARK_REMOTE"] = saved
        if os.environ.get("RETAIN_ENGINE", "").strip().lower() == "spark":
            export_spark_environment()
        try:
            # its shutdown hooks wait for gRPC calls and Python workers: 5 s, then it is killed
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        except ProcessLookupError:
            pass


def remove_unregistered_table_folders(spark: SparkSession, warehouse_dir: str) -> list[Path]:
    """Remove the folders under `<warehouse_dir>/<schema>.db/` that the catalog has no table for.

    Spark writes a `CREATE TABLE ... AS` (dbt's table models, the stage of an incremental
    rewrite) into the table's folder first and registers the table only once every file is
    written. A run killed in between leaves a folder with some files and no table, and every
    later `CREATE TABLE` of that name fails with LOCATION_ALREADY_EXISTS: removing such folders
    before a job writes lets the next run build the table again. Local folders only (a
    cluster's object store and catalog are the cluster's: docs/scale-out.md). Call it while no
    other session writes to the catalog: a local job's own Connect server, just started, holds
    the Derby catalog alone. Returns the folders removed.
    """
    root = Path(warehouse_dir.removeprefix("file:"))
    if "://" in warehouse_dir or not root.is_dir():
        return []
    removed: list[Path] = []
    schemas = {row[0].lower() for row in spark.sql("show databases").collect()}
    for schema_dir in sorted(root.glob("*.db")):
        schema = schema_dir.name[: -len(".db")]
        if schema.lower() not in schemas:
            continue
        tables = {row.tableName.lower() for row in spark.sql(f"show tables in `{schema}`").collect()}
        for folder in sorted(schema_dir.iterdir()):
            if folder.is_dir() and not folder.name.startswith((".", "_")) and folder.name.lower() not in tables:
                shutil.rmtree(folder)
                removed.append(folder)
    return removed


def _stop_remote_session() -> None:
    """Close this process's Spark Connect client session, if it has one (its server is going away)."""
    if "pyspark.sql.connect.session" not in sys.modules:
        return
    from pyspark.sql.connect.session import SparkSession as RemoteSession

    active = RemoteSession.getActiveSession()
    if active is not None:
        active.stop()
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def table_path(schema: str, name: str, s: SparkSettings | None = None) -> str:
    """Folder of the table dbt built as `<schema>.<name>` on Spark."""
    s = s or spark_settings()
    return f"{s.warehouse_dir}/{schema}.db/{name}"


def table_paths(qualified: list[str] | tuple[str, ...], s: SparkSettings | None = None) -> dict[str, str]:
    """`schema.table` -> folder of dbt's table on Spark, for each name."""
    return {q: table_path(*q.split("."), s=s) for q in qualified}


def table(spark: SparkSession, schema: str, name: str):
    """dbt's table `<schema>.<name>` as a DataFrame, read from its folder in the lake."""
    return spark.read.parquet(table_path(schema, name))
