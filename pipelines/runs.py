"""Crash safety of runs: who is running, is that process alive, recover dead runs, stop cleanly.

Every writer of the warehouse holds a slot of the Dagster pool `duckdb_writer` (one slot,
`dagster.yaml`). A process that dies (`kill -9`, out of memory, power) cannot free its slot,
and an in-process Dagster run whose process is gone stays STARTED for ever: without help the
next run would wait for that slot for ever. So:

- Every run `retain` starts records its process as run tags (`retain/pid`, `retain/host`,
  `retain/process_start`: the boot id and the kernel's start time of the process, so a pid
  reused after a crash is not mistaken for the run's process).
- `recover_dead_runs` (called before every run, every writer command and `retain status`,
  and periodically while a run waits for the writer slot) finds runs that are not finished
  but whose process is gone, marks them failed in Dagster (`report_run_failed`), frees their
  concurrency slots (`free_concurrency_slots_for_run`, what the Dagster UI's "free slots"
  does) and records what it cleaned up in `published/status.json`. Slots held by a finished
  run, or by a `retain` command outside Dagster whose process is gone, are freed too.
- Commands that write outside a Dagster run (`retain ingest`, `train`, `score`) take the same
  pool slot through `writer_slot`, as a holder named `retain-cli-<uuid>` whose process is
  described in `<dagster storage>/holders/<holder>.json`.
- Whoever waits for the slot says so on stderr, every `WAIT_REPORT_SECONDS`: which run holds
  it (job, pid, step, since when).
- `StopGuard` makes SIGTERM and SIGINT always stop the process, even while the main thread
  is busy in DuckDB or waiting for a slot: the signal is read by a thread from Python's
  wakeup fd, the registered child process groups (dbt) are killed, the run is marked failed
  and its slots freed, then the process exits. dbt itself runs in its own process group and
  dies with its parent (`dbt_launcher`: `prctl(PR_SET_PDEATHSIG, SIGKILL)` before exec), so
  even a `kill -9` of retain leaves no dbt writing to the warehouse.

Processes on another host cannot be checked: their runs are left alone (and reported). A run
without process tags that ran in-process (a retain older than the tags) counts as dead after
`RETAIN_SILENT_RUN_MINUTES` (60) without an event; runs launched by the Dagster daemon or UI
are left to Dagster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.core.config import settings

#: The one pool every warehouse writer shares (`dagster.yaml` limits every pool to one slot).
WRITER_POOL = "duckdb_writer"
TAG_PID = "retain/pid"
TAG_HOST = "retain/host"
TAG_PROCESS_START = "retain/process_start"
#: Prefix of the holder ids of writers outside a Dagster run (`writer_slot`).
CLI_HOLDER_PREFIX = "retain-cli-"
#: How often a waiting writer says who it waits for (and checks that the holder is alive).
WAIT_REPORT_SECONDS = float(os.environ.get("RETAIN_WAIT_REPORT_SECONDS", "10"))
#: Dead runs kept in status.json's `recovered` list.
KEEP_RECOVERED = 10
#: A run that recorded no process (started by a retain older than these tags) and ran in-process
#: counts as dead after this many minutes without any event.
SILENT_RUN_MINUTES = float(os.environ.get("RETAIN_SILENT_RUN_MINUTES", "60"))
#: Test hook: `RETAIN_TEST_PAUSE_AT=<point>` makes a run stop at that point (see `pause_point`).
PAUSE_ENV = "RETAIN_TEST_PAUSE_AT"


def _err(message: str) -> None:
    """Say `message` on the terminal's stderr, also while Dagster captures a step's output.

    During each step Dagster points file descriptor 2 at the step's compute log and a `tail`
    process copies it to the terminal a moment later; a line written there just before the
    process exits (a signal stopping the run) could be lost. `run_job` keeps a copy of the
    terminal's stderr for its progress lines (`pipelines.progress`): use it when there is one.
    """
    progress = sys.modules.get("pipelines.progress")  # imported by run_job; not imported here (Dagster)
    stream = progress.stream() if progress is not None else sys.__stderr__
    print(f"retain: {message}", file=stream, flush=True)


# ---------------------------------------------------------------- processes


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def process_start(pid: int) -> str | None:
    """`<boot id>:<start time in clock ticks>` of a live process, None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie has finished: its parent just did not reap it yet
        return None
    return f"{_boot_id()}:{fields[19]}"


