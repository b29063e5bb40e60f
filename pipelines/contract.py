"""Load the data contract (`pipelines/contract.yaml`), the single definition of every landing source.

Everything that needs to know a source's columns (ingestion, the generator, the docs, the
tests) reads it through this module, so there is no second copy to drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Column:
    """One column of a landing source."""

    name: str
    type: str
    required: bool = False
    allowed: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    format: str | None = None
    references: str | None = None
    description: str = ""

    @property
    def duckdb_type(self) -> str:
        """The DuckDB type this column is stored as in `raw.<source>`."""
        return DUCKDB_TYPES[self.type]


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
                min=col.get("min"),
                max=col.get("max"),
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
