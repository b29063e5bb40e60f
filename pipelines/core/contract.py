"""Load the data contract (`pipelines/core/contract.yaml`), the single definition of every landing source.

Everything that needs to know a source's columns (ingestion, the generator, the docs, the
tests) reads it through this module, so there is no second copy to drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import yaml

CONTRACT_PATH = Path(__file__).with_name("contract.yaml")

#: DuckDB type for each contract type.
DUCKDB_TYPES = {
    "varchar": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DECIMAL(18, 2)",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",  # naive UTC: offsets are converted on load
    "date": "DATE",
}


#: A relative date bound: `now`, `now+1d`, `now-30d`, `now+2y` (days or calendar years from
#: the moment a file is loaded, in UTC).
_RELATIVE_BOUND = re.compile(r"now(?:([+-])(\d+)([dy]))?")

#: Contract types whose min / max are dates (ISO `YYYY-MM-DD`, or relative to now).
DATE_TYPES = ("date", "timestamp")


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February into a year without one
        return moment.replace(year=moment.year + years, day=28)


def resolve_bound(bound: str, now: datetime) -> datetime:
    """The moment a date bound stands for, as naive UTC: an ISO date (`1990-01-01`, midnight)
    or a bound relative to `now` (`now`, `now+1d`, `now-30d`, `now+2y`)."""
    now = now if now.tzinfo is None else now.astimezone(UTC).replace(tzinfo=None)
    match = _RELATIVE_BOUND.fullmatch(bound.replace(" ", ""))
    if match:
        sign, amount, unit = match.groups()
        if sign is None:
            return now
        n = int(amount) * (1 if sign == "+" else -1)
        return now + timedelta(days=n) if unit == "d" else _add_years(now, n)
    return datetime.combine(date.fromisoformat(bound), datetime.min.time())


def _parse_bound(value, where: str, col_type: str) -> float | str | None:
    """A min / max from the YAML: a number for numeric columns, a date bound (kept as written,
    checked now) for date and timestamp columns."""
    if value is None:
        return None
    if col_type in DATE_TYPES:
        text = value.isoformat() if isinstance(value, date) else str(value).strip()
        try:
            resolve_bound(text, datetime(2000, 1, 1))
        except ValueError:
            raise ValueError(
                f"{CONTRACT_PATH}: {where} is {value!r}; a date bound is YYYY-MM-DD or now, now+Nd, now-Nd, "
                "now+Ny, now-Ny"
            ) from None
        return text
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{CONTRACT_PATH}: {where} is {value!r}; expected a number")
    return value


@dataclass(frozen=True)
class Column:
    """One column of a landing source.

    `min` / `max` are numbers for numeric columns, and date bounds for date and timestamp
    columns: an ISO date or a bound relative to the load time (`now+1d`, see `resolve_bound`).
    """

    name: str
    type: str
    required: bool = False
    allowed: tuple[str, ...] | None = None
    min: float | str | None = None
    max: float | str | None = None
    format: str | None = None
    references: str | None = None
    description: str = ""

    @property
    def duckdb_type(self) -> str:
        """The DuckDB type this column is stored as in `raw.<source>`."""
        return DUCKDB_TYPES[self.type]

    def date_range(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(earliest, latest) allowed moment of a date or timestamp column at `now` (naive
        UTC; None where the contract sets no bound). A date column's bounds are whole days."""
        lo, hi = (None if b is None else resolve_bound(str(b), now) for b in (self.min, self.max))
        if self.type == "date":
            lo = None if lo is None else datetime.combine(lo.date(), datetime.min.time())
            hi = None if hi is None else datetime.combine(hi.date(), datetime.min.time())
        return lo, hi


@dataclass(frozen=True)
class Check:
    """A row rule across columns: `condition` is SQL that must hold for a row to load."""

    code: str
    condition: str
    message: str


@dataclass(frozen=True)
class Source:
    """A landing source: `data/landing/<name>/` files that load into `raw.<name>`."""

    name: str
    description: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    updated_at: str | None = None
    event_at: str | None = None
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        """Column names in contract order."""
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        """Columns every file must have and every row must fill."""
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        """The column called `name`; KeyError if the contract has none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"source {self.name!r} has no column {name!r}")


def _parse_source(name: str, spec: dict) -> Source:
    columns = []
    for col_name, col in spec["columns"].items():
        if col["type"] not in DUCKDB_TYPES:
            raise ValueError(
                f"{CONTRACT_PATH}: {name}.{col_name} has unknown type {col['type']!r}; "
                f"expected one of {sorted(DUCKDB_TYPES)}"
            )
        columns.append(
            Column(
                name=col_name,
                type=col["type"],
                required=bool(col.get("required", False)),
                allowed=tuple(col["allowed"]) if col.get("allowed") else None,
                min=_parse_bound(col.get("min"), f"{name}.{col_name}.min", col["type"]),
                max=_parse_bound(col.get("max"), f"{name}.{col_name}.max", col["type"]),
                format=col.get("format"),
                references=col.get("references"),
                description=str(col.get("description", "")).strip(),
            )
        )
    checks = tuple(Check(**c) for c in spec.get("checks", []))
    return Source(
        name=name,
        description=" ".join(str(spec.get("description", "")).split()),
        primary_key=tuple(spec["primary_key"]),
        columns=tuple(columns),
        updated_at=spec.get("updated_at"),
        event_at=spec.get("event_at"),
        checks=checks,
    )


@lru_cache(maxsize=1)
def load_contract() -> dict[str, Source]:
    """All sources of the contract, by name, in contract order."""
    raw = yaml.safe_load(CONTRACT_PATH.read_text())
    return {name: _parse_source(name, spec) for name, spec in raw["sources"].items()}


def source(name: str) -> Source:
    """One source by name, with a clear error for an unknown one."""
    sources = load_contract()
    if name not in sources:
        raise KeyError(f"unknown source {name!r}; the contract has {', '.join(sources)}")
    return sources[name]


SOURCE_NAMES: tuple[str, ...] = tuple(load_contract())


def to_markdown() -> str:
    """Render the contract as the tables in docs/data-contract.md."""
    lines: list[str] = []
    for src in load_contract().values():
        lines += [f"### `{src.name}`", "", src.description, ""]
        lines.append(f"Primary key: `{', '.join(src.primary_key)}`.")
        if src.updated_at:
            lines.append(f" Latest version of a key: highest `{src.updated_at}`, then latest load.")
        lines += ["", "| column | type | required | allowed values / range | references | description |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for c in src.columns:
            rule = ", ".join(c.allowed) if c.allowed else ""
            if c.min is not None or c.max is not None:
                rule = f"{'' if c.min is None else c.min} … {'' if c.max is None else c.max}"
            if c.format:
                rule = (rule + " " if rule else "") + f"format: {c.format}"
            lines.append(
                f"| `{c.name}` | {c.type} | {'yes' if c.required else ''} | {rule} | "
                f"{c.references or ''} | {c.description} |"
            )
        for chk in src.checks:
            lines.append(f"\nRow rule `{chk.code}`: `{chk.condition}` ({chk.message}).")
        lines.append("")
    return "\n".join(lines)
