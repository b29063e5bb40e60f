"""Personal data: who may read the files retain writes, and how contact data is masked.

Two concerns, one module, because both decide where personal data can leak:

- **Files at rest.** The warehouse, the published snapshots, the churn model artifacts, the
  CRM exports (with their Arrow snapshots, manifests and diffs), Dagster's run storage and
  logs, and the generated landing files all hold emails, phones or customer ids. Everything
  retain writes is owner-only: `secure_storage` sets the process umask to 077 (files 0600,
  folders 0700; dbt, DuckDB and every subprocess inherit it) and tightens what an older
  version left readable, saying so once. Landing files delivered by other systems are left
  as they are (an uploader may need its own access); the data folder itself is 0700.
- **Masking.** SQL builders shared by the dashboard and the publish step: `mask_email`,
  `mask_phone`, `mask_text` (emails and phones inside free text), `email_sha256` (to join
  on an address without holding it), `name_initial` and `postal_prefix`.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

#: Process umask: nothing retain creates is readable or writable by group or others.
PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def restrict_new_files() -> None:
    """Make every file and folder this process (and its children: dbt, Dagster) creates from
    now on owner-only."""
    os.umask(PRIVATE_UMASK)


def make_private(*paths: Path | str) -> None:
    """chmod existing `paths` to owner-only (0600 files, 0700 folders); missing ones are skipped."""
    for path in paths:
        _tighten(Path(path))


def _tighten(path: Path) -> bool:
    """Remove group and other permissions from one path; True if it had any."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
        return False
    wanted = DIR_MODE if stat.S_ISDIR(st.st_mode) else stat.S_IMODE(st.st_mode) & 0o700 | 0o600
    try:
        os.chmod(path, wanted)
    except PermissionError:  # not ours (another user's file in a shared folder): leave it
        return False
    return True


def tighten_tree(roots: Iterable[Path], skip: Iterable[Path] = ()) -> int:
    """Make every file and folder under `roots` owner-only, not descending into `skip`.

    Returns how many paths were tightened (0 once storage is private: a cheap walk).
    """
    skipped = {Path(p) for p in skip}
    changed = 0
    walked: list[Path] = []
    for root in roots:
        root = Path(root)
        # a root inside one already walked (the published folder in the data folder) was seen
        if any(root == w or root.is_relative_to(w) for w in walked) or not root.exists():
            continue
        walked.append(root)
        changed += _tighten(root)
        if not root.is_dir() or root in skipped:
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = [d for d in dirs if here / d not in skipped]
            for name in (*dirs, *files):
                changed += _tighten(here / name)
    return changed


def secure_storage(s) -> int:
    """Owner-only storage for settings `s` (`pipelines.core.config.Settings`): set the umask, then
    tighten what is already there (the warehouse and its WAL, snapshots, models, exports,
    Dagster storage, anything else retain keeps in the data folder). Landing files are not
    retain's: only the folders around them are tightened by the data folder's 0700.

    Prints one line on stderr when something had to be tightened (files written by an older
    version of retain); afterwards there is nothing to say.
    """
    restrict_new_files()
    warehouse = Path(s.warehouse)
    roots = [s.data_dir, s.published, s.models, s.exports, s.dagster_storage]
    changed = tighten_tree(roots, skip=[s.landing])
    for path in (warehouse, Path(f"{warehouse}.wal")):
        changed += _tighten(path)
    if changed:
        message = (
            f"retain: made {changed} files and folders under {s.data_dir} owner-only (they hold personal "
            "data; written by an older version of retain)"
        )
        print(message, file=sys.stderr)
    return changed


# --------------------------------------------------------------------------------------
# Masking (SQL builders; `column` is an SQL expression)


def mask_email(column: str) -> str:
    """SQL expression masking an email column: 'jane.doe@example.com' → 'j•••@example.com'."""
    return f"regexp_replace({column}, '^(.)[^@]*@', '\\1•••@')"


def mask_phone(column: str) -> str:
    """SQL expression masking a phone column, keeping the country prefix and last two digits."""
    return (
        f"case when {column} is null then null when length({column}) <= 5 then '•••' "
        f"else left({column}, 3) || repeat('•', length({column}) - 5) || right({column}, 2) end"
    )


#: Emails and phone-like digit runs inside free text (survey comments, review bodies).
TEXT_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
TEXT_PHONE = r"\+?[0-9][0-9 ()/-]{6,}[0-9]"


def mask_text(column: str) -> str:
    """SQL expression hiding emails and phone numbers written inside free text."""
    return (
        f"regexp_replace(regexp_replace({column}, '{TEXT_EMAIL}', '[email hidden]', 'g'), "
        f"'{TEXT_PHONE}', '[phone hidden]', 'g')"
    )


def email_sha256(column: str) -> str:
    """SQL expression: hex sha256 of the trimmed, lower-cased email (NULL stays NULL), so a
    list can be joined to a CRM on the address without holding the address."""
    return f"sha256(lower(trim({column})))"


def name_initial(column: str) -> str:
    """SQL expression reducing a name to its initial: 'Jane' → 'J.'."""
    return f"case when nullif(trim({column}), '') is null then null else upper(left(trim({column}), 1)) || '.' end"


#: Characters of a postal code kept in the snapshot: the region, never the street.
POSTAL_PREFIX_CHARS = 2


def postal_prefix(column: str) -> str:
    """SQL expression truncating a postal code to its first characters: '10115' → '10'."""
    return f"left(nullif(trim({column}), ''), {POSTAL_PREFIX_CHARS})"


# --------------------------------------------------------------------------------------
# What the published dashboard snapshot holds instead of contact data


def published_expression(column: str, sql: str) -> str | None:
    """SQL that replaces a text column named `column` (SQL `sql`) in the published snapshot,
    or None when it is published as it is.

    Emails and phones are masked as the dashboard shows them; first and last names become an
    initial; postal codes keep their first POSTAL_PREFIX_CHARS characters (the region); free
    text (`comment`, `detail`, `body`) has the emails and phones written in it hidden.
    """
    name = column.lower()
    if name == "email" or name.endswith("_email"):
        return mask_email(sql)
    if name == "phone" or name.endswith("_phone"):
        return mask_phone(sql)
    if name in ("first_name", "last_name"):
        return name_initial(sql)
    if name in ("postal_code", "zip", "zip_code", "postcode"):
        return postal_prefix(sql)
    if name in ("comment", "detail", "body"):
        return mask_text(sql)
    return None


def published_select(columns: list[tuple[str, str]], alias: str | None = None) -> str:
    """The SELECT list copying a table with `columns` ((name, type) pairs) into the published
    snapshot: personal text columns replaced (`published_expression`) and, after an `email`
    column, its `email_sha256` (unless the table has one already). Same column order every
    time, so full and incremental publishes build the same tables."""
    names = {c.lower() for c, _ in columns}
    items = []
    for column, dtype in columns:
        sql = ('"' + column.replace('"', '""') + '"') if alias is None else f'{alias}."{column}"'
        quoted = '"' + column.replace('"', '""') + '"'
        replaced = published_expression(column, sql) if dtype.upper() == "VARCHAR" else None
        items.append(sql + (f" as {quoted}" if alias else "") if replaced is None else f"{replaced} as {quoted}")
        if dtype.upper() == "VARCHAR" and column.lower() == "email" and "email_sha256" not in names:
            items.append(f"{email_sha256(sql)} as email_sha256")
    return ", ".join(items)
