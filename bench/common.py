"""Shared pieces of the benchmark suite: landing files, measured subprocesses, machine details.

Every measured step runs in its own process so that its peak memory is its own: `run_measured`
starts the command in a new process group, samples the summed resident memory of the whole
group (the command and any children it starts, such as dbt) every 0.2 s, and reaps the
command with `os.wait4`, whose rusage is that child's own (peak RSS of the largest single
process in its tree), unlike `RUSAGE_CHILDREN`, which is a maximum over every child so far.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from pipelines.generate import next_day as _next_day

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)

#: The columns each KPI source contributes (messages and order items feed no KPI here).
NEEDED: dict[str, list[str]] = {
    # email and phone: the identity rule groups customers by them
    "customers": ["customer_id", "email", "phone"],
    "orders": ["order_id", "customer_id", "ordered_at", "status", "total", "promised_delivery_date", "delivered_at"],
    "returns": ["order_id", "status"],
    "survey_responses": ["survey_type", "score", "responded_at"],
    "reviews": ["rating", "created_at"],
    "support_tickets": [
        "customer_id",
        "ticket_type",
        "category",
        "created_at",
        "first_response_at",
        "resolved_at",
        "agent_replies",
        "reopen_count",
    ],
}

#: Text columns compared against fixed values: trimmed and lower-cased as staging does.
NORMALISED = {"status", "survey_type", "ticket_type", "category"}

RESULTS = ("kpi_monthly", "retention_cohorts", "customers")


# The landing CSV files of a source and a CSV header, read the way `retain generate --next-day`
# reads them (which raises NextDayError if a source also holds files of another format).
source_files = _next_day.source_files
read_header = _next_day.read_header


@dataclass
class Measured:
    """Wall time and memory of one measured command."""

    seconds: float
    peak_rss_mb: float  # largest single process in the tree (wait4 rusage)
    peak_tree_mb: float  # largest sampled sum over the process group
    returncode: int
    timed_out: bool = False
    log: str | None = None
    #: The machine's 1-minute load average when the command ended: other work inflates every time.
    load_after: float | None = None

    @property
    def peak_mb(self) -> float:
        """The peak to report: the group's summed peak, at least the largest process's."""
        return max(self.peak_rss_mb, self.peak_tree_mb)

    @property
    def ok(self) -> bool:
        """True if the command exited with 0 in time."""
        return self.returncode == 0 and not self.timed_out

    def as_dict(self) -> dict:
        """JSON-ready form, with the reported peak."""
        return {**asdict(self), "peak_mb": round(self.peak_mb, 1), "ok": self.ok}


def group_processes(pgid: int) -> dict[int, float]:
    """Resident memory (MB) of every live process in process group `pgid`, by pid (Linux /proc)."""
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # fields after the command name, which may itself hold spaces and parentheses
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) > 21 and int(rest[2]) == pgid:
            found[int(entry.name)] = int(rest[21]) * PAGE_MB
    return found


def run_measured(
    cmd: list[str],
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    interval: float = 0.2,
) -> Measured:
    """Run `cmd` to completion and measure wall time and peak memory.

    Output (stdout and stderr) goes to `log` when given. After `timeout` seconds the whole
    process group is killed and the result says `timed_out`.
    """
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    pgid = proc.pid  # start_new_session: the child leads its own group
    peak = [0.0]
    done = threading.Event()
    timed_out = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], sum(group_processes(pgid).values()))
            if timeout is not None and time.perf_counter() - start > timeout and not timed_out.is_set():
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        if log:
            out.close()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    # children the command left running in its group (a stray server) must not outlive it
    for pid in group_processes(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return Measured(
        seconds=round(seconds, 3),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        peak_tree_mb=round(peak[0], 1),
        returncode=proc.returncode,
        timed_out=timed_out.is_set(),
        log=str(log) if log else None,
        load_after=round(os.getloadavg()[0], 2),
    )


def tail(path: str | Path | None, lines: int = 30) -> str:
    """The last `lines` lines of a log file (empty if there is none)."""
    if not path or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip().strip(chr(34))} (Linux {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


ENGINE_PACKAGES = ("duckdb", "dbt-core", "dbt-duckdb", "dagster", "dagster-dbt", "pandas", "pyarrow", "scikit-learn")


def speed_reference(repeats: int = 3) -> float:
    """Seconds of a fixed DuckDB workload on all cores (best of `repeats`): the machine's speed today.

    Shared machines vary from day to day (the same code and data have run 1.4x slower on one
    day than another). The report prints this next to each run, so runs on different days can
    be compared: a run whose reference is 1.4x higher was on a 1.4x slower machine.
    """
    import duckdb

    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        con.execute(
            "select count(distinct h % 1000003), sum(h % 7) from "
            "(select hash(i) as h from range(30000000) t(i))"
        ).fetchall()
        best = min(best, time.perf_counter() - t0)
    con.close()
    return round(best, 3)


def machine_info() -> dict:
    """CPU model, cores, memory, OS and the versions of Python and the engines being compared."""
    return {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": _os_name(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in ENGINE_PACKAGES},
    }


#: The key columns of each result, for aligning two implementations' rows.
RESULT_KEYS = {
    "kpi_monthly": ["month"],
    "retention_cohorts": ["cohort_month", "months_since_first_order"],
    "customers": ["customer_id"],
}


def _normalised(frame, keys: list[str]):
    """Columns typed alike whatever wrote them (dates and timestamps as naive datetime64, numbers as float)."""
    import pandas as pd

    frame = frame.copy()
    for col in frame.columns:
        s = frame[col]
        if col == "customer_id":
            frame[col] = s.astype(str)
        elif isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s) or s.dtype == object:
            converted = pd.to_datetime(s)
            if isinstance(converted.dtype, pd.DatetimeTZDtype):
                converted = converted.dt.tz_convert(None)
            frame[col] = converted.astype("datetime64[us]")
        else:
            frame[col] = pd.to_numeric(s).astype("float64")
    return frame.sort_values(keys).reset_index(drop=True)


def compare_frames(name: str, left, right, keys: list[str], rtol: float = 1e-9, atol: float = 1e-9) -> list[str]:
    """Differences between two results with the same meaning (empty when they agree).

    Same key rows, same columns, every value equal (numbers within `rtol`/`atol`, NULL
    where the other is NULL). Each difference names the column and the first differing row.
    """
    import numpy as np

    problems: list[str] = []
    missing = sorted(set(left.columns) ^ set(right.columns))
    if missing:
        problems.append(f"{name}: columns only on one side: {', '.join(missing)}")
    columns = [c for c in left.columns if c in right.columns]
    a, b = _normalised(left[columns], keys), _normalised(right[columns], keys)
    if len(a) != len(b) or not a[keys].equals(b[keys]):
        only_a = len(a.merge(b[keys], on=keys, how="left", indicator=True).query("_merge == 'left_only'"))
        only_b = len(b.merge(a[keys], on=keys, how="left", indicator=True).query("_merge == 'left_only'"))
        problems.append(f"{name}: {len(a)} vs {len(b)} rows ({only_a} keys only left, {only_b} only right)")
        a = a.merge(b[keys], on=keys)
        b = b.merge(a[keys], on=keys)
    for col in columns:
        if col in keys:
            continue
        x, y = a[col], b[col]
        both_null = x.isna() & y.isna()
        if np.issubdtype(x.dtype, np.datetime64):
            same = both_null | (x == y)
        else:
            same = both_null | np.isclose(x.to_numpy(float), y.to_numpy(float), rtol=rtol, atol=atol, equal_nan=False)
        bad = ~np.asarray(same, dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = ", ".join(f"{k}={a[k].iloc[i]}" for k in keys)
            problems.append(
                f"{name}.{col}: {int(bad.sum())} of {len(a)} rows differ (first at {where}: {x.iloc[i]} vs {y.iloc[i]})"
            )
    return problems


def compare_results(left_dir: Path, right_dir: Path, results=RESULTS) -> list[str]:
    """Compare the Parquet results two KPI implementations wrote (see `compare_frames`)."""
    import pandas as pd

    problems: list[str] = []
    for name in results:
        left = pd.read_parquet(Path(left_dir) / f"{name}.parquet")
        right = pd.read_parquet(Path(right_dir) / f"{name}.parquet")
        problems += compare_frames(name, left, right, RESULT_KEYS[name])
    return problems
