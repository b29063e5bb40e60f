"""Outreach: playbook, eligibility, suppression, lists and CRM/ad-platform exports (no Dagster here).

Typical use::

    from pipelines.core.warehouse import connect
    from pipelines.outreach import build_outreach_lists, export

    con = connect()                                        # the warehouse, RETAIN_WAREHOUSE
    summary = build_outreach_lists(con)                    # exports.runs / outreach_lists / suppressions
    export(con, "all", "hubspot", Path("data/exports"))    # files + manifest + diffs per play

See docs/outreach-and-exports.md.
"""

from pipelines.outreach.candidates import (
    CANDIDATE_COLUMNS,
    INPUT_TABLES,
    OutreachInputError,
    create_candidates_view,
    resolve_as_of,
)
from pipelines.outreach.exporter import (
    ExportError,
    ExportResult,
    diff_tables,
    export,
    export_one,
    export_table,
    plays_for_run,
    read_latest,
    render_export,
    run_info,
    supports,
)
from pipelines.outreach.formats import EXPORT_FORMATS, FORMATS, get_format
from pipelines.outreach.lists import (
    SUPPRESSION_REASONS,
    RunSummary,
    build_outreach_lists,
    ensure_tables,
    latest_run_id,
    new_run_id,
)
from pipelines.outreach.normalize import (
    mask_email,
    mask_phone,
    neutralize_cell,
    normalize_email,
    to_e164,
)
from pipelines.outreach.playbook import (
    CHANNELS,
    Play,
    Playbook,
    PlaybookError,
    default_playbook_path,
    describe_plays,
    load_playbook,
    parse_playbook,
)

__all__ = [
    "CANDIDATE_COLUMNS", "CHANNELS", "EXPORT_FORMATS", "FORMATS", "INPUT_TABLES", "SUPPRESSION_REASONS",
    "ExportError", "ExportResult", "OutreachInputError", "Play", "Playbook", "PlaybookError", "RunSummary",
    "build_outreach_lists", "create_candidates_view", "default_playbook_path", "describe_plays",
    "diff_tables", "ensure_tables", "export", "export_one", "export_table", "get_format", "latest_run_id",
    "load_playbook", "mask_email", "mask_phone", "neutralize_cell", "new_run_id", "normalize_email",
    "parse_playbook", "plays_for_run", "read_latest", "render_export", "resolve_as_of", "run_info",
    "supports", "to_e164",
]
