"""The warm dbt (`pipelines.dbt_server`): a job's dbt commands as forks of one process that imported dbt.

Real processes throughout: the server is started as a job starts it, and dbt is run through
retain's own dbt launcher (`pipelines.runs.dbt_launcher`), as a dbt step runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipelines.dbt_server import SERVER_ENV, _socket_name, run_forked, warm_dbt
from tests.procs import alive, comm, ppid


@pytest.fixture
def launcher(tmp_path, monkeypatch):
    """retain's dbt launcher, written into a data folder of its own."""
    from pipelines.core.config import export_environment
    from pipelines.defs.dbt.project import dbt_executable
    from pipelines.runs import dbt_launcher

    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path / "data"))
    export_environment()
    return dbt_launcher(dbt_executable())


def _dbt(launcher: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "RETAIN_DBT_PARENT_PID": str(os.getpid()), **env}
    return subprocess.run([launcher, *args], env=environment, capture_output=True, text=True, timeout=120)



def _server_pid() -> int:
    """The warm dbt server this process started (it names itself once Python is up)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            pid = int(entry.name) if entry.name.isdigit() else None
            if pid is not None and ppid(pid) == os.getpid() and comm(pid) == b"retain-dbt":
                return pid
        time.sleep(0.05)
    raise AssertionError("no warm dbt server is a child of this process")


def test_dbt_runs_as_a_fork_of_the_warm_server_with_its_output_and_exit_code(launcher):
    cold = _dbt(launcher, "--version")
    with warm_dbt() as address:
        assert os.environ[SERVER_ENV] == address
        # an abstract socket: no file that a killed run could leave behind
        assert address.startswith("@retain-dbt-"), address
        server = _server_pid()
        warm = _dbt(launcher, "--version")
        # a launcher that connects and leaves without a command does not stop the server
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
            gone.connect(_socket_name(address))
        # a command dbt refuses: its usage error and exit code come through the fork unchanged
        bad = _dbt(launcher, "no-such-command")
        assert alive(server), "the server died of a launcher that left"
        cold_bad = _dbt(launcher, "no-such-command", RETAIN_DBT_SERVER="")
    assert SERVER_ENV not in os.environ
    assert warm.returncode == cold.returncode == 0, warm.stderr
    assert "Core:" in warm.stdout and warm.stdout == cold.stdout
    assert bad.returncode == cold_bad.returncode == 2
    assert "No such command" in bad.stdout + bad.stderr
    # the server is gone with the job
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{server}").exists() and comm(server) == b"retain-dbt":
        time.sleep(0.1)
    assert not Path(f"/proc/{server}").exists() or comm(server) != b"retain-dbt"


def test_on_spark_the_server_has_dbt_spark_and_its_connect_client_imported(launcher, monkeypatch):
    """A Spark job's dbt steps fork a server that imported dbt-spark and pyspark's Connect
    client too; pyspark's import-time warnings stay out of dbt's output."""
    monkeypatch.setenv("RETAIN_ENGINE", "spark")
    cold = _dbt(launcher, "--version", RETAIN_DBT_SERVER="")
    with warm_dbt():
        server = _server_pid()
        warm = _dbt(launcher, "--version")  # answered once the server's imports are done
        maps = Path(f"/proc/{server}/maps").read_text()
    assert warm.returncode == cold.returncode == 0, warm.stderr
    assert "spark:" in warm.stdout and warm.stdout == cold.stdout
    assert "cygrpc" in maps, "the server did not import pyspark's Spark Connect client (gRPC)"
    assert "Warning" not in warm.stderr, warm.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_the_server_runs_nothing_for_another_user(launcher):
    """The abstract socket has no file mode, so the server checks who connects: a process of
    another user gets no dbt (its launcher would start dbt itself, as that user)."""
    with warm_dbt():
        server = _server_pid()
        _dbt(launcher, "--version")  # the server is up and serving
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # a process of user `nobody` asks the server for a dbt, as a launcher would
            try:
                os.setgid(65534)
                os.setuid(65534)
                os.write(write, repr(run_forked(["dbt", "--version"])).encode())
            finally:
                os._exit(0)
        os.close(write)
        answer = os.read(read, 100).decode()
        os.waitpid(child, 0)
        os.close(read)
        forks = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and ppid(int(e.name)) == server]
        owner = _dbt(launcher, "--version")
    assert answer == "None", answer  # refused: no dbt, no exit code
    assert forks == [], "the server forked a dbt for another user"
    assert owner.returncode == 0 and "Core:" in owner.stdout, owner.stderr  # and still serves its own


def test_dbt_starts_by_itself_when_the_server_is_gone(launcher):
    with warm_dbt():
        os.kill(_server_pid(), signal.SIGKILL)
        time.sleep(0.2)
        done = _dbt(launcher, "--version")
    assert done.returncode == 0, done.stderr
    assert "Core:" in done.stdout
    assert "warm dbt did not answer; starting dbt itself" in done.stderr  # the step's log says so


def test_a_killed_launcher_takes_its_dbt_with_it(launcher, tmp_path):
    """`kill -9` of the step's launcher (or of its process group) leaves no forked dbt behind."""
    project = tmp_path / "project"
    project.mkdir()
    # a dbt project whose only macro runs a query of minutes, so dbt keeps running until killed
    (project / "dbt_project.yml").write_text("name: wait\nversion: '1.0.0'\nprofile: wait\nmacro-paths: ['macros']\n")
    (project / "macros").mkdir()
    (project / "macros" / "wait.sql").write_text(
        "{% macro wait() %}{% do run_query('select count(*) from range(1000000000000)') %}{% endmacro %}\n"
    )
    (project / "profiles.yml").write_text(
        f"wait:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      threads: 1\n"
        f"      path: '{tmp_path / 'w.duckdb'}'\n      settings:\n        threads: 1\n"
    )
    with warm_dbt():
        server = _server_pid()
        env = {**os.environ, "RETAIN_DBT_PARENT_PID": str(os.getpid())}
        proc = subprocess.Popen(
            [launcher, "run-operation", "wait", "--project-dir", str(project), "--profiles-dir", str(project)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        forked: list[int] = []
        while time.monotonic() < deadline and not forked:
            forked = [
                int(e.name)
                for e in Path("/proc").iterdir()
                if e.name.isdigit() and comm(int(e.name)) == b"dbt" and ppid(int(e.name)) == server
            ]
            time.sleep(0.1)
        assert forked, "the launcher's dbt did not start as a fork of the server"
        time.sleep(3)  # dbt has parsed the project and runs the query
        assert proc.poll() is None and all(alive(p) for p in forked), "dbt ended by itself"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in forked):
            time.sleep(0.1)
        assert not any(alive(p) for p in forked), "dbt outlived its launcher"
