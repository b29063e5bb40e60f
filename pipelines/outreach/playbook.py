"""The outreach playbook: an ordered list of plays that the marketing team edits in YAML.

The default file is `pipelines/outreach/playbook.yaml`; `RETAIN_PLAYBOOK` may point to another.
`load_playbook()` validates everything and raises `PlaybookError` listing every problem as
`<file>: play '<name>' (#<position>): field '<field>': <what was expected>`.

A play's `rule` is a SQL boolean expression over the `outreach_candidates` view (see
`pipelines.outreach.candidates`). Because people outside engineering edit it, a rule may only
read that view: no `;`, no subqueries or other tables, no table functions, no functions that
read files, settings or the environment, and no wall-clock functions (use `as_of_date`, so a
backfill gives the same answer it would have given then). Rules are compiled by DuckDB against
the documented columns, so a typo in a column name fails here with the play's name, not in
the middle of a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from pipelines.core import rules
from pipelines.core.warehouse import scratch
from pipelines.outreach import holdout as ho
from pipelines.outreach.candidates import (
    CANDIDATE_COLUMNS,
    RENAMED_COLUMNS,
    VIEW_NAME,
    empty_candidates_table,
)

DEFAULT_PLAYBOOK = Path(__file__).with_name("playbook.yaml")

CHANNELS = ("email", "sms", "support_queue")
#: Channels whose plays are marketing (consent, unsubscribes, frequency cap and open tickets
#: suppress). support_queue is a service contact by the support team.
MARKETING_CHANNELS = ("email", "sms")
DEFAULT_FREQUENCY_CAP_DAYS = 7

TOP_KEYS = {"version", "settings", "plays"}
SETTINGS_KEYS = {"frequency_cap_days", "marketing_message_types", "holdout", "outcome_windows"}
PLAY_KEYS = {
    "name", "description", "channel", "action", "template", "rule", "enabled", "frequency_cap_days",
    "holdout", "outcome_windows", "experiment", "recommend_products",
}
REQUIRED_PLAY_KEYS = ("name", "channel", "action", "template", "rule")

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
TEMPLATE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
RESERVED_NAMES = {"all"}

#: Functions a rule may not call: they read outside the view, depend on the wall clock or on
#: randomness, or change state.
FORBIDDEN_FUNCTIONS = {
    "getenv", "current_setting", "getvariable", "query", "query_table", "glob", "sniff_csv",
    "read_text", "read_blob", "read_csv", "read_csv_auto", "read_parquet", "read_json",
    "read_json_auto", "read_json_objects", "parquet_scan", "nextval", "currval", "setseed",
    "random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "now", "today", "current_date",
    "current_time", "current_timestamp", "get_current_time", "get_current_timestamp",
    "transaction_timestamp", "localtime", "localtimestamp", "current_localtime",
    "current_localtimestamp", "current_database", "current_schema", "current_user", "user",
}


class PlaybookError(ValueError):
    """The playbook file is invalid; the message lists every problem found."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = Path(path)
        self.problems = problems
        super().__init__(
            f"invalid outreach playbook {path} ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n" + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True)
class Play:
    """One play: who qualifies (rule), how they are contacted (channel) and what is done (action)."""

    name: str
    priority: int
    channel: str
    action: str
    template: str
    rule: str
    description: str = ""
    frequency_cap_days: int = DEFAULT_FREQUENCY_CAP_DAYS
    #: Share of the list kept uncontacted to measure the play's lift (0: no holdout).
    holdout: float = ho.DEFAULT_HOLDOUT
    #: Days after the list date in which an order counts as the play's outcome.
    outcome_windows: tuple[int, ...] = ho.DEFAULT_OUTCOME_WINDOWS
    #: Experiment id: part of the arm hash, a new id draws new arms (pipelines.outreach.holdout).
    experiment: str = ho.DEFAULT_EXPERIMENT
    #: The list rows carry the customer's top 3 next products (ml.product_recommendations).
    recommend_products: bool = False

    @property
    def is_marketing(self) -> bool:
        """Marketing plays need consent; service plays (support_queue) do not."""
        return self.channel in MARKETING_CHANNELS

    def to_dict(self) -> dict:
        """Plain dict (stored with each run so exports never depend on today's playbook file)."""
        return {
            "name": self.name, "priority": self.priority, "channel": self.channel,
            "action": self.action, "template": self.template, "rule": self.rule,
            "description": self.description, "frequency_cap_days": self.frequency_cap_days,
            "holdout": self.holdout, "outcome_windows": list(self.outcome_windows), "experiment": self.experiment,
            "recommend_products": self.recommend_products,
        }