def process_tags(pid: int | None = None) -> dict[str, str]:
    """Run tags that identify this process (or `pid`) beyond doubt on this host."""
    pid = pid or os.getpid()
    return {TAG_PID: str(pid), TAG_HOST: socket.gethostname(), TAG_PROCESS_START: process_start(pid) or ""}


def process_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process the tags describe still runs: None when unknown (no tags, other host)."""
    pid = tags.get(TAG_PID)
    if not pid or tags.get(TAG_HOST) != socket.gethostname():
        return None
    started = process_start(int(pid))
    return started is not None and started == tags.get(TAG_PROCESS_START)


# ---------------------------------------------------------------- runs


@dataclass
class RunInfo:
    """A run that is not finished (or was just recovered), as `retain status` shows it."""

    run_id: str
    job: str
    status: str
    pid: str | None
    host: str | None
    started_at: str | None
    step: str | None
    alive: bool | None

    def describe(self) -> str:
        """One line: run, job, process, step and since when."""
        where = f"pid {self.pid}" + ("" if self.host == socket.gethostname() else f" on {self.host}")
        proc = where if self.pid else "no process recorded"
        step = f", step {self.step}" if self.step else ""
        since = f", since {self.started_at}" if self.started_at else ""
        if self.run_id.startswith(CLI_HOLDER_PREFIX):
            return f"`{self.job}` ({proc}{since})"
        return f"run {self.run_id[:8]} ({self.job}, {proc}{step}{since})"


def _unfinished_statuses():
    from dagster import DagsterRunStatus

    return [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
            DagsterRunStatus.CANCELING]


def current_step(instance, run_id: str) -> str | None:
    """The step the run started last and has not finished, if any."""
    from dagster import DagsterEventType

    open_steps: dict[str, None] = {}
    kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    for record in instance.all_logs(run_id, of_type=kinds):
        event = record.dagster_event
        if event.event_type == DagsterEventType.STEP_START:
            open_steps[event.step_key] = None
        else:
            open_steps.pop(event.step_key, None)
    return next(reversed(open_steps), None) if open_steps else None


def _started_at(instance, run) -> str | None:
    record = instance.get_run_record_by_id(run.run_id)
    when = (record.start_time or record.create_timestamp.timestamp()) if record else None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds") if when else None


def _run_alive(instance, run) -> bool | None:
    """Whether the run's process runs; for a run without process tags, a guess from its silence.

    Such a run either comes from a retain older than the process tags (executed in-process:
    no remote origin) or was launched by the Dagster daemon or UI (which watch their own
    runs). The former counts as dead after SILENT_RUN_MINUTES without an event.
    """
    if run.tags.get(TAG_PID):
        return process_alive(run.tags)
    if run.remote_job_origin is not None:
        return None
    last = instance.get_records_for_run(run.run_id, limit=1, ascending=False).records
    when = last[0].timestamp if last else (instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp())
    return False if time.time() - when > SILENT_RUN_MINUTES * 60 else None


def run_info(instance, run) -> RunInfo:
    """What `retain status` and a waiting writer say about a run."""
    return RunInfo(
        run_id=run.run_id,
        job=run.job_name,
        status=run.status.value,
        pid=run.tags.get(TAG_PID),
        host=run.tags.get(TAG_HOST),
        started_at=_started_at(instance, run),
        step=current_step(instance, run.run_id),
        alive=_run_alive(instance, run),
    )


def active_runs(instance) -> list[RunInfo]:
    """Every run of this instance that is not finished, oldest first."""
    from dagster import RunsFilter

    runs = instance.get_runs(filters=RunsFilter(statuses=_unfinished_statuses()))
    return [run_info(instance, run) for run in reversed(list(runs))]


# ---------------------------------------------------------------- CLI holders


def _holders_dir() -> Path:
    return settings().dagster_storage / "holders"


def _holder_file(holder_id: str) -> Path:
    return _holders_dir() / f"{holder_id}.json"


def _read_holder(holder_id: str) -> dict | None:
    try:
        return json.loads(_holder_file(holder_id).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def holder_info(instance, holder_id: str) -> RunInfo:
    """A slot holder, be it a Dagster run or a `retain` command outside Dagster."""
    run = instance.get_run_by_id(holder_id)
    if run is not None:
        return run_info(instance, run)
    data = _read_holder(holder_id) or {}
    return RunInfo(
        run_id=holder_id,
        job=data.get("purpose", "unknown writer"),
        status="STARTED" if data else "UNKNOWN",
        pid=data.get(TAG_PID),
        host=data.get(TAG_HOST),
        started_at=data.get("since"),
        step=None,
        alive=process_alive(data) if data else False,
    )


def pool_holders(instance, pool: str = WRITER_POOL) -> list[RunInfo]:
    """Who holds a slot of `pool` now."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    return [holder_info(instance, run_id) for run_id in sorted(info.active_run_ids)]


