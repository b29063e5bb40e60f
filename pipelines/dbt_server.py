"""A warm dbt for a job's dbt steps: dbt is imported once per job, and each dbt command is a fork of it.

Why: before it reads a byte of the project, a dbt command spends about 2.5 s of CPU starting
Python and importing dbt-core, its adapter and their dependencies. A job runs dbt up to three
times (`retain_dbt_models`, `retain_dbt_after_scoring`, `retain_dbt_after_outreach`), so on the
300-customer test shop that start-up was about a quarter of a whole `retain run`. A forked
copy of a process that already imported dbt starts in a few milliseconds.

How (`warm_dbt()`, around a job with dbt steps, on either engine):

* the job starts ``python -I -m pipelines.dbt_server @<name>`` (the *server*). It listens on
  a Unix socket in Linux's abstract namespace, which has no file to leave behind when a run is
  killed; since such a socket has no file mode either, the server serves only processes of
  its own user (`SO_PEERCRED`). It listens at once, then imports dbt, so a step that asks
  early waits only for what is left of the import.
  On Spark it also imports dbt-spark and pyspark's Spark Connect client, and each forked dbt
  installs retain's cursor (`pipelines.dbt_spark_connect`) when it talks to a Connect server.
  Nothing in the server opens a connection before it forks: every dbt opens its own;
* each dbt step still starts retain's dbt launcher (`pipelines.runs.dbt_launcher`), which
  keeps every guarantee it gave before: its own process group, death with the step's
  process. Instead of exec'ing dbt, the launcher (`run_forked`) hands the server its command
  line, environment, working folder and standard streams (file descriptors over the Unix
  socket) and waits for the exit code;
* the server forks. The child joins the launcher's process group (so stopping the run kills
  it with the launcher), dies with the server (`PR_SET_PDEATHSIG`), dies when the launcher
  goes (its connection closes), takes over the launcher's streams, environment and folder,
  calls itself ``dbt`` (`/proc/<pid>/comm`) and runs dbt's own command line entry point;
* the server dies with the job's process (`PR_SET_PDEATHSIG`, even on ``kill -9``) and is
  stopped when the job ends.

When the server cannot be reached (not started, or killed), the launcher
starts dbt itself as before: the warm dbt is a speed-up, never a dependency.

Written here rather than taken from a library: dbt-core has no long-lived server (its
`dbtRunner` runs in the caller's process, which would put dbt inside the job's process and
lose the separate process group that SIGTERM and ``kill -9`` rely on), and a fork server is the
standard way (CPython's own `multiprocessing` "forkserver" start method) to start processes
that share a slow import. This module imports nothing heavy at module level: the launcher
imports it on every dbt step.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

#: `RETAIN_WARM_DBT=0` turns the warm dbt off: every dbt command then starts from scratch.
WARM_ENV = "RETAIN_WARM_DBT"
#: The launcher finds the job's server here (`@name`: an abstract Unix socket); unset means "start dbt yourself".
SERVER_ENV = "RETAIN_DBT_SERVER"
#: `/proc/<pid>/comm` of the server and of each dbt it forks (tools and tests tell them apart by it).
SERVER_NAME = b"retain-dbt"
DBT_NAME = b"dbt"
#: How long a launcher waits for the server to take its command before starting dbt itself.
CONNECT_TIMEOUT = 60.0
#: What the server imports before it accepts: dbt's entry point, the DuckDB adapter and what a
#: `dbt build` loads on its way (measured with `python -X importtime`).
WARM_MODULES = (
    "dbt.cli.main",
    "dbt.adapters.duckdb",
    "dbt.adapters.duckdb.impl",
    "dbt.parser.manifest",
    "dbt.task.build",
    "dbt.task.list",
    "dbt.contracts.graph.manifest",
    "agate",
)
#: What the server imports as well when the job runs on Spark (`RETAIN_ENGINE=spark`): dbt-spark,
#: pyspark's Spark Connect client and retain's cursor for it (about 2.8 s more per dbt command).
SPARK_WARM_MODULES = (
    "dbt.adapters.spark",
    "dbt.adapters.spark.impl",
    "dbt.adapters.spark.session",
    "pyspark.sql.connect.session",
    "pyspark.sql.connect.dataframe",
    "pyspark.sql.connect.plan",
    "pyspark.sql.conversion",
    "pyspark.sql.pandas.types",
    "pipelines.dbt_spark_connect",
)

_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1
_HEADER = struct.Struct("!Q")
_CODE = struct.Struct("!i")
#: `struct ucred` of SO_PEERCRED: pid, uid, gid.
_PEER = struct.Struct("3i")


def _prctl(option: int, value) -> None:  # noqa: ANN001 - an int or a bytes name
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return bytes(data)


# ---------------------------------------------------------------- the job's side


@contextlib.contextmanager
def warm_dbt() -> Iterator[str | None]:
    """Run a job's dbt steps as forks of one warm dbt process (see the module docstring).

    Sets `RETAIN_DBT_SERVER` for the job's dbt launchers and stops the server afterwards.
    Yields the server's address (None when the server could not be started: dbt then starts
    itself as before).
    """
    address = f"@retain-dbt-{os.getpid()}-{secrets.token_hex(8)}"
    previous = os.environ.get(SERVER_ENV)
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "pipelines.dbt_server", address, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
    except OSError:
        address = None
    if address is not None:
        os.environ[SERVER_ENV] = address
    try:
        yield address
    finally:
        if previous is None:
            os.environ.pop(SERVER_ENV, None)
        else:
            os.environ[SERVER_ENV] = previous
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _socket_name(address: str) -> str:
    """The name to bind or connect: `@name` is Linux's abstract namespace (no file), else a path."""
    return "\0" + address[1:] if address.startswith("@") else address


