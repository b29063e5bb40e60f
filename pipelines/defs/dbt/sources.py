"""The dbt source YAML (`models/staging/<system>/_<system>__sources.yml`), rendered from the contract.

dbt cannot read `pipelines/core/contract.yaml`, so the source declarations are generated from it
and checked in; `tests/test_dbt_project.py` fails when they drift. After a contract change run

    python -m pipelines.defs.dbt.sources

and adapt the staging model of the changed source.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.core.config import PROJECT_ROOT
from pipelines.core.contract import load_contract
from pipelines.ingest.schema import LINEAGE_COLUMNS

#: dbt source (one per source system) → (description, contract sources it holds).
SOURCE_SYSTEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "shop": (
        "The web shop (or a plain transaction log export): customers, orders, order lines and returns.",
        ("customers", "orders", "order_items", "returns"),
    ),
    "messaging": (
        "Email, SMS, push and chat tools: post-purchase and marketing messages, both directions.",
        ("messages",),
    ),
    "surveys": ("The survey tool: NPS, CSAT and CES responses.", ("survey_responses",)),
    "reviews": ("The product review platform.", ("reviews",)),
    "helpdesk": ("The helpdesk: support tickets.", ("support_tickets",)),
}

LINEAGE_DESCRIPTIONS = {
    "_load_id": "Load that wrote the row (raw._loads.load_id); later loads have higher ids.",
    "_source_file": "Landing file the row came from, relative to the landing folder.",
    "_source_row": "1-based data row within the landing file.",
    "_loaded_at": "When the row was loaded (UTC).",
    "_extra": "Columns of the file the contract does not know, as a JSON object.",
}

#: How long after the last load a source counts as stale (`dbt source freshness`).
FRESHNESS_WARN_HOURS = 36


def system_of(source_name: str) -> str:
    """The dbt source (system) that holds a contract source, e.g. orders → shop."""
    for system, (_, tables) in SOURCE_SYSTEMS.items():
        if source_name in tables:
            return system
    raise KeyError(f"contract source {source_name!r} is in no dbt source system")


def _quote(text: str) -> str:
    # JSON strings are valid YAML scalars and survive any punctuation in descriptions.
    return json.dumps(" ".join(text.split()), ensure_ascii=False)


def _type(declaration: str) -> str:
    return declaration.replace(" NOT NULL", "").replace(", ", ",").lower()


def render_sources_yaml(system: str) -> str:
    """The YAML declaring one dbt source system, its tables and their columns."""
    description, tables = SOURCE_SYSTEMS[system]
    contract = load_contract()
    lines = [
        "# Generated from pipelines/core/contract.yaml by `python -m pipelines.defs.dbt.sources`; do not edit.",
        "# Ingestion loads raw.<table>: every version of every row, plus the load lineage columns.",
        "version: 2",
        "",
        "sources:",
        f"  - name: {system}",
        "    schema: raw",
        f"    description: {_quote(description)}",
        "    config:",
        "      loaded_at_field: _loaded_at",
        "      freshness:",
        f"        warn_after: {{count: {FRESHNESS_WARN_HOURS}, period: hour}}",
        "    tables:",
    ]
    for name in tables:
        src = contract[name]
        table_description = f"{src.description} Primary key: {', '.join(src.primary_key)}."
        lines += [f"      - name: {name}", f"        description: {_quote(table_description)}", "        columns:"]
        columns = [(c.name, _type(c.duckdb_type), c.description) for c in src.columns]
        columns += [(n, _type(decl), LINEAGE_DESCRIPTIONS[n]) for n, decl in LINEAGE_COLUMNS.items()]
        for col_name, col_type, col_description in columns:
            lines += [
                f"          - name: {col_name}",
                f"            data_type: {col_type}",
                f"            description: {_quote(col_description)}",
            ]
    return "\n".join(lines) + "\n"


def sources_yaml_path(system: str, root: Path = PROJECT_ROOT) -> Path:
    """Where the YAML of one source system lives."""
    return root / "models" / "staging" / system / f"_{system}__sources.yml"


def write_sources_yaml(root: Path = PROJECT_ROOT) -> list[Path]:
    """Render every source system's YAML into the dbt project; returns the files written."""
    written = []
    for system in SOURCE_SYSTEMS:
        path = sources_yaml_path(system, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_sources_yaml(system))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_sources_yaml():
        print(written_path.relative_to(PROJECT_ROOT))
