"""Reading processes from /proc, for tests that kill real processes and check what is left."""

from __future__ import annotations

from pathlib import Path


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Running or sleeping: not gone, not a zombie waiting to be reaped."""
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except OSError:
        return False


def ppid(pid: int) -> int | None:
    """The parent's pid, or None when the process is gone."""
    try:
        return int(_stat_fields(pid)[1])
    except OSError:
        return None


def comm(pid: int) -> bytes | None:
    """The process's name (`/proc/<pid>/comm`, which `prctl(PR_SET_NAME)` sets), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_bytes().strip()
    except OSError:
        return None
