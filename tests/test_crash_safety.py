"""Crash safety of runs, with real processes: `retain run` killed with SIGKILL, SIGTERM, SIGINT.

Every test starts the real `retain` command as a subprocess on a small generated shop in its
own data folder, and kills it with real signals at a known point: inside ingest and inside
publish (the test hook `RETAIN_TEST_PAUSE_AT` parks the run there, holding the writer slot),
and while its `dbt build` child is running (found in /proc). Nothing of retain is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests import procs

CUSTOMERS = 300
RETAIN = str(Path(sys.executable).with_name("retain"))
#: Upper bound for one run of the small shop on a busy 2-core machine (about 40 s when idle).
RUN_TIMEOUT = 600


# ---------------------------------------------------------------- helpers


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_") and k != "DAGSTER_HOME"}
    env.update(RETAIN_DATA_DIR=str(data_dir), RETAIN_WAIT_REPORT_SECONDS="1", **extra)
    return env


def _start(data_dir: Path, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [RETAIN, *args], env=_env(data_dir, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"`retain` did not finish within {timeout} s\n{out[-3000:]}\n{err[-3000:]}")
    return proc.returncode, out, err


def _retain(data_dir: Path, *args: str, timeout: float = RUN_TIMEOUT, **extra: str) -> tuple[int, str, str]:
    return _finish(_start(data_dir, *args, **extra), timeout)


def dbt_processes(data_dir: Path) -> list[int]:
    """Live dbt processes working for this data folder (their environment names it).

    Those are: the launcher of a dbt step (`.../dagster/bin/dbt`), dbt itself (a `dbt` command,
    or a fork of the job's warm dbt, which names itself `dbt`), and the warm dbt server
    (`retain-dbt`, `pipelines.dbt_server`).
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            comm = (entry / "comm").read_bytes().strip()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        is_dbt = comm in (b"dbt", b"retain-dbt") or any(part.endswith(b"/dbt") for part in cmdline[:2])
        if is_dbt and f"RETAIN_DATA_DIR={data_dir}".encode() in environ and procs.alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _is_running_dbt(pid: int) -> bool:
    """dbt itself, not the step's launcher (`dagster/bin/dbt`) nor the idle warm dbt server."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_bytes().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return comm != b"retain-dbt" and b"dagster/bin/dbt" not in cmdline


def _wait_for(condition, what: str, proc: subprocess.Popen | None = None, timeout: float = RUN_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"`retain` ended (code {proc.returncode}) before {what}\n{out[-2000:]}\n{err[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _parent_comm(pid: int) -> bytes | None:
    parent = procs.ppid(pid)
    return procs.comm(parent) if parent else None


def _wait_for_dbt(data_dir: Path, proc: subprocess.Popen) -> list[int]:
    """Wait until the run's `dbt build` really runs (handed over by its launcher), then a bit more."""

    def running() -> list[int]:
        return [p for p in dbt_processes(data_dir) if _is_running_dbt(p)]

    pids = _wait_for(running, "dbt to start", proc)
    time.sleep(1.5)  # dbt is connected to the warehouse and building
    return pids


def _kill9_at_pause(data_dir: Path, point: str, *args: str) -> subprocess.Popen:
    proc = _start(data_dir, "run", *args, RETAIN_TEST_PAUSE_AT=point)
    marker = data_dir / f"paused-{point}"
    _wait_for(marker.exists, f"the run to pause in {point}", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    marker.unlink()
    return proc


def _counts(data_dir: Path, schemas=("raw", "marts")) -> dict[str, int]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_schema in (select unnest(?)) "
            "and table_type = 'BASE TABLE' order by 1, 2",
            [list(schemas)],
        ).fetchall()
        return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in tables}


