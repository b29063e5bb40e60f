"""The audit log: who saw which customers' contact details and who downloaded which list.

One JSON object per line in `RETAIN_AUDIT_LOG` (default `$RETAIN_DATA_DIR/logs/audit.jsonl`),
appended and never rewritten by retain. The folder is created owner-only (0700), the file
owner-only (0600); a file found with wider permissions is narrowed before the next line is
written. Each line is written with one `write` on a file opened in append mode, under an
exclusive lock, so lines from several dashboard sessions or processes never interleave.

Fields of every entry: `at` (UTC, ISO 8601), `action`, `user`, `mode` (`oidc` or `local`),
`subject` and `issuer` (the provider's `sub` and `iss`), `roles`. Per action:

| action | extra fields |
| --- | --- |
| `contact_view` | `customer_ids`, `rows`, `fields` (which contact fields were shown) |
| `contact_search` | `search` (`email_prefix`), `customer_ids` (the matches, up to 20), `rows` |
| `download` | `play`, `format`, `run_id`, `file_name`, `rows` (customers in the file) |
| `session_start` | `page` |
| `access_denied` | `reason` |

`retain audit` prints it (filters: `--user`, `--action`, `--since`, `--customer`; `--json`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ACTIONS = ("contact_view", "contact_search", "download", "session_start", "access_denied")


def audit_log_path() -> Path:
    """`RETAIN_AUDIT_LOG`, default `$RETAIN_DATA_DIR/logs/audit.jsonl`."""
    value = os.environ.get("RETAIN_AUDIT_LOG", "").strip()
    if value:
        return Path(value).expanduser().resolve()
    from pipelines.core.config import settings

    return settings().data_dir / "logs" / "audit.jsonl"


def _private_dir(path: Path) -> None:
    """Create `path` and any missing parent owner-only (0700), whatever the process umask."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask


def record(action: str, who: dict, path: Path | None = None, **details) -> dict:
    """Append one entry (`who`: `Identity.audit_fields()`) and return it.

    Raises OSError when the log cannot be written: callers show nothing unaudited.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; expected one of {', '.join(ACTIONS)}")
    path = path or audit_log_path()
    entry = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "action": action, **who, **details}
    line = (json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":")) + "\n").encode("utf-8")
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return entry


def read(path: Path | None = None) -> Iterator[dict]:
    """Every entry, oldest first (a line that is not JSON is returned as `{"action": "unreadable", ...}`)."""
    path = path or audit_log_path()
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield {"action": "unreadable", "line": number, "text": line[:200]}


def matches(entry: dict, user: str | None = None, action: str | None = None, since: datetime | None = None,
            customer: str | None = None) -> bool:
    """Whether an entry passes the `retain audit` filters."""
    if user and user.lower() not in str(entry.get("user", "")).lower():
        return False
    if action and entry.get("action") != action:
        return False
    if customer and customer not in (entry.get("customer_ids") or []):
        return False
    if since:
        with contextlib.suppress(TypeError, ValueError):
            at = datetime.fromisoformat(str(entry.get("at")))
            return at >= (since if since.tzinfo else since.replace(tzinfo=UTC))
        return False
    return True