# ---------------------------------------------------------------- recovery


@contextlib.contextmanager
def _recovery_lock() -> Iterator[None]:
    """One recovery at a time per Dagster storage (two processes would report a death twice)."""
    path = settings().dagster_storage / "recover.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def recover_dead_runs(instance, say: Callable[[str], None] | None = _err) -> list[RunInfo]:
    """Mark failed every unfinished run whose process is gone and free every slot nobody alive holds.

    Returns the runs (and writer holders) cleaned up; each is also recorded in status.json.
    """
    storage = instance.event_log_storage
    recovered: list[RunInfo] = []
    with _recovery_lock():
        for info in active_runs(instance):
            if info.alive is not False:
                continue
            run = instance.get_run_by_id(info.run_id)
            message = (
                f"The process that ran this run (pid {info.pid} on {info.host}) is gone "
                f"(killed{', during step ' + info.step if info.step else ''}); marked failed and its "
                f"concurrency slots freed by retain (pid {os.getpid()})."
            )
            instance.report_run_failed(run, message=message)
            storage.free_concurrency_slots_for_run(info.run_id)
            recovered.append(info)
        # slots (claimed or pending) whose holder is finished or dead
        for pool in storage.get_concurrency_keys():
            concurrency = storage.get_concurrency_info(pool)
            holders = concurrency.active_run_ids | {p.run_id for p in concurrency.pending_steps}
            for holder_id in holders:
                run = instance.get_run_by_id(holder_id)
                if run is not None:
                    if run.is_finished:
                        storage.free_concurrency_slots_for_run(holder_id)
                    continue
                info = holder_info(instance, holder_id)
                if info.alive is False:
                    storage.free_concurrency_slots_for_run(holder_id)
                    _holder_file(holder_id).unlink(missing_ok=True)
                    if holder_id in concurrency.active_run_ids:
                        recovered.append(info)
    if recovered:
        _record_recovered(recovered)
        for info in recovered:
            if say is not None:
                say(f"{info.describe()} died; marked failed and its writer slot freed")
    return recovered


def _record_recovered(recovered: list[RunInfo]) -> None:
    from pipelines.publish import read_run_status, record_run_status, update_run_status

    published = settings().published
    now = datetime.now(UTC).isoformat()
    entries = [{**asdict(info), "recovered_at": now} for info in recovered]
    data = read_run_status(published)
    update_run_status(published, recovered=(entries + list(data.get("recovered", [])))[:KEEP_RECOVERED])
    last = data.get("last_run") or {}
    for info in recovered:
        if info.run_id.startswith(CLI_HOLDER_PREFIX) or info.run_id == last.get("run_id"):
            continue
        if last.get("started_at") and info.started_at and info.started_at < last["started_at"]:
            continue
        step = f" during step {info.step}" if info.step else ""
        record_run_status(published, {
            "run_id": info.run_id, "job": info.job, "success": False, "started_at": info.started_at,
            "finished_at": now, "error": f"the process (pid {info.pid}) died{step}; cleaned up at {now}",
            "failed_checks": [], "failed_steps": [info.step] if info.step else [], "stages": [],
        })


# ---------------------------------------------------------------- waiting for the writer slot


class SlotWatcher:
    """While a run's steps wait for the writer slot: say who holds it, and recover dead holders."""

    def __init__(self, instance, run_id: str, every: float = WAIT_REPORT_SECONDS, pool: str = WRITER_POOL):
        self.instance, self.run_id, self.every, self.pool = instance, run_id, every, pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="retain-slot-watcher", daemon=True)
        self._said: float | None = None
        self._first_seen: dict[str, float] = {}  # Dagster re-enqueues a blocked step now and then

    def __enter__(self) -> SlotWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(Exception):  # a report must never break the run
                self.check()

    def check(self) -> None:
        """Report (every `every` seconds) and recover dead holders while a step of this run waits for the pool."""
        info = self.instance.event_log_storage.get_concurrency_info(self.pool)
        waiting = [p for p in info.pending_steps if p.run_id == self.run_id and not p.assigned_timestamp]
        if not waiting or self.run_id in info.active_run_ids:  # none, or waiting for its own other step
            self._said = None
            self._first_seen.clear()
            return
        since = self._first_seen.setdefault(waiting[0].step_key, waiting[0].enqueued_timestamp.timestamp())
        waited = time.time() - since
        if waited < 2 or (self._said is not None and time.monotonic() - self._said < self.every):
            return  # a slot handed over a moment ago is normal: speak only if the wait lasts
        self._said = time.monotonic()
        holders = [h for h in pool_holders(self.instance, self.pool) if h.run_id != self.run_id]
        if any(h.alive is False for h in holders):
            recover_dead_runs(self.instance)
            return
        if not holders:
            return  # free now: Dagster's next claim (it retries within 15 s) takes it
        who = "; ".join(h.describe() for h in holders)
        _err(f"step {waiting[0].step_key} waiting {waited:.0f} s for the warehouse writer slot "
             f"(pool {self.pool}), held by {who}")


