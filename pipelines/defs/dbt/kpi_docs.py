"""docs/kpis.md, rendered from the dbt model YAML: the KPI definitions are written once, there.

    python -m pipelines.defs.dbt.kpi_docs          # rewrite docs/kpis.md

`tests/test_dbt_project.py` fails when the document and the YAML disagree.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.core.config import PROJECT_ROOT

DOC_PATH = PROJECT_ROOT / "docs" / "kpis.md"

#: Document sections: title and the models they describe, in reading order.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Monthly KPIs", ("kpi_monthly",)),
    ("Filtered KPIs: the additive cells behind the dashboard's filters", ("kpi_monthly_cells", "kpi_customer_monthly")),
    ("Retention cohorts", ("retention_cohorts",)),
    ("Post-purchase messages", ("message_engagement_monthly",)),
    ("Complaint recovery", ("complaint_recovery",)),
    ("Cross-domain views: what brings customers back", (
        "repurchase_by_delivery", "repurchase_by_nps_band", "repurchase_by_message_exposure",
    )),
    ("Products: the journey from the first purchase, and what brings customers back", (
        "product_retention", "product_transitions", "dim_products", "fct_order_lines", "product_journey_rules",
    )),
    ("Customer 360 and the facts behind the KPIs", ("dim_customers", "fct_orders", "fct_support_tickets")),
    ("Building blocks", (
        "int_reporting_window", "int_order_returns", "int_messages_funnel", "int_survey_responses_banded",
        "int_support_tickets_lifecycle",
    )),
)

INTRO = """# KPI definitions

Generated from the dbt model YAML (`models/marts/*.yml`, `models/intermediate/*.yml`) by
`python -m pipelines.defs.dbt.kpi_docs`: edit the YAML, never this file. The same text is in
the dbt docs (`retain docs`) and in the warehouse as table and column comments.

Every table lives in the DuckDB schema `marts` (building blocks: `intermediate`). The rules
that hold everywhere: a *valid order* has a status other than `cancelled`, and every order
KPI counts valid orders only; a *month* is the calendar month, UTC, of the event's timestamp,
and a `month` column holds its first day; rates are fractions in [0, 1], except `nps`
(−100…100) and `csat` (0…100); an empty denominator gives NULL; a median is the 50th
percentile with linear interpolation. "The latest order in the data" is the latest
`ordered_at` of any order; "days since" measures count to the as-of date (dbt var
`as_of_date`, set from `RETAIN_AS_OF`, else the date of the latest order), never to today.
"""


def _model_specs(root: Path = PROJECT_ROOT) -> dict[str, dict]:
    specs: dict[str, dict] = {}
    for path in sorted((root / "models").rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []) or []:
            specs[model["name"]] = model
    return specs


def _text(value: str | None) -> str:
    return " ".join((value or "").split())


def render(root: Path = PROJECT_ROOT) -> str:
    """The whole of docs/kpis.md."""
    specs = _model_specs(root)
    lines = [INTRO]
    for title, models in SECTIONS:
        lines += [f"## {title}", ""]
        for name in models:
            spec = specs[name]
            lines += [f"### `{name}`", "", _text(spec.get("description")), ""]
            how = (spec.get("config") or {}).get("meta", {}).get("how_to_read")
            if how:
                lines += [f"**How to read it.** {_text(how)}", ""]
            described = [c for c in spec.get("columns", []) if c.get("description")]
            if described:
                lines += ["| column | definition |", "| --- | --- |"]
                lines += [f"| `{c['name']}` | {_text(c['description'])} |" for c in described]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write(root: Path = PROJECT_ROOT) -> Path:
    """Rewrite docs/kpis.md from the YAML; returns its path."""
    path = root / "docs" / "kpis.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(root))
    return path


if __name__ == "__main__":
    print(write().relative_to(PROJECT_ROOT))
