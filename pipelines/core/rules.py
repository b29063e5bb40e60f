"""Business rules kept as value lists in dbt seeds (`seeds/*.csv`), read from Python.

The dbt models join these seeds; Python code that needs the same list (the playbook's
validation, the generator) reads the very same file through this module, never a copy. Each
value list lives in one file:

| seed | rule |
| --- | --- |
| `message_types.csv` | every message type, its purpose, `needs_marketing_consent`, `is_marketing_contact` |
| `ticket_categories.csv` | every ticket category, its label, `is_wismo` |
| `ticket_types.csv` | every ticket type, `is_complaint` |
| `feedback_bands.csv` | score bands: sentiment and NPS band of each feedback type |

A seed that is missing, lacks a column or holds a bad flag raises `SeedError` naming the file,
the row and the column.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

#: The dbt project's seed folder (dbt_project.yml `seed-paths`).
SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds"

_FLAGS = {"true": True, "false": False}


class SeedError(ValueError):
    """A seed file is missing, lacks a column or a value, or holds a bad flag."""


@cache
def seed_rows(name: str) -> tuple[dict[str, str], ...]:
    """The rows of `seeds/<name>.csv` as dicts of strings (read once per process)."""
    path = SEEDS_DIR / f"{name}.csv"
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return tuple(csv.DictReader(fh))
    except FileNotFoundError:
        raise SeedError(f"{path}: the seed file is missing (it holds a business rule; see seeds/_seeds.yml)") from None


def _column(name: str, rows: tuple[dict[str, str], ...], column: str) -> None:
    if rows and column not in rows[0]:
        raise SeedError(f"{SEEDS_DIR / f'{name}.csv'}: no column {column!r}; columns: {', '.join(rows[0])}")


def seed_values(name: str, column: str, flag: str | None = None) -> tuple[str, ...]:
    """The values of `column` in `seeds/<name>.csv`, in file order; only rows whose boolean
    column `flag` is true when `flag` is given."""
    rows = seed_rows(name)
    _column(name, rows, column)
    if flag is None:
        return tuple(r[column] for r in rows)
    _column(name, rows, flag)
    out = []
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        value = _FLAGS.get((r[flag] or "").strip().lower())
        if value is None:
            raise SeedError(
                f"{SEEDS_DIR / f'{name}.csv'}: row {line}, column {flag!r}: expected true or false, got {r[flag]!r}"
            )
        if value:
            out.append(r[column])
    return tuple(out)


def require_values(name: str, column: str, needed, what: str) -> None:
    """Raise `SeedError` naming the file and the values when `needed` has values `column` lacks."""
    have = set(seed_values(name, column))
    missing = [v for v in needed if v not in have]
    if missing:
        raise SeedError(
            f"{SEEDS_DIR / f'{name}.csv'}: column {column!r} has no row for {', '.join(map(repr, missing))}, "
            f"which {what} uses; add the row (with its flags) to the seed"
        )


def message_types() -> tuple[str, ...]:
    """Every message type (seeds/message_types.csv)."""
    return seed_values("message_types", "message_type")


def marketing_contact_types() -> tuple[str, ...]:
    """Message types that count as marketing contact for the outreach frequency cap."""
    return seed_values("message_types", "message_type", flag="is_marketing_contact")


def consent_marketing_types() -> tuple[str, ...]:
    """Message types sent only to customers with marketing consent."""
    return seed_values("message_types", "message_type", flag="needs_marketing_consent")


def ticket_categories() -> tuple[str, ...]:
    """Every support ticket category (seeds/ticket_categories.csv)."""
    return seed_values("ticket_categories", "category")


def ticket_types() -> tuple[str, ...]:
    """Every support ticket type (seeds/ticket_types.csv)."""
    return seed_values("ticket_types", "ticket_type")