def _ensure_pool(storage, pool: str) -> None:
    if pool not in {p.name for p in storage.get_pool_limits()}:
        storage.initialize_concurrency_limit_to_default(pool)


@contextlib.contextmanager
def writer_slot(purpose: str, every: float = WAIT_REPORT_SECONDS, poll: float = 0.5) -> Iterator[None]:
    """Hold the warehouse writer slot (the Dagster pool every writer step uses) outside a Dagster run.

    Waits politely for a running job's writer step, saying on stderr whom it waits for; a dead
    holder is recovered rather than waited for. The slot is freed on exit, and by
    `recover_dead_runs` if this process dies.
    """
    import dagster as dg

    holder_id = f"{CLI_HOLDER_PREFIX}{uuid.uuid4().hex[:12]}"
    step = purpose.replace(" ", "_")
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        recover_dead_runs(instance)
        _holders_dir().mkdir(parents=True, exist_ok=True)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        _holder_file(holder_id).write_text(json.dumps({**process_tags(), "purpose": purpose, "since": since}))
        guard = StopGuard.current()
        release = lambda: _release(storage, holder_id, step)  # noqa: E731
        if guard is not None:
            guard.on_stop(release)
        try:
            _ensure_pool(storage, WRITER_POOL)
            started, said = time.monotonic(), time.monotonic()
            while not storage.claim_concurrency_slot(WRITER_POOL, holder_id, step).is_claimed:
                if time.monotonic() - said >= every:
                    said = time.monotonic()
                    holders = pool_holders(instance)
                    if any(h.alive is False for h in holders):
                        recover_dead_runs(instance)
                        continue
                    who = "; ".join(h.describe() for h in holders) or "nobody: taking it now"
                    _err(f"`{purpose}` waiting {said - started:.0f} s for the warehouse writer slot, held by {who}")
                time.sleep(poll)
            if time.monotonic() - started >= every:
                _err(f"`{purpose}` got the warehouse writer slot after {time.monotonic() - started:.0f} s")
            yield
        finally:
            release()
            if guard is not None:
                guard.forget(release)


def _release(storage, holder_id: str, step: str) -> None:
    storage.free_concurrency_slot_for_step(holder_id, step)
    _holder_file(holder_id).unlink(missing_ok=True)


# ---------------------------------------------------------------- stopping on signals


