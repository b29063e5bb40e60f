"""The data contract: one definition, rendered into the docs, consistent with itself."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.core.contract import DUCKDB_TYPES, load_contract, to_markdown

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_SOURCES = [
    "customers", "orders", "order_items", "returns", "messages", "survey_responses", "reviews", "support_tickets",
]


def test_all_eight_sources_are_defined():
    assert list(load_contract()) == EXPECTED_SOURCES


def test_keys_and_references_point_at_real_columns():
    sources = load_contract()
    for src in sources.values():
        names = set(src.column_names)
        assert set(src.primary_key) <= names, src.name
        for col_name in (src.updated_at, src.event_at):
            assert col_name is None or col_name in names, (src.name, col_name)
        for col in src.columns:
            assert col.type in DUCKDB_TYPES
            if col.references:
                ref_source, ref_col = col.references.split(".")
                assert ref_col in sources[ref_source].column_names, (src.name, col.name)


def test_a_plain_transaction_log_is_enough_for_orders():
    orders = load_contract()["orders"]
    assert orders.required_columns == ["customer_id", "ordered_at", "total"]


def test_docs_render_the_contract_without_drift():
    doc = (ROOT / "docs" / "data-contract.md").read_text()
    match = re.search(r"<!-- contract:begin[^>]*-->\n(.*)<!-- contract:end -->", doc, re.S)
    assert match, "docs/data-contract.md lost its generated section markers"
    assert match.group(1).strip() == to_markdown().strip(), (
        "docs/data-contract.md is out of date: regenerate it with `retain contract --markdown`"
    )