def _dagster_runs(data_dir: Path) -> list[dict]:
    """Every run in the data folder's Dagster storage: id, job, status, tags and what its outreach steps did.

    Read in a separate interpreter, like any other tool would, with the folder's environment.
    """
    code = r"""
import json, dagster as dg
from pipelines.core.config import export_environment
export_environment()
from pipelines.runs import WRITER_POOL
with dg.DagsterInstance.get() as instance:
    out = []
    for run in instance.get_runs():
        batches = {}
        for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            mat = r.asset_materialization
            if "outreach_run_id" in mat.metadata:
                batches[mat.asset_key.to_user_string()] = str(mat.metadata["outreach_run_id"].value)
        out.append({"run_id": run.run_id, "job": run.job_name, "status": run.status.value,
                    "tags": dict(run.tags), "batches": batches})
    info = instance.event_log_storage.get_concurrency_info(WRITER_POOL)
    print(json.dumps({"runs": out, "claimed": [s.run_id for s in info.claimed_slots],
                      "pending": [p.run_id for p in info.pending_steps]}))
"""
    done = subprocess.run([sys.executable, "-c", code], env=_env(data_dir), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _new_shop(tmp_path_factory, name: str) -> Path:
    data_dir = tmp_path_factory.mktemp(name) / "data"
    code, out, err = _retain(data_dir, "generate", "--customers", str(CUSTOMERS), "--seed", "11")
    assert code == 0, err
    return data_dir


# ---------------------------------------------------------------- kill -9 in every stage


@pytest.fixture(scope="module")
def crashed(tmp_path_factory, request):
    """A shop whose runs were killed with SIGKILL in ingest, dbt and publish, then run twice at once.

    Its landing files are generated as the session's `cli_shop`'s are (same size and seed), and
    that shop's one clean `retain run` is the comparison. It is asked for only at the end, so
    another test process can build it meanwhile.
    """
    from tests.conftest import CLI_SHOP_CUSTOMERS, CLI_SHOP_SEED

    data_dir = tmp_path_factory.mktemp("crash") / "data"
    code, _, err = _retain(data_dir, "generate", "--customers", str(CLI_SHOP_CUSTOMERS), "--seed", str(CLI_SHOP_SEED))
    assert code == 0, err
    seen: dict = {}

    _kill9_at_pause(data_dir, "ingest")

    proc = _start(data_dir, "run")
    dbt = _wait_for_dbt(data_dir, proc)
    seen["dbt_parents"] = [_parent_comm(pid) for pid in dbt]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and dbt_processes(data_dir):
        time.sleep(0.1)
    seen["dbt_after_kill"] = dbt_processes(data_dir)
    seen["dbt_pids"] = dbt
    code, seen["status_after_dbt_kill"], _ = _retain(data_dir, "status")

    _kill9_at_pause(data_dir, "publish")
    seen["temporaries_after_publish_kill"] = sorted(p.name for p in (data_dir / "published").glob(".snapshot-*"))

    # the next runs: two at once (the daily job: the killed run trained the model before publishing)
    started = time.monotonic()
    first = _start(data_dir, "run", "--job", "daily_job")
    time.sleep(0.5)
    second = _start(data_dir, "run", "--job", "daily_job")
    seen["final"] = [_finish(first), _finish(second)]
    seen["final_seconds"] = time.monotonic() - started
    seen["temporaries_after_final"] = sorted(p.name for p in (data_dir / "published").glob(".snapshot-*"))
    seen["runs"] = _dagster_runs(data_dir)
    seen["status"] = json.loads((data_dir / "published" / "status.json").read_text())
    clean_dir = request.getfixturevalue("cli_shop")
    return data_dir, clean_dir, seen


def test_the_next_run_after_kill_9_completes_without_help(crashed):
    data_dir, _, seen = crashed
    for code, out, err in seen["final"]:
        assert code == 0, f"{out[-2000:]}\n{err[-3000:]}"
        assert "daily_job succeeded" in out
        assert "Traceback" not in err
    assert seen["final_seconds"] < RUN_TIMEOUT
    runs = seen["runs"]
    # the killed runs were marked failed by the runs after them, and nothing holds the writer slot
    statuses = [r["status"] for r in runs["runs"]]
    assert statuses.count("FAILURE") == 3, runs["runs"]
    assert statuses.count("SUCCESS") == 2
    assert not runs["claimed"] and not runs["pending"]
    killed = [r for r in runs["runs"] if r["status"] == "FAILURE"]
    assert all(r["tags"]["retain/pid"].isdigit() and r["tags"]["retain/process_start"] for r in killed)
    # status.json keeps what was cleaned up
    recovered = seen["status"]["recovered"]
    assert {r["run_id"] for r in recovered} == {r["run_id"] for r in killed}
    assert any(r["step"] == "retain_dbt_models" for r in recovered)
    assert "cleaned up" in seen["status_after_dbt_kill"] and "retain_dbt_models" in seen["status_after_dbt_kill"]


def test_nothing_is_lost_or_duplicated(crashed):
    data_dir, clean_dir, seen = crashed
    # the outreach outcome marts hold a row per outreach run and arm: the crashed shop ran the
    # lists more often than the clean one, so they differ by design
    per_run = {"marts.outreach_outcomes", "marts.outreach_lift", "marts.outreach_first_listing_outcomes"}
    crashed_counts = {k: v for k, v in _counts(data_dir).items() if k not in per_run}
    assert crashed_counts == {k: v for k, v in _counts(clean_dir).items() if k not in per_run}
    assert crashed_counts["marts.fct_orders"] > 0


def test_no_dbt_survives_kill_9_of_retain(crashed):
    _, _, seen = crashed
    assert seen["dbt_pids"], "the run was killed while dbt was running"
    # dbt was a fork of the job's warm dbt server (pipelines.dbt_server), which died too
    assert seen["dbt_parents"] == [b"retain-dbt"] * len(seen["dbt_pids"]), seen["dbt_parents"]
    assert seen["dbt_after_kill"] == [], "dbt kept running after retain was killed"


def test_a_killed_publish_leaves_temporaries_that_the_next_publish_removes(crashed):
    _, _, seen = crashed
    assert any(n.endswith(".duckdb.tmp") for n in seen["temporaries_after_publish_kill"])
    assert seen["temporaries_after_final"] == []


# ---------------------------------------------------------------- SIGTERM, SIGINT


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_the_run_and_its_dbt(tmp_path_factory, sig):
    data_dir = _new_shop(tmp_path_factory, f"stop-{sig.name}")
    proc = _start(data_dir, "run")
    _wait_for_dbt(data_dir, proc)
    sent = time.monotonic()
    os.kill(proc.pid, sig)
    code, out, err = _finish(proc, timeout=30)
    assert time.monotonic() - sent < 20
    assert code == 128 + sig, err[-3000:]
    assert f"{sig.name} received" in err
    assert "Traceback" not in err
    time.sleep(0.5)
    assert dbt_processes(data_dir) == []
    status = json.loads((data_dir / "published" / "status.json").read_text())
    assert status["last_run"]["success"] is False
    assert "stopped by a signal" in status["last_run"]["error"]
    runs = _dagster_runs(data_dir)
    assert [r["status"] for r in runs["runs"]] == ["FAILURE"]
    assert not runs["claimed"] and not runs["pending"]


def test_two_runs_at_once_each_export_their_own_list(crashed):
    _, _, seen = crashed
    runs = [r for r in seen["runs"]["runs"] if r["job"] == "daily_job" and r["status"] == "SUCCESS"]
    assert len(runs) == 2
    for run in runs:
        batches = run["batches"]
        assert batches["exports/crm_exports"] == batches["exports/outreach_lists"], run
    assert runs[0]["batches"]["exports/outreach_lists"] != runs[1]["batches"]["exports/outreach_lists"]


# ---------------------------------------------------------------- ingest during a run


@pytest.fixture(scope="module")
def built(crashed):
    """The crash test's folder: built, with a trained model (for daily runs)."""
    data_dir, _, seen = crashed
    assert all(code == 0 for code, _, _ in seen["final"])
    return data_dir


def test_ingest_during_a_runs_dbt_step_waits_then_loads(built, tmp_path):
    # one more day of files, made aside and dropped into landing while the run's dbt step runs
    scratch = tmp_path / "landing"
    shutil.copytree(built / "landing", scratch)
    code, out, err = _retain(built, "generate", "--next-day", "--out", str(scratch))
    assert code == 0, err
    new_files = [p for p in scratch.rglob("increment-*") if p.is_file()]
    assert new_files
    run = _start(built, "run", "--job", "daily_job")
    _wait_for_dbt(built, run)
    for path in new_files:
        target = built / "landing" / path.relative_to(scratch)
        shutil.copyfile(path, target.with_name(f".{target.name}.part"))
        os.replace(target.with_name(f".{target.name}.part"), target)
    code, out, err = _retain(built, "ingest")
    assert code == 0, f"{out}\n{err}"
    assert "Traceback" not in err
    assert "waiting" in err and "writer slot" in err, err
    assert "daily_job" in err and "retain_dbt_models" in err, err
    code, out_run, err_run = _finish(run)
    assert code == 0, err_run[-3000:]
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        loaded = con.execute(
            "select count(*) from raw._loads where file_path like '%increment-%' and status = 'loaded'"
        ).fetchone()[0]
    assert loaded == len(new_files)


# ---------------------------------------------------------------- the pieces, quickly


def test_stop_messages_go_to_the_terminal_not_to_a_captured_step_log(capfd):
    """While a step runs Dagster points fd 2 at the step's log; retain's own lines (a signal's
    'received: stopping') go to the terminal copy `run_job` keeps for progress, so they are
    never lost when the process exits at once."""
    import io

    from pipelines import progress
    from pipelines.runs import _err

    terminal, saved = io.StringIO(), progress.stream()
    progress.set_stream(terminal)
    try:
        _err("SIGTERM received: stopping")
    finally:
        progress.set_stream(saved)
    assert terminal.getvalue() == "retain: SIGTERM received: stopping\n"
    assert "SIGTERM" not in capfd.readouterr().err


def test_process_tags_tell_a_live_process_from_a_dead_or_reused_pid():
    from pipelines.runs import TAG_PROCESS_START, process_alive, process_tags

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tags = process_tags(child.pid)
        assert process_alive(tags) is True
        assert process_alive({**tags, TAG_PROCESS_START: tags[TAG_PROCESS_START] + "0"}) is False  # pid reused
    finally:
        child.kill()
        child.wait()
    assert process_alive(tags) is False
    assert process_alive({}) is None
    assert process_alive({**tags, "retain/host": "another-host"}) is None


def test_leftover_snapshot_temporaries_go_unless_a_live_process_writes_them(tmp_path):
    from pipelines.publish import remove_stale_temporaries

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    names = {
        "dead": f".snapshot-20261206T100000000000Z-{dead.pid}.duckdb.tmp",
        "dead_wal": f".snapshot-20261206T100000000000Z-{dead.pid}.duckdb.tmp.wal",
        "live": f".snapshot-20261206T100001000000Z-{live.pid}.duckdb.tmp",
        "old_closed": ".snapshot-20261206T090000000000Z.duckdb.tmp",
        "old_open": ".snapshot-20261206T090001000000Z.duckdb.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "snapshot-20261206T080000000000Z.duckdb").write_bytes(b"x")  # a real snapshot
    with open(tmp_path / names["old_open"], "rb"):
        try:
            removed = {p.name for p in remove_stale_temporaries(tmp_path)}
        finally:
            live.kill()
            live.wait()
    assert removed == {names["dead"], names["dead_wal"], names["old_closed"]}
    assert (tmp_path / names["live"]).exists() and (tmp_path / names["old_open"]).exists()
    assert (tmp_path / "snapshot-20261206T080000000000Z.duckdb").exists()


def test_exports_take_their_own_runs_batch_even_when_another_run_built_a_newer_one(tmp_path, monkeypatch):
    """Deterministic twin of the two-runs test: run A builds lists, run B builds newer ones, then A's exports."""
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._core.utils import make_new_run_id

    from pipelines.defs.outreach import asset_checks, assets
    from pipelines.defs.outreach.assets import CRM_EXPORTS_KEY, OUTREACH_LISTS_KEY, run_outreach_batch
    from pipelines.defs.resources import RESOURCES
    from tests.test_exports import outreach_data_dir

    outreach_data_dir(tmp_path, monkeypatch)
    everything = [*assets, *asset_checks]

    def batch(result, node: str) -> str:
        return str(result.asset_materializations_for_node(node)[0].metadata["outreach_run_id"].value)

    with dg.DagsterInstance.ephemeral() as instance:
        run_a = dg.materialize(everything, selection=[OUTREACH_LISTS_KEY], instance=instance, resources=RESOURCES)
        run_b = dg.materialize(everything, instance=instance, resources=RESOURCES)
        a_batch, b_batch = batch(run_a, "exports__outreach_lists"), batch(run_b, "exports__outreach_lists")
        assert a_batch != b_batch
        assert batch(run_b, "exports__crm_exports") == b_batch
        assert run_outreach_batch(instance, instance.get_run_by_id(run_a.run_id)) == a_batch
        # A's exports step, re-executed in a child run (Dagster's retry from the failed step)
        retry = DagsterRun(
            job_name=run_a.dagster_run.job_name,
            run_id=make_new_run_id(),
            parent_run_id=run_a.run_id,
            root_run_id=run_a.run_id,
        )
        instance.add_run(retry)
        assert run_outreach_batch(instance, retry) == a_batch
        # a run of the exports alone exports the last outreach batch built (B's)
        exports_only = dg.materialize(everything, selection=[CRM_EXPORTS_KEY], instance=instance, resources=RESOURCES)
        assert batch(exports_only, "exports__crm_exports") == b_batch


def test_a_writer_outside_dagster_is_waited_for_and_recovered_when_killed(tmp_path):
    """`retain ingest` waits for another holder of the writer slot, and takes over from a dead one."""
    data_dir = tmp_path / "data"
    hold = (
        "import sys, time\n"
        "from pipelines.core.config import export_environment\n"
        "export_environment()\n"
        "from pipelines.runs import writer_slot\n"
        "with writer_slot('test holder'):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()  # until the test says so (or forever, for the one killed)\n"
    )

    def holder() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", hold], env=_env(data_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "held"
        return proc

    # the holder lets go only once `retain ingest` said it waits, however slow the machine
    polite = holder()
    ingest = _start(data_dir, "ingest")
    said = ""
    while "waiting" not in said and (line := ingest.stderr.readline()):
        said += line
    polite.communicate("release\n", timeout=30)
    assert polite.returncode == 0
    code, out, err = _finish(ingest, timeout=120)
    err = said + err
    assert code == 0, err
    assert "waiting" in said and "`test holder`" in said, err
    assert "got the warehouse writer slot" in err, err

    dead = holder()
    os.kill(dead.pid, signal.SIGKILL)
    dead.wait()
    started = time.monotonic()
    code, out, err = _retain(data_dir, "ingest", timeout=120)
    assert code == 0, err
    assert "died; marked failed and its writer slot freed" in err, err
    assert time.monotonic() - started < 60
    assert not list((data_dir / "dagster" / "holders").iterdir())
