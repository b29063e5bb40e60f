"""Business rules kept as dbt seeds: one definition, read by dbt and by the Python consumers.

The dbt side is tested by the unit tests in models/ (the bands of int_survey_responses_banded
and fct_feedback, the flags of int_support_tickets_lifecycle, all with the seed files as input)
and on real data by tests/test_pipeline_e2e.py. Here: the seeds agree with the data contract,
the bands cover every score once, and the Python readers (the playbook's validation, the
generator) read the seed and fail clearly when it lacks a value they need.
"""

from __future__ import annotations

import csv
import importlib
import shutil
from pathlib import Path

import pytest

from pipelines.core import rules
from pipelines.core.contract import source
from pipelines.outreach import PlaybookError, parse_playbook

PLAY = "plays:\n  - {name: a, channel: email, action: b, template: c, rule: is_scored}\n"


@pytest.fixture
def seeds(tmp_path, monkeypatch):
    """A copy of seeds/ that a test may edit; the readers read it instead of the real one."""
    folder = tmp_path / "seeds"
    shutil.copytree(rules.SEEDS_DIR, folder)
    monkeypatch.setattr(rules, "SEEDS_DIR", folder)
    rules.seed_rows.cache_clear()
    yield folder
    rules.seed_rows.cache_clear()


def _drop(folder, name: str, column: str, value: str) -> None:
    path = folder / f"{name}.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r[column] != value)
    rules.seed_rows.cache_clear()


@pytest.mark.parametrize(
    ("seed", "column", "contract_source"),
    [
        ("message_types", "message_type", "messages"),
        ("ticket_categories", "category", "support_tickets"),
        ("ticket_types", "ticket_type", "support_tickets"),
    ],
)
def test_seed_lists_the_values_the_contract_allows(seed, column, contract_source):
    allowed = source(contract_source).column(column).allowed
    assert sorted(rules.seed_values(seed, column)) == sorted(allowed)


def test_marketing_lists_are_the_two_documented_rules():
    consent = set(rules.consent_marketing_types())
    contact = set(rules.marketing_contact_types())
    assert consent == {"cross_sell", "winback_offer", "loyalty", "newsletter", "promotion"}
    assert contact == consent | {"how_to_guide", "product_care", "review_request"}


def test_feedback_bands_cover_every_score_once():
    ranges = {"nps": range(0, 11), "csat": range(1, 6), "ces": range(1, 8), "review": range(1, 6)}
    rows = rules.seed_rows("feedback_bands")
    for kind, scores in ranges.items():
        for score in scores:
            hits = [r for r in rows
                    if r["feedback_type"] == kind and int(r["score_min"]) <= score <= int(r["score_max"])]
            assert len(hits) == 1, (kind, score, hits)
    detractor = [r for r in rows if r["nps_band"] == "detractor"]
    assert [(int(r["score_min"]), int(r["score_max"]), r["sentiment"]) for r in detractor] == [(0, 6, "negative")]


def test_playbook_validation_reads_the_seed(seeds):
    # a type the seed has is accepted; once the seed drops it, the playbook is told which file to fix
    parse_playbook("settings: {marketing_message_types: [newsletter]}\n" + PLAY, "team.yaml")
    _drop(seeds, "message_types", "message_type", "newsletter")
    with pytest.raises(PlaybookError) as exc:
        parse_playbook("settings: {marketing_message_types: [newsletter]}\n" + PLAY, "team.yaml")
    assert "unknown message type(s) newsletter" in str(exc.value)
    assert str(seeds / "message_types.csv") in str(exc.value)


def test_playbook_names_the_new_column_of_a_renamed_rule():
    with pytest.raises(PlaybookError) as exc:
        parse_playbook(PLAY.replace("is_scored", "is_detractor_30d"), "team.yaml")
    assert "renamed: use is_dissatisfied_30d" in str(exc.value)


@pytest.mark.parametrize(
    ("seed", "column", "value"),
    [("ticket_categories", "category", "wismo"), ("ticket_types", "ticket_type", "complaint"),
     ("message_types", "message_type", "newsletter")],
)
def test_generator_reads_the_seeds_and_names_a_missing_value(seeds, seed, column, value):
    from pipelines.generate import catalog

    real = Path(catalog.__file__).resolve().parents[2] / "seeds"
    _drop(seeds, seed, column, value)
    try:
        with pytest.raises(rules.SeedError) as exc:
            importlib.reload(catalog)
        assert str(seeds / f"{seed}.csv") in str(exc.value) and repr(value) in str(exc.value)
    finally:
        rules.SEEDS_DIR = real
        rules.seed_rows.cache_clear()
        importlib.reload(catalog)  # the real lists again, for the tests after this one
