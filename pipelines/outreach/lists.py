"""Build the outreach lists of one run: eligibility by play priority, then suppression.

`build_outreach_lists(con, ...)` writes three tables in the `exports` schema, in one
transaction, keeping earlier runs as history (thinned with age, see `pipelines.core.history`):

* `exports.runs` — one row per run: the date it is for, the playbook (path, hash and plays as
  JSON), the scores used, counts, and the freshness of the source data;
* `exports.outreach_lists` — who is contacted: one row per customer and run, in at most one
  play (the first whose rule matches, by priority), with the churn model's reasons;
* `exports.suppressions` — who matched a play but must not be contacted, one row per reason;
* `exports.holdouts` — who would be listed but is held out to measure the play's lift, and
  `exports.experiments` — each play's holdout share and outcome windows of the run
  (`pipelines.outreach.holdout`).

Suppression always wins and never moves a customer to a later play. The holdout is drawn
from the customers left after suppression; a play with `holdout: 0` lists exactly them.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from pipelines.core.history import HistoryPolicy
from pipelines.outreach import holdout as ho
from pipelines.outreach.candidates import (
    CANDIDATE_COLUMNS,
    VIEW_NAME,
    create_candidates_view,
    dim_columns,
    validity_sql,
)
from pipelines.outreach.normalize import mask_email, mask_phone
from pipelines.outreach.playbook import Playbook, PlaybookError, load_playbook, rule_problems

log = logging.getLogger("retain.outreach")

#: The candidates of the current run, materialised once from the view.
CANDIDATES = "_retain_candidates"

#: Suppression reasons, in the order they are reported as a customer's main reason.
SUPPRESSION_REASONS = (
    "erasure_requested",
    "test_account",
    "unsubscribed",
    "no_consent",
    "invalid_address",
    "open_ticket",
    "frequency_cap",
)

#: outreach_lists columns with the recommended next products (ids and names, ranks 1-3).
NEXT_PRODUCT_COLUMNS = tuple(f"next_product_{i}_{part}" for i in (1, 2, 3) for part in ("id", "name"))

DDL = (
    "CREATE SCHEMA IF NOT EXISTS exports",
    """CREATE TABLE IF NOT EXISTS exports.runs (
        run_id VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        as_of_date DATE NOT NULL,
        playbook_path VARCHAR,
        playbook_sha256 VARCHAR,
        plays_json VARCHAR,
        model_version VARCHAR,
        scores_scored_at TIMESTAMP,
        latest_order_at TIMESTAMP,
        latest_message_at TIMESTAMP,
        latest_ticket_at TIMESTAMP,
        candidates BIGINT,
        eligible BIGINT,
        suppressed BIGINT,
        listed BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS exports.outreach_lists (
        run_id VARCHAR NOT NULL,
        play VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        channel VARCHAR NOT NULL,
        action VARCHAR,
        template VARCHAR,
        priority INTEGER,
        rank BIGINT,
        risk_tier VARCHAR,
        churn_probability DOUBLE,
        clv_12m DOUBLE,
        reasons VARCHAR,
        as_of_date DATE,
        created_at TIMESTAMP
    )""",
    # the top 3 next products, filled for plays with `recommend_products: true` (added later:
    # warehouses built before them get the columns here)
    *(f"ALTER TABLE exports.outreach_lists ADD COLUMN IF NOT EXISTS {col} VARCHAR" for col in NEXT_PRODUCT_COLUMNS),
    """CREATE TABLE IF NOT EXISTS exports.suppressions (
        run_id VARCHAR NOT NULL,
        play VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        channel VARCHAR,
        reason VARCHAR NOT NULL,
        created_at TIMESTAMP
    )""",
)


@dataclass
class RunSummary:
    """What one `build_outreach_lists` call did (also Dagster metadata and CLI output)."""

    run_id: str
    as_of_date: date
    playbook_path: str
    candidates: int = 0
    eligible: int = 0
    listed: int = 0
    suppressed: int = 0
    #: Customers left after suppression but held out to measure the lift (not listed, not exported).
    held_out: int = 0
    by_play: dict[str, dict[str, int]] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    #: Plays not run because their rule needs churn scores and none could be computed: play -> why.
    skipped_plays: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        d = asdict(self)
        d["as_of_date"] = self.as_of_date.isoformat()
        return d


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: `20250301T064500Z-3f9a1c` (UTC time plus random suffix)."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the `exports` schema and tables if they are missing."""
    for stmt in (*DDL, *ho.DDL):
        con.execute(stmt)


def _plays_values(pb: Playbook) -> str:
    def q(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    rows = [
        f"({p.priority}, {q(p.name)}, {q(p.channel)}, {q(p.action)}, {q(p.template)}, "
        f"{'true' if p.is_marketing else 'false'}, {int(p.frequency_cap_days)}, "
        f"{float(p.holdout)!r}, {q(p.experiment)}, {list(map(int, p.outcome_windows))}::INTEGER[], "
        f"{'true' if p.recommend_products else 'false'})"
        for p in pb.plays
    ]
    return (
        "(VALUES " + ", ".join(rows) + ") AS p(priority, play, channel, action, template, "
        "is_marketing, frequency_cap_days, holdout_share, experiment, outcome_windows, recommend_products)"
    )


def _next_products_sql(con: duckdb.DuckDBPyConnection) -> str:
    """A subquery: one row per customer with the recommended products' ids and names (none without the table)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ml' "
        "AND table_name = 'product_recommendations'"
    ).fetchone()[0]
    if not exists:
        cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in NEXT_PRODUCT_COLUMNS)
        return f"(SELECT CAST(NULL AS VARCHAR) AS customer_id, {cols} WHERE false)"
    cols = ", ".join(
        f"any_value(product_{part}) FILTER (WHERE rank = {i}) AS next_product_{i}_{part}"
        for i in (1, 2, 3) for part in ("id", "name")
    )
    return f"(SELECT customer_id, {cols} FROM ml.product_recommendations GROUP BY customer_id)"


#: Candidate columns read by the suppression flags, the list rows and the run's statistics.
_ALWAYS_NEEDED = (
    "customer_id", "risk_tier", "churn_probability", "clv_12m", "reason_1", "reason_2", "reason_3",
    "model_version", "scored_at", "email_marketing_consent", "sms_marketing_consent", "email_unsubscribed_via_message",
    "sms_unsubscribed_via_message", "erasure_requested", "is_test_account", "has_open_ticket",
    "days_since_last_marketing_message",
)
#: Validated for the customers in a play only (the regular expressions cost seconds for every
#: customer), unless a rule reads them.
_VALIDITY = ("has_valid_email", "has_valid_phone")


#: Candidate columns that only exist with churn scores (the scores and what is derived from them).
SCORE_DEPENDENT_COLUMNS = frozenset(
    {c.name for c in CANDIDATE_COLUMNS if c.origin == "churn_scores"} | {"clv_rank", "clv_top_share"}
)


def _rule_words(rule: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", rule)}


def plays_needing_scores(pb: Playbook) -> list[str]:
    """Names of the plays whose rule reads a churn score column (risk tier, CLV, P(alive), ...)."""
    return [p.name for p in pb.plays if _rule_words(p.rule) & SCORE_DEPENDENT_COLUMNS]


def _without_score_plays(pb: Playbook, reason: str) -> tuple[Playbook, dict[str, str]]:
    """The playbook with only its rule-only plays, and the skipped plays with `reason`."""
    skipped = plays_needing_scores(pb)
    kept = tuple(p for p in pb.plays if p.name not in skipped)
    if not kept:  # nothing would be left to run: keep the plays (with no scores they match nobody)
        return pb, {name: reason for name in skipped}
    return replace(pb, plays=kept), {name: reason for name in skipped}


def _needed_columns(pb: Playbook) -> list[str]:
    """The candidate columns a run reads: the fixed ones plus every column name a rule mentions."""
    words = {w.lower() for p in pb.plays for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", p.rule)}
    return [c.name for c in CANDIDATE_COLUMNS if c.name in _ALWAYS_NEEDED or c.name in words]


def _validity(con: duckdb.DuckDBPyConnection, columns: list[str]) -> None:
    """Temp table `_retain_validity`: `has_valid_email` and `has_valid_phone` of the assigned customers."""
    if set(_VALIDITY) <= set(columns):
        source = f"SELECT customer_id, {', '.join(_VALIDITY)} FROM {CANDIDATES}"
    else:
        email, phone = validity_sql(dim_columns(con))
        source = (f"SELECT d.customer_id, {email} AS has_valid_email, {phone} AS has_valid_phone "
                  "FROM marts.dim_customers d SEMI JOIN _retain_assigned a ON a.customer_id = d.customer_id")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _retain_validity AS {source}")


def _check_rule_types(con: duckdb.DuckDBPyConnection, pb: Playbook) -> None:
    """Compile every rule against the real columns at once (a mart type can differ from the docs)."""
    select = ", ".join(f"({p.rule}) AS rule_{p.priority}" for p in pb.plays)
    try:
        kinds = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT {select} FROM {CANDIDATES}").fetchall()}
        bad = [p for p in pb.plays if kinds.get(f"rule_{p.priority}") != "BOOLEAN"]
    except duckdb.Error:
        bad = list(pb.plays)
    problems = []
    for p in bad:
        for problem in rule_problems(p.rule, con) or ["expected a boolean expression"]:
            problems.append(f"play {p.name!r} (#{p.priority}): field 'rule': {problem}")
    if problems:
        raise PlaybookError(pb.path, problems)


def _assign(con: duckdb.DuckDBPyConnection, pb: Playbook) -> None:
    """Temp table `_retain_assigned`: each customer's first matching play (by priority)."""
    whens = "\n".join(f"WHEN coalesce(({p.rule}), false) THEN {p.priority}" for p in pb.plays)
    sql = f"""
        CREATE OR REPLACE TEMP TABLE _retain_assigned AS
        SELECT customer_id, priority FROM (
            SELECT customer_id, CASE {whens} END AS priority FROM {CANDIDATES}
        ) WHERE priority IS NOT NULL
    """
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        # Find the play whose rule fails on the real data (e.g. comparing text with a number).
        for p in pb.plays:
            try:
                con.execute(f"SELECT count(*) FROM {CANDIDATES} WHERE ({p.rule})").fetchall()[0]
            except duckdb.Error as inner:
                raise PlaybookError(
                    pb.path, [f"play {p.name!r} (#{p.priority}): field 'rule': fails on the data: "
                              f"{str(inner).splitlines()[0]}"]
                ) from exc
        raise


def _log_invalid_address_examples(con: duckdb.DuckDBPyConnection, limit: int = 3) -> None:
    """Debug log of a few invalid addresses, masked: they are personal data."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    rows = con.execute(
        f"""SELECT s.customer_id, s.channel, d.email, d.phone FROM _retain_suppressed s
            JOIN marts.dim_customers d USING (customer_id)
            WHERE s.reason = 'invalid_address' LIMIT {int(limit)}"""
    ).fetchall()
    for customer_id, channel, email, phone in rows:
        shown = mask_email(email) if channel == "email" else mask_phone(phone)
        log.debug("invalid %s address for customer %s: %s", channel, customer_id, shown)


def build_outreach_lists(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None = None,
    as_of: date | None = None,
    playbook_path: Path | str | None = None,
    playbook: Playbook | None = None,
    history: HistoryPolicy | None = None,
    scores_missing: str | None = None,
) -> RunSummary:
    """Build the outreach lists of one run into `exports.*` and return a summary.

    `scores_missing`: why there are no churn scores today (the scoring step was skipped);
    the plays whose rule needs a score are then skipped with that reason, rule-only plays
    (onboarding, review requests, ...) still run.

    Earlier runs' lists and suppressions are thinned by `history` (default:
    `HistoryPolicy.from_env()`, see `pipelines.core.history`); `exports.runs` keeps every run.

    `as_of` is the run's "today" (default: the latest `as_of_date` in `ml.churn_scores`, else
    the latest order date). Re-running with the same `run_id` replaces that run's rows.
    """
    history = history or HistoryPolicy.from_env()  # a bad setting fails here, before any work
    pb = playbook or load_playbook(playbook_path)
    skipped: dict[str, str] = {}
    if scores_missing:
        pb, skipped = _without_score_plays(pb, scores_missing)
    run_id = run_id or new_run_id()
    as_of = create_candidates_view(con, as_of, pb.marketing_message_types)
    # Computed once: the rules, the suppression flags and the run's statistics all read it.
    # Only the columns they use are kept (DuckDB then skips computing the others).
    columns = _needed_columns(pb)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {CANDIDATES} AS SELECT {', '.join(columns)} FROM {VIEW_NAME}")
    _check_rule_types(con, pb)
    _assign(con, pb)
    _validity(con, columns)
    created_at = datetime.now(UTC).replace(tzinfo=None)

    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _retain_flags AS
        SELECT a.customer_id, a.priority, p.play, p.channel, p.action, p.template, p.is_marketing,
               p.recommend_products,
               c.risk_tier, c.churn_probability, c.clv_12m,
               nullif(concat_ws('; ', c.reason_1, c.reason_2, c.reason_3), '') AS reasons,
               c.erasure_requested AS erasure_requested,
               c.is_test_account AS test_account,
               p.is_marketing AND (
                   (p.channel = 'email' AND (coalesce(lower(c.email_marketing_consent), '') = 'unsubscribed'
                                             OR c.email_unsubscribed_via_message))
                OR (p.channel = 'sms' AND (coalesce(lower(c.sms_marketing_consent), '') = 'unsubscribed'
                                           OR c.sms_unsubscribed_via_message))) AS unsubscribed,
               p.is_marketing AND (
                   (p.channel = 'email'
                    AND coalesce(lower(c.email_marketing_consent), '') NOT IN ('subscribed', 'unsubscribed'))
                OR (p.channel = 'sms'
                    AND coalesce(lower(c.sms_marketing_consent), '') NOT IN ('subscribed', 'unsubscribed')))
                   AS no_consent,
               (p.channel = 'email' AND NOT v.has_valid_email)
                OR (p.channel = 'sms' AND NOT v.has_valid_phone)
                OR (p.channel = 'support_queue' AND NOT v.has_valid_email AND NOT v.has_valid_phone)
                   AS invalid_address,
               p.is_marketing AND c.has_open_ticket AS open_ticket,
               p.is_marketing AND p.frequency_cap_days > 0
                   AND coalesce(c.days_since_last_marketing_message < p.frequency_cap_days, false) AS frequency_cap
        FROM _retain_assigned a
        JOIN {_plays_values(pb)} USING (priority)
        JOIN {CANDIDATES} c USING (customer_id)
        JOIN _retain_validity v USING (customer_id)
    """)
    # The arm of every customer left after suppression: held out of the play's list or contacted.
    held_out = ho.bucket_sql("f.customer_id", "p.play", "p.experiment")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _retain_held_out AS
        SELECT f.customer_id, f.play, p.experiment
        FROM _retain_flags f JOIN {_plays_values(pb)} USING (priority)
        WHERE p.holdout_share > 0 AND {held_out} < p.holdout_share
    """)
    reasons_union = " UNION ALL ".join(
        f"SELECT customer_id, play, channel, '{r}' AS reason, {i} AS reason_order FROM _retain_flags WHERE {r}"
        for i, r in enumerate(SUPPRESSION_REASONS)
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _retain_suppressed AS {reasons_union}")
    con.execute("DELETE FROM _retain_held_out h WHERE h.customer_id IN (SELECT customer_id FROM _retain_suppressed)")
    _log_invalid_address_examples(con)

    con.execute("BEGIN TRANSACTION")
    try:
        ensure_tables(con)
        for table in ("runs", "outreach_lists", "suppressions", "holdouts", "experiments"):
            con.execute(f"DELETE FROM exports.{table} WHERE run_id = ?", [run_id])
        con.execute(
            """INSERT INTO exports.suppressions (run_id, play, customer_id, channel, reason, created_at)
               SELECT ?, play, customer_id, channel, reason, ?::TIMESTAMP FROM _retain_suppressed
               ORDER BY play, customer_id, reason_order""",
            [run_id, created_at],
        )
        con.execute(
            f"""INSERT INTO exports.outreach_lists (run_id, play, customer_id, channel, action, template, priority,
                   rank, risk_tier, churn_probability, clv_12m, reasons, as_of_date, created_at,
                   {', '.join(NEXT_PRODUCT_COLUMNS)})
               SELECT ?, play, f.customer_id, channel, action, template, priority,
                      row_number() OVER (PARTITION BY play ORDER BY
                          coalesce(churn_probability, 0) * coalesce(clv_12m, 0) DESC,
                          churn_probability DESC NULLS LAST, clv_12m DESC NULLS LAST, f.customer_id),
                      risk_tier, churn_probability, clv_12m, reasons, ?::DATE, ?::TIMESTAMP,
                      {', '.join(f"CASE WHEN f.recommend_products THEN n.{c} END" for c in NEXT_PRODUCT_COLUMNS)}
               FROM _retain_flags f
               LEFT JOIN {_next_products_sql(con)} n ON n.customer_id = f.customer_id
               WHERE NOT EXISTS (SELECT 1 FROM _retain_suppressed s WHERE s.customer_id = f.customer_id)
                 AND NOT EXISTS (SELECT 1 FROM _retain_held_out h WHERE h.customer_id = f.customer_id)""",
            [run_id, as_of, created_at],
        )
        con.execute(
            """INSERT INTO exports.holdouts (run_id, play, customer_id, experiment, risk_tier, churn_probability,
                   clv_12m, as_of_date, created_at)
               SELECT ?, f.play, f.customer_id, h.experiment, f.risk_tier, f.churn_probability, f.clv_12m,
                      ?::DATE, ?::TIMESTAMP
               FROM _retain_flags f JOIN _retain_held_out h USING (customer_id)
               ORDER BY f.play, f.customer_id""",
            [run_id, as_of, created_at],
        )
        con.execute(
            f"""INSERT INTO exports.experiments (run_id, play, experiment, template, holdout_share, outcome_windows,
                    contacted, held_out, as_of_date, created_at)
                SELECT ?, p.play, p.experiment, p.template, p.holdout_share, p.outcome_windows,
                       (SELECT count(*) FROM exports.outreach_lists l WHERE l.run_id = ? AND l.play = p.play),
                       (SELECT count(*) FROM _retain_held_out h WHERE h.play = p.play),
                       ?::DATE, ?::TIMESTAMP
                FROM {_plays_values(pb)}
                ORDER BY p.priority""",
            [run_id, run_id, as_of, created_at],
        )
        fresh = con.execute(f"""
            SELECT (SELECT max(scored_at) FROM {CANDIDATES}),
                   (SELECT mode(model_version) FROM {CANDIDATES} WHERE model_version IS NOT NULL),
                   (SELECT max(ordered_at) FROM marts.fct_orders WHERE ordered_at < DATE '{as_of}' + INTERVAL 1 DAY),
                   (SELECT max(sent_at) FROM marts.fct_messages
                     WHERE sent_at < DATE '{as_of}' + INTERVAL 1 DAY),
                   (SELECT max(created_at) FROM marts.fct_support_tickets
                     WHERE created_at < DATE '{as_of}' + INTERVAL 1 DAY),
                   (SELECT count(*) FROM {CANDIDATES}),
                   (SELECT count(*) FROM _retain_flags),
                   (SELECT count(DISTINCT customer_id) FROM _retain_suppressed),
                   (SELECT count(*) FROM exports.outreach_lists WHERE run_id = ?)
        """, [run_id]).fetchall()[0]
        scored_at, model_version, latest_order, latest_msg, latest_ticket, n_cand, n_elig, n_supp, n_list = fresh
        con.execute(
            "INSERT INTO exports.runs VALUES (?, ?::TIMESTAMP, ?::DATE, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, created_at, as_of, str(pb.path), pb.sha256, json.dumps([p.to_dict() for p in pb.plays]),
             model_version, scored_at, latest_order, latest_msg, latest_ticket, n_cand, n_elig, n_supp, n_list],
        )
        # thin older runs' lists and suppressions (pipelines.core.history); the run log itself is kept whole
        history.prune(
            con, "exports.runs", "as_of_date",
            also={"exports.outreach_lists": "run_id", "exports.suppressions": "run_id",
                  "exports.holdouts": "run_id", "exports.experiments": "run_id"}, keep_table=True,
            protect=as_of,
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise

    summary = RunSummary(
        run_id=run_id, as_of_date=as_of, playbook_path=str(pb.path), candidates=n_cand,
        eligible=n_elig, listed=n_list, suppressed=n_supp, skipped_plays=skipped,
    )
    per_play = con.execute("""
        SELECT f.play,
               count(*) AS eligible,
               count(*) FILTER (WHERE s.customer_id IS NULL AND h.customer_id IS NULL) AS listed,
               count(*) FILTER (WHERE s.customer_id IS NOT NULL) AS suppressed,
               count(h.customer_id) AS held_out
        FROM _retain_flags f
        LEFT JOIN (SELECT DISTINCT customer_id FROM _retain_suppressed) s USING (customer_id)
        LEFT JOIN _retain_held_out h USING (customer_id)
        GROUP BY f.play
    """).fetchall()
    found = {row[0]: {"eligible": row[1], "listed": row[2], "suppressed": row[3], "held_out": row[4]}
             for row in per_play}
    empty = {"eligible": 0, "listed": 0, "suppressed": 0, "held_out": 0}
    summary.by_play = {p.name: found.get(p.name, dict(empty)) for p in pb.plays}
    summary.held_out = sum(c["held_out"] for c in summary.by_play.values())
    reason_counts = dict(con.execute(
        "SELECT reason, count(*) FROM _retain_suppressed GROUP BY reason"
    ).fetchall())
    summary.by_reason = {r: int(reason_counts.get(r, 0)) for r in SUPPRESSION_REASONS}
    for t in (CANDIDATES, "_retain_assigned", "_retain_validity", "_retain_flags", "_retain_suppressed",
              "_retain_held_out"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    log.info(
        "outreach run %s for %s: %d candidates, %d eligible, %d suppressed, %d listed",
        run_id, as_of, n_cand, n_elig, n_supp, n_list,
    )
    return summary


def latest_run_id(con: duckdb.DuckDBPyConnection) -> str | None:
    """The most recent run in `exports.runs`, or None when there is none."""
    try:
        rows = con.execute("SELECT run_id FROM exports.runs ORDER BY created_at DESC, run_id DESC LIMIT 1").fetchall()
    except duckdb.CatalogException:
        return None
    return rows[0][0] if rows else None
