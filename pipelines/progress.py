"""A quiet console logger for `retain run`: one line per step start and finish, plus warnings.

Dagster's default console logger prints every engine event at DEBUG level, which buries what
a person wants to see during a long run. This logger prints progress instead; the full event
log is still in the Dagster instance (`retain ui`).
"""

import logging
import os
import re
import sys
import threading
import time

import dagster as dg

#: Where progress goes. Dagster captures the process's stdout/stderr per step (for the UI's
#: compute logs) at the file-descriptor level, so `run_job` hands us a duplicate of the
#: terminal's stderr taken before the run starts.
_stream = sys.stderr


def set_stream(stream) -> None:
    """Send progress lines to `stream` (a file object that outlives the run's capture)."""
    global _stream
    _stream = stream


def stream():
    """Where progress lines go: the terminal's stderr, even while Dagster captures a step's output."""
    return _stream


_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0


def rss_mb() -> float:
    """This process's resident memory now, in MB (Linux /proc; 0 elsewhere).

    `statm`'s one line, not `status`'s fifty: `PeakMemory` reads it ten times a second.
    """
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_MB
    except (OSError, ValueError, IndexError):
        return 0.0


class PeakMemory:
    """Samples resident memory in a background thread and keeps the peak per step.

    Steps run one after another in-process, so the step running at a sample gets it.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.current: str | None = None
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.current:
                self.peaks[self.current] = max(self.peaks.get(self.current, 0.0), rss_mb())

    def __enter__(self) -> "PeakMemory":
        global _memory
        _memory = self
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        global _memory
        self._stop.set()
        self._thread.join()
        _memory = None


_memory: PeakMemory | None = None

_STEP_EVENTS = {"STEP_START": "started", "STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED"}


def step_end_line(step: str, succeeded: bool, seconds: float) -> str:
    """The line printed when a step ends: `✔ <step> done in 1.2 s` or `✘ <step> FAILED in 1.2 s`."""
    kind = "STEP_SUCCESS" if succeeded else "STEP_FAILURE"
    return f"{'✔' if succeeded else '✘'} {step} {_STEP_EVENTS[kind]} in {seconds:.1f} s"


_STEP_DONE = re.compile(r"^✔ (\S+) " + _STEP_EVENTS["STEP_SUCCESS"] + r" in ([0-9.]+) s$", re.MULTILINE)


def steps_done(output: str) -> dict[str, float]:
    """Seconds of each step that succeeded, from a run's printed output (`step_end_line`'s lines)."""
    return {step: float(seconds) for step, seconds in _STEP_DONE.findall(output)}


class _ProgressHandler(logging.Handler):
    def __init__(self, verbose: bool) -> None:
        super().__init__(logging.DEBUG)  # step events are logged at DEBUG; emit() filters
        self.verbose = verbose
        self.started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        if event is not None:
            kind = event.event_type_value
            if kind not in _STEP_EVENTS:
                if self.verbose:
                    print(f"  {step} {kind}", file=_stream)
                return
            now = time.monotonic()
            if _memory is not None:
                _memory.current = step if kind == "STEP_START" else None
                if kind == "STEP_START":
                    _memory.peaks[step] = rss_mb()
            if kind == "STEP_START":
                self.started[step] = now
                line = f"▶ {step}"
            else:
                took = now - self.started.pop(step, now)
                line = step_end_line(step, kind == "STEP_SUCCESS", took)
            print(line, file=_stream, flush=True)
        elif record.levelno >= logging.WARNING or self.verbose:
            message = meta.get("orig_message") or record.getMessage()
            if message.startswith("Dependencies for step") and not self.verbose:
                # Dagster names the failed upstream step once per input: say it once
                print(f"  skipped: {step} (a step it needs failed)", file=_stream, flush=True)
                return
            print(f"  {record.levelname.lower()}: {step} {message}", file=_stream, flush=True)


@dg.logger(
    config_schema={"verbose": dg.Field(bool, default_value=False, description="Also print engine events.")},
    description="One line per step start/finish and warnings.",
)
def progress_logger(init_context) -> logging.Logger:
    """Build the logger (Dagster calls this once per run)."""
    log = logging.getLogger("retain.progress")
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    log.addHandler(_ProgressHandler(init_context.logger_config["verbose"]))
    log.propagate = False
    return log


def say(line: str) -> None:
    """One line of progress from inside a step (e.g. where a step's full output went)."""
    print(line, file=_stream, flush=True)


class Countdown:
    """`dbt 120/247` while dbt builds: one line rewritten in place on a terminal, quarters elsewhere.

    dbt's own output (one line per model and test) goes to a log file instead of the console;
    this keeps the one number a person watches: how far the longest step has come.
    """

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self._tty = hasattr(_stream, "isatty") and _stream.isatty()
        self._next_quarter = 1

    def tick(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        if self._tty:
            print(f"\r  {self.label} {self.done}/{self.total}", end="", file=_stream, flush=True)
        elif self.done * 4 >= self._next_quarter * self.total:
            print(f"  {self.label} {self.done}/{self.total}", file=_stream, flush=True)
            self._next_quarter = self.done * 4 // self.total + 1

    def close(self) -> None:
        if self._tty:
            print(file=_stream, flush=True)