# ---------------------------------------------------------------- the launcher's side


def run_forked(argv: list[str]) -> int | None:
    """Have the job's warm dbt run `argv` (``[dbt, *args]``) with this process's streams, environment and folder.

    Returns dbt's exit code, or None when no server could take the command (the caller then
    starts dbt itself). SIGTERM and SIGINT received here are passed on to dbt.
    """
    address = os.environ.get(SERVER_ENV)
    if not address:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(CONNECT_TIMEOUT)
    try:
        conn.connect(_socket_name(address))
        request = json.dumps(
            {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "pgid": os.getpgid(0)}
        ).encode()
        socket.send_fds(conn, [_HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
        (pid,) = _CODE.unpack(_recv_exactly(conn, _CODE.size))
    except (OSError, ConnectionError):
        conn.close()
        return None
    conn.settimeout(None)

    def forward(signum: int, _frame) -> None:  # noqa: ANN001
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    try:
        (code,) = _CODE.unpack(_recv_exactly(conn, _CODE.size))
    except ConnectionError:
        os.write(2, f"retain: dbt (pid {pid}) ended without an exit code (killed?)\n".encode())
        code = 1
    finally:
        conn.close()
    return code


# ---------------------------------------------------------------- the server


def _same_user(conn: socket.socket) -> bool:
    """True when the process at the other end of `conn` runs as this process's user (SO_PEERCRED)."""
    try:
        _, uid, _ = _PEER.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEER.size))
    except OSError:
        return False
    return uid == os.getuid()


def _serve(address: str, parent: int) -> tuple[socket.socket, dict, list[int]]:
    """Accept commands until stopped; returns only in a forked child, with its connection, request and streams."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the job died before prctl took effect
        sys.exit(0)
    _prctl(_PR_SET_NAME, SERVER_NAME)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(_socket_name(address))
    listener.listen(8)
    import importlib
    import warnings

    modules = WARM_MODULES + (SPARK_WARM_MODULES if _on_spark(os.environ) else ())
    with warnings.catch_warnings():  # pyspark warns about pandas' version at import, once per process
        warnings.simplefilter("ignore")
        for name in modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked dbt processes are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        conn, _ = listener.accept()
        if not _same_user(conn):  # an abstract socket has no file mode: check who connects
            conn.close()
            continue
        try:
            conn.settimeout(CONNECT_TIMEOUT)
            header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
            (size,) = _HEADER.unpack(header)
            request = json.loads(_recv_exactly(conn, size))
            conn.settimeout(None)
        except (OSError, ConnectionError, ValueError, struct.error):  # a launcher that gave up and left
            conn.close()
            continue
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            conn.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            listener.close()
            return conn, request, fds
        for fd in fds:
            os.close(fd)
        conn.close()


#: Set in a forked dbt once it has reported its exit code: the launcher may then close the connection.
_finished = threading.Event()


def _become_dbt(conn: socket.socket, request: dict, fds: list[int]) -> list[str]:
    """In the forked child: take over the launcher's group, streams, folder and environment."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # dbt's own subprocesses are waited for as usual
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    server = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server:
        os._exit(1)
    _prctl(_PR_SET_NAME, DBT_NAME)
    with contextlib.suppress(OSError):
        os.setpgid(0, request["pgid"])
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    conn.sendall(_CODE.pack(os.getpid()))

    def watch() -> None:  # the launcher went away (killed with its process group or alone): so does dbt
        with contextlib.suppress(OSError):
            while conn.recv(1):
                pass
        if not _finished.is_set():
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="retain-dbt-watch").start()
    return request["argv"]


def _on_spark(env) -> bool:  # noqa: ANN001 - os.environ or a request's dict
    return env.get("RETAIN_ENGINE", "").strip().lower() == "spark"


def main() -> None:
    address, parent = sys.argv[1], int(sys.argv[2])
    conn, request, fds = _serve(address, parent)
    argv = _become_dbt(conn, request, fds)
    if _on_spark(os.environ) and os.environ.get("SPARK_REMOTE"):
        # dbt-spark on a Spark Connect server: retain's cursor, as the launcher installs it
        # when it runs dbt itself (pipelines/dbt_spark_connect.py)
        from pipelines.dbt_spark_connect import install

        install()
    from dbt.cli.main import cli

    sys.argv = list(argv)  # dbt's command line entry point, as the `dbt` script calls it
    code = 1
    try:
        cli()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - dbt's own crash: print it as dbt would, report failure
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    _finished.set()
    with contextlib.suppress(OSError):
        conn.sendall(_CODE.pack(code))
    sys.exit(code)


if __name__ == "__main__":
    main()