@dataclass(frozen=True)
class Playbook:
    """A validated playbook: enabled plays in priority order plus suppression settings."""

    path: Path
    plays: tuple[Play, ...]
    frequency_cap_days: int = DEFAULT_FREQUENCY_CAP_DAYS
    #: The playbook's own list of marketing message types; None: the seed's
    #: (`is_marketing_contact` in seeds/message_types.csv, read as `fct_messages.is_marketing_contact`).
    marketing_message_types: tuple[str, ...] | None = None
    sha256: str = ""
    disabled: tuple[str, ...] = field(default_factory=tuple)

    def play(self, name: str) -> Play:
        """The play called `name`; KeyError naming the plays there are."""
        for p in self.plays:
            if p.name == name:
                return p
        raise KeyError(f"no play {name!r} in {self.path}; plays: {', '.join(p.name for p in self.plays)}")

    @property
    def names(self) -> list[str]:
        """Play names in priority order."""
        return [p.name for p in self.plays]


def default_playbook_path() -> Path:
    """`RETAIN_PLAYBOOK` if set, else the playbook shipped in `pipelines/outreach/playbook.yaml`."""
    env = os.environ.get("RETAIN_PLAYBOOK")
    return Path(env).expanduser().resolve() if env else DEFAULT_PLAYBOOK