class StopGuard:
    """SIGTERM and SIGINT always stop this process and what it started, even mid-query.

    Python runs signal handlers in the main thread only between bytecodes, which never
    happens while DuckDB executes a long statement or Dagster sleeps in C. The C-level handler
    still writes the signal to the wakeup fd at once; a thread reading it runs the registered
    stop actions (kill dbt's process group, mark the run failed, free its slots, record the
    status) and exits with 128 + the signal number. A second signal exits at once.
    """

    _current: StopGuard | None = None

    def __init__(self) -> None:
        self._actions: list[Callable[[], None]] = []
        self.child_groups: set[int] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._signum = 0
        self._stopped = threading.Event()

    @classmethod
    def current(cls) -> StopGuard | None:
        """The guard installed in this process, if any."""
        return cls._current

    def on_stop(self, action: Callable[[], None]) -> None:
        """Run `action` (best effort, in registration order reversed) when a signal stops the process."""
        with self._lock:
            self._actions.append(action)

    def forget(self, action: Callable[[], None]) -> None:
        """No longer run `action` on stop."""
        with self._lock, contextlib.suppress(ValueError):
            self._actions.remove(action)

    def __enter__(self) -> StopGuard:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals can only be set up from the main thread (e.g. under a test runner)
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        self._write = write
        self._old_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._old = {sig: signal.signal(sig, self._python_handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        threading.Thread(target=self._wait_for_signal, name="retain-stop-guard", daemon=True).start()
        StopGuard._current = self
        return self

    def __exit__(self, *exc) -> None:
        if self._stopping:
            # the guard's thread is handling a signal: the run may have ended first (Dagster's own
            # interrupt handling), but the exit code is the signal's, once the stop actions ran
            self._stopped.wait(20)
            os._exit(128 + self._signum)
        if StopGuard._current is not self:
            return
        StopGuard._current = None
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self._write)  # ends the reading thread

    def _python_handler(self, signum, frame) -> None:
        """The main thread's share: nothing (the thread does the work); keeps Python from raising."""

    def _wait_for_signal(self) -> None:
        while True:
            try:
                data = os.read(self._read, 1)
            except OSError:
                return
            if not data:
                return
            self.stop(data[0])

    def stop(self, signum: int) -> None:
        """Kill what this process started, run the stop actions, exit with 128 + signum."""
        if self._stopping:
            os._exit(128 + signum)
        self._stopping = True
        self._signum = signum
        name = signal.Signals(signum).name
        _err(f"{name} received: stopping" + (" (and killing dbt)" if self.child_groups else ""))
        self.kill_children()
        # the actions touch Dagster's storage; never let them keep the process alive
        threading.Timer(15.0, lambda: os._exit(128 + signum)).start()
        for action in reversed(list(self._actions)):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - stopping anyway; the next run recovers the rest
                _err(f"while stopping: {exc}")
        self._stopped.set()
        os._exit(128 + signum)

    def kill_children(self) -> None:
        """SIGKILL every registered child process group (dbt)."""
        for group in list(self.child_groups):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


# ---------------------------------------------------------------- dbt dies with its parent

_LAUNCHER = '''#!{python} -I
# Generated by retain (pipelines/runs.py): run dbt in its own process group, dying with its parent.
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
parent = int(os.environ.get("RETAIN_DBT_PARENT_PID", "0"))
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
if parent and os.getppid() != parent:
    sys.exit("retain: the process that started dbt is gone")
os.setpgid(0, 0)
if os.environ.get("RETAIN_DBT_CWD"):  # profiles.yml names the warehouse relative to its folder
    os.chdir(os.environ["RETAIN_DBT_CWD"])
signal.pthread_sigmask(signal.SIG_SETMASK, [])
if os.environ.get("RETAIN_DBT_SERVER"):  # the job's warm dbt runs the command (pipelines/dbt_server.py)
    from pipelines.dbt_server import run_forked
    code = run_forked([{dbt!r}, *sys.argv[1:]])
    if code is not None:
        sys.exit(code)
    sys.stderr.write("retain: the job's warm dbt did not answer; starting dbt itself\\n")
if os.environ.get("SPARK_REMOTE") and os.environ.get("RETAIN_ENGINE", "").strip().lower() == "spark":
    # dbt-spark on a Spark Connect server: dbt runs here, with retain's cursor
    # (pipelines/dbt_spark_connect.py: fewer round trips per statement)
    from pipelines.dbt_spark_connect import install
    install()
    from dbt.cli.main import cli
    sys.argv[0] = {dbt!r}
    sys.exit(cli())
os.execv({dbt!r}, [{dbt!r}, *sys.argv[1:]])
'''


def dbt_launcher(real_dbt: str) -> str:
    """An executable that runs `real_dbt` so that it dies with the process that starts it.

    With a warm dbt for the job (`RETAIN_DBT_SERVER`, `pipelines.dbt_server`) it hands the
    command to it and waits, instead of starting dbt itself.

    `prctl(PR_SET_PDEATHSIG, SIGKILL)` survives exec: when the thread that started dbt (the
    step) dies, even by `kill -9`, the kernel kills dbt. dbt also gets its own process group
    (so `StopGuard` can kill it and anything it started). Set `RETAIN_DBT_PARENT_PID` to the
    parent's pid in dbt's environment, so a parent that died before `prctl` is noticed.
    """
    folder = settings().dagster_storage / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dbt"
    text = _LAUNCHER.format(python=sys.executable, dbt=real_dbt)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".dbt.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o700)  # owner-only like everything under the data folder
        os.replace(tmp, path)
    return str(path)


# ---------------------------------------------------------------- test hook


def pause_point(name: str) -> None:
    """Test hook: with `RETAIN_TEST_PAUSE_AT=<name>`, say so in `<data dir>/paused-<name>` and wait to be killed.

    Lets the crash-safety tests kill a real run at a known point (inside ingest, inside
    publish). Does nothing otherwise.
    """
    if os.environ.get(PAUSE_ENV) != name:
        return
    marker = settings().data_dir / f"paused-{name}"
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(0.2)
