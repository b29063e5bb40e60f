"""Mapping features the helpdesk, ESP, review and survey importers use: lookups, quarantine rules, pages."""

from __future__ import annotations

import json
import textwrap

import pytest

from pipelines.importers import load_mapping
from pipelines.importers.mapping import BUILTIN_DIR, MappingError
from tests import platform_imports
from tests.platform_imports import counts, idempotent, land, quarantined, query, run

data = platform_imports.data  # the pytest fixture: an empty data folder

PLATFORMS = ("klaviyo", "zendesk", "gorgias", "judgeme", "yotpo", "trustpilot", "okendo", "delighted")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_builtin_mappings_are_valid(platform):
    files = sorted((BUILTIN_DIR / platform).glob("*.yaml"))
    assert files
    for f in files:
        m = load_mapping(f)
        assert m.name == f"{platform}/{f.stem}"
        # a kind without targets is read only through another kind's lookups
        assert m.targets or any(s in lk.sources for o in files for lk in load_mapping(o).lookups
                                for s in m.detect_streams)


def _mapping(tmp_path, text: str):
    path = tmp_path / "_mapping.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_lookup_and_rule_errors_name_the_file_and_key(tmp_path):
    head = "format: json\ndetect: {keys: [id]}\n"
    bad_lookup = head + """\
lookups: {user: {from: [users], key: "{id}"}}
targets: {reviews: {columns: {review_id: {from: id}}}}
"""
    with pytest.raises(MappingError, match=r"_mapping.yaml: lookups.user: expected from"):
        load_mapping(_mapping(tmp_path, bad_lookup))
    bad_rule = head + """\
targets:
  support_tickets:
    quarantine: [{when: "TRUE", code: x}]
    columns: {ticket_id: {from: id}, customer_id: {from: id}, ticket_type: {from: id},
              category: {from: id}, created_at: {from: id}}
"""
    with pytest.raises(MappingError, match=r"targets.support_tickets.quarantine\[0\]: expected when"):
        load_mapping(_mapping(tmp_path, bad_rule))


def test_a_tool_of_its_own_with_lookups_rules_and_pages_per_line(data):
    """A made-up helpdesk: pages one per line, the customer sideloaded, spam quarantined with a reason."""
    folder = land(data, "acmedesk")
    (folder / "_mapping.yaml").write_text(textwrap.dedent("""\
        platform: acmedesk
        kind: tickets
        title: ACME desk tickets
        format: json
        records: tickets
        detect: {keys: [ticket_no, person]}
        timezone: utc
        lookups:
          who: {stream: people, key: pid, match: person}
        targets:
          support_tickets:
            quarantine:
              - {when: "{spam} = 'true'", code: spam, column: spam, message: "ticket {ticket_no} is spam"}
            columns:
              ticket_id: {from: ticket_no}
              customer_id: {customer: {email: "{who.mail}", fallback: "'acme:' || {person}"}, label: person}
              ticket_type: {sql: "'question'"}
              category: {sql: "'other'"}
              created_at: {from: opened}
        """))
    pages = [
        {"tickets": [{"ticket_no": 1, "person": 7.0, "opened": "2025-03-01T10:00:00Z", "spam": False},
                     {"ticket_no": 2, "person": 8, "opened": "2025-03-02T10:00:00Z", "spam": True}],
         "people": [{"pid": 7, "mail": "Anna@Example.com"}]},
        {"tickets": [{"ticket_no": 3, "person": 9, "opened": "2025-03-03T10:00:00Z", "spam": False}], "people": []},
    ]
    (folder / "tickets.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pages) + "{not json\n")
    assert counts(run(data)) == {("support_tickets", "tickets.jsonl"): ("loaded", 4, 2, 2)}
    rows = query(data, "SELECT ticket_id, customer_id FROM raw.support_tickets ORDER BY 1")
    assert rows[0][0] == "1" and rows[0][1].startswith("em_")  # person 7.0 is pid 7: keyed by the email
    assert rows[1] == ("3", "acme:9")  # nobody sideloaded: the platform id, kept
    assert [(r[1], r[3], r[4]) for r in quarantined(data, "tickets.jsonl")] == [
        (2, "spam", "ticket 2 is spam"), (4, "malformed_json", "line 3 is not a JSON object: '{not json'")]
    idempotent(data)