def _walk(node: object):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def rule_problems(rule: str, con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """Why `rule` is not an acceptable play rule (empty list when it is).

    `con` must have an `outreach_candidates` relation; by default an in-memory DuckDB with an
    empty table of the documented columns is used.
    """
    if not isinstance(rule, str) or not rule.strip():
        return ["expected a non-empty SQL boolean expression over outreach_candidates"]
    if ";" in rule:
        return ["a rule is one expression: ';' is not allowed"]
    own = con is None
    if own:
        con = scratch()
        empty_candidates_table(con)
    try:
        query = f"SELECT * FROM {VIEW_NAME} WHERE ({rule}\n)"
        parsed = json.loads(con.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
        if parsed.get("error"):
            return [f"not valid SQL: {parsed.get('error_message', 'parse error')}"]
        statements = parsed.get("statements", [])
        node = statements[0]["node"] if len(statements) == 1 else {}
        # The rule must not change the shape of the query it is placed in (e.g. `x) ORDER BY (1`).
        shape_ok = (
            node.get("type") == "SELECT_NODE" and not node.get("modifiers") and not node.get("group_expressions")
            and node.get("having") is None and node.get("qualify") is None and node.get("sample") is None
            and not node.get("cte_map", {}).get("map")
            and (node.get("from_table") or {}).get("table_name") == VIEW_NAME
        )
        if not shape_ok:
            return ["expected one boolean expression (no ORDER BY, GROUP BY, LIMIT or extra clauses)"]
        problems: list[str] = []
        columns = {c.name for c in CANDIDATE_COLUMNS}
        for item in _walk(node.get("where_clause")):
            cls, typ = item.get("class"), item.get("type")
            if cls == "SUBQUERY" or typ in ("SELECT_NODE", "BASE_TABLE", "TABLE_FUNCTION", "SUBQUERY"):
                problems.append(f"a rule may only read {VIEW_NAME}: subqueries and other tables are not allowed")
            elif cls == "COLUMN_REF":
                names = [n.lower() for n in item.get("column_names", [])]
                col = names[-1] if names else ""
                if names[:-1] not in ([], [VIEW_NAME]) or col not in columns:
                    wall_clock = col.startswith(("current_", "now", "today"))
                    hint = " (use as_of_date, not the wall clock)" if wall_clock else ""
                    if col in RENAMED_COLUMNS:
                        hint = f" (renamed: use {RENAMED_COLUMNS[col]})"
                    problems.append(f"unknown column {'.'.join(names)!r}{hint}; see docs/outreach-and-exports.md")
            elif cls == "FUNCTION":
                fname = str(item.get("function_name", "")).lower()
                if item.get("schema") or item.get("catalog") or fname in FORBIDDEN_FUNCTIONS:
                    hint = " (use as_of_date)" if fname in {"now", "today", "current_date", "current_timestamp"} else ""
                    problems.append(f"function {fname}() is not allowed in a rule{hint}")
        if problems:
            return sorted(set(problems))
        try:
            con.execute(f"EXPLAIN {query}")
            kind = con.execute(f"DESCRIBE SELECT ({rule}\n) AS r FROM {VIEW_NAME}").fetchall()[0][1]
        except duckdb.Error as exc:
            return [f"DuckDB cannot compile it: {str(exc).splitlines()[0]}"]
        if kind != "BOOLEAN":
            return [f"expected a boolean expression, got {kind}"]
        return []
    finally:
        if own:
            con.close()


def _int_field(value: object, where: str, problems: list[str], lo: int = 0, hi: int = 365) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append(f"{where}: expected a whole number of days from {lo} to {hi}, got {value!r}")
        return None
    return value


def _holdout_field(value: object, where: str, problems: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= ho.MAX_HOLDOUT:
        problems.append(
            f"{where}: expected a share of the list from 0 to {ho.MAX_HOLDOUT} (0.1 = 10%, 0 = no holdout), "
            f"got {value!r}"
        )
        return None
    return float(value)


def _windows_field(value: object, where: str, problems: list[str]) -> tuple[int, ...] | None:
    ok = isinstance(value, list) and value and all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 365 for v in value
    )
    if not ok or len(set(value)) != len(value):
        problems.append(f"{where}: expected a list of distinct whole numbers of days from 1 to 365, got {value!r}")
        return None
    return tuple(sorted(value))


def parse_playbook(text: str, path: Path | str = "<playbook>") -> Playbook:
    """Validate playbook YAML text and return the `Playbook` (raises `PlaybookError`)."""
    path = Path(path)
    problems: list[str] = []
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlaybookError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise PlaybookError(path, ["expected a mapping with keys 'version', 'settings' and 'plays'"])
    for key in sorted(set(raw) - TOP_KEYS, key=str):
        problems.append(f"unknown top-level key {key!r}; expected one of {', '.join(sorted(TOP_KEYS))}")
    if raw.get("version", 1) != 1:
        problems.append(f"field 'version': expected 1, got {raw.get('version')!r}")

    settings = raw.get("settings") or {}
    cap_days, mtypes = DEFAULT_FREQUENCY_CAP_DAYS, None
    holdout, windows = ho.DEFAULT_HOLDOUT, ho.DEFAULT_OUTCOME_WINDOWS
    if not isinstance(settings, dict):
        problems.append("field 'settings': expected a mapping")
        settings = {}
    for key in sorted(set(settings) - SETTINGS_KEYS, key=str):
        problems.append(f"settings: unknown key {key!r}; expected one of {', '.join(sorted(SETTINGS_KEYS))}")
    if "frequency_cap_days" in settings:
        cap_days = _int_field(settings["frequency_cap_days"], "settings: field 'frequency_cap_days'", problems)
        cap_days = DEFAULT_FREQUENCY_CAP_DAYS if cap_days is None else cap_days
    if "marketing_message_types" in settings:
        allowed = set(rules.message_types())
        value = settings["marketing_message_types"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append("settings: field 'marketing_message_types': expected a list of message types")
        else:
            bad = [v for v in value if v not in allowed]
            if bad:
                problems.append(
                    f"settings: field 'marketing_message_types': unknown message type(s) {', '.join(bad)}; "
                    f"expected message types of {rules.SEEDS_DIR / 'message_types.csv'}: {', '.join(sorted(allowed))}"
                )
            mtypes = tuple(value)
    if "holdout" in settings:
        value = _holdout_field(settings["holdout"], "settings: field 'holdout'", problems)
        holdout = holdout if value is None else value
    if "outcome_windows" in settings:
        value = _windows_field(settings["outcome_windows"], "settings: field 'outcome_windows'", problems)
        windows = windows if value is None else value

    plays_raw = raw.get("plays")
    if not isinstance(plays_raw, list) or not plays_raw:
        problems.append("field 'plays': expected a non-empty list of plays")
        plays_raw = []

    plays: list[Play] = []
    disabled: list[str] = []
    seen: set[str] = set()
    con = scratch()
    empty_candidates_table(con)
    try:
        for pos, item in enumerate(plays_raw, start=1):
            label = f"play #{pos}"
            if not isinstance(item, dict):
                problems.append(f"{label}: expected a mapping with {', '.join(REQUIRED_PLAY_KEYS)}")
                continue
            name = item.get("name")
            if isinstance(name, str) and name:
                label = f"play {name!r} (#{pos})"
            for key in sorted(set(item) - PLAY_KEYS, key=str):
                problems.append(f"{label}: unknown key {key!r}; expected one of {', '.join(sorted(PLAY_KEYS))}")
            for key in REQUIRED_PLAY_KEYS:
                if key not in item or item[key] in (None, ""):
                    problems.append(f"{label}: field {key!r} is required")
            ok = True
            if "name" in item and item["name"] not in (None, ""):
                if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in RESERVED_NAMES:
                    problems.append(
                        f"{label}: field 'name': expected lower-case letters, digits and '_' starting with a "
                        f"letter (and not 'all'), got {name!r}"
                    )
                    ok = False
                elif name in seen:
                    problems.append(f"{label}: field 'name': duplicate play name {name!r}")
                    ok = False
                seen.add(str(name))
            channel = item.get("channel")
            if channel not in (None, "") and channel not in CHANNELS:
                problems.append(f"{label}: field 'channel': expected one of {', '.join(CHANNELS)}, got {channel!r}")
                ok = False
            action = item.get("action")
            if action not in (None, "") and not isinstance(action, str):
                problems.append(f"{label}: field 'action': expected text, got {action!r}")
                ok = False
            template = item.get("template")
            if template not in (None, "") and (not isinstance(template, str) or not TEMPLATE_RE.fullmatch(template)):
                problems.append(
                    f"{label}: field 'template': expected a template key of letters, digits, '_', '.', '-', "
                    f"got {template!r}"
                )
                ok = False
            enabled = item.get("enabled", True)
            if not isinstance(enabled, bool):
                problems.append(f"{label}: field 'enabled': expected true or false, got {enabled!r}")
                ok = False
            recommend = item.get("recommend_products", False)
            if not isinstance(recommend, bool):
                problems.append(f"{label}: field 'recommend_products': expected true or false, got {recommend!r}")
                ok = False
            play_cap = cap_days
            if "frequency_cap_days" in item:
                play_cap = _int_field(item["frequency_cap_days"], f"{label}: field 'frequency_cap_days'", problems)
                ok = ok and play_cap is not None
            play_holdout, play_windows, experiment = holdout, windows, ho.DEFAULT_EXPERIMENT
            if "holdout" in item:
                play_holdout = _holdout_field(item["holdout"], f"{label}: field 'holdout'", problems)
                ok = ok and play_holdout is not None
            if "outcome_windows" in item:
                play_windows = _windows_field(item["outcome_windows"], f"{label}: field 'outcome_windows'", problems)
                ok = ok and play_windows is not None
            if "experiment" in item:
                experiment = item["experiment"]
                if isinstance(experiment, int) and not isinstance(experiment, bool):
                    experiment = str(experiment)
                if not isinstance(experiment, str) or not TEMPLATE_RE.fullmatch(experiment):
                    problems.append(
                        f"{label}: field 'experiment': expected an id of letters, digits, '_', '.', '-', "
                        f"got {item['experiment']!r}"
                    )
                    ok = False
            rule = item.get("rule")
            if rule not in (None, ""):
                for problem in rule_problems(rule if isinstance(rule, str) else "", con):
                    problems.append(f"{label}: field 'rule': {problem}")
                    ok = False
            if not ok or any(item.get(k) in (None, "") for k in REQUIRED_PLAY_KEYS):
                continue
            if not enabled:
                disabled.append(name)
                continue
            plays.append(
                Play(
                    name=name, priority=len(plays) + 1, channel=channel, action=action.strip(),
                    template=template, rule=" ".join(rule.split()),
                    description=" ".join(str(item.get("description", "")).split()),
                    frequency_cap_days=play_cap, holdout=play_holdout, outcome_windows=play_windows,
                    experiment=experiment, recommend_products=recommend,
                )
            )
    finally:
        con.close()
    if problems:
        raise PlaybookError(path, problems)
    if not plays:
        raise PlaybookError(path, ["every play is disabled: enable at least one"])
    return Playbook(
        path=path, plays=tuple(plays), frequency_cap_days=cap_days, marketing_message_types=mtypes,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), disabled=tuple(disabled),
    )


def load_playbook(path: Path | str | None = None) -> Playbook:
    """Read and validate a playbook file (default: `RETAIN_PLAYBOOK` or the shipped playbook.yaml)."""
    path = Path(path) if path else default_playbook_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(path, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    return parse_playbook(text, path)


def describe_plays(path: Path | str | None = None) -> list[dict]:
    """The plays of a playbook as plain dicts in priority order (what `retain plays` prints)."""
    return [p.to_dict() for p in load_playbook(path).plays]
