"""The `outreach_candidates` view: one row per customer, everything a playbook rule may read.

Rules in the playbook are SQL boolean expressions over this view and nothing else. It joins
`marts.dim_customers` (minus names, email and phone: rules do not need personal data) with the
customer's latest churn score and adds derived fields computed **as of** the run's date
(`as_of_date`), never the wall clock, so a backfill for an old date gives the answer it would
have given then:

* events count when they happened before the end of `as_of_date` (`< as_of_date + 1 day`);
* "N days ago" is `date_diff('day', event::date, as_of_date)`, so today is 0;
* "within 30 days" means 0 to 30 days ago, inclusive.

`dim_customers` itself is built from all data; the columns recomputed as of the run date are
`days_since_last_order`, `last_nps_score` and `last_csat_score` (the rest, such as
`orders_count`, are the mart's values and can include later orders in a backfill).

The view reads marts only (`INPUT_TABLES`), and every business rule it applies as of the run
date is a mart column: a complaint is `fct_support_tickets.is_complaint` and an open ticket
`is_open` (or resolved after the run date), a dissatisfied or promoter answer is
`fct_feedback.is_dissatisfied` / `is_promoter`, a marketing message is
`fct_messages.is_marketing_contact` (unless the playbook lists its own types).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from pipelines.outreach.normalize import install_macros

#: Tables the view reads; `build_outreach_lists` checks they exist and names the missing ones.
INPUT_TABLES = (
    "marts.dim_customers",
    "marts.fct_orders",
    "marts.fct_support_tickets",
    "marts.fct_messages",
    "marts.fct_feedback",
    "ml.churn_scores",
)

#: The action tiers of the latest scores batch (dbt model `customer_action_tiers`, built after
#: scoring and before the lists: the tier rule lives there alone). Optional: without it, or
#: for a score from another batch (a backfill reading the history), the tier columns are NULL.
ACTION_TIERS_TABLE = "marts.customer_action_tiers"

#: Columns read from ml.churn_scores (and ml.churn_scores_history, when it exists).
SCORE_TABLE_COLUMNS = (
    "customer_id", "scored_at", "as_of_date", "churn_probability", "risk_tier", "p_alive",
    "expected_purchases_90d", "clv_12m", "reason_1", "reason_2", "reason_3", "model_version",
)

#: Old names of candidate columns, with what replaced them (the playbook's validation says so).
RENAMED_COLUMNS = {
    "is_detractor": "is_dissatisfied (latest NPS 0-6 or latest CSAT 1-2; an NPS-only detractor is not a column)",
    "is_detractor_30d": "is_dissatisfied_30d (NPS 0-6 or CSAT 1-2 answered in the last 30 days)",
}


@dataclass(frozen=True)
class CandidateColumn:
    """One column of `outreach_candidates`: its name, DuckDB type, origin and meaning."""

    name: str
    type: str
    origin: str  # dim_customers | as_of | churn_scores | derived
    description: str


def _c(name: str, type_: str, origin: str, description: str) -> CandidateColumn:
    return CandidateColumn(name, type_, origin, description)


#: dim_customers columns passed through unchanged (email, phone and names are left out).
DIM_COLUMNS: tuple[CandidateColumn, ...] = (
    _c("customer_id", "VARCHAR", "dim_customers", "Customer identifier."),
    _c("country", "VARCHAR", "dim_customers", "ISO 3166-1 alpha-2 country, upper-case (NULL if not a valid code)."),
    _c("email_marketing_consent", "VARCHAR", "dim_customers", "subscribed, unsubscribed or never_subscribed."),
    _c("sms_marketing_consent", "VARCHAR", "dim_customers", "subscribed, unsubscribed or never_subscribed."),
    _c("first_order_at", "TIMESTAMP", "dim_customers", "First valid order."),
    _c("last_order_at", "TIMESTAMP", "dim_customers", "Latest valid order."),
    _c("orders_count", "BIGINT", "dim_customers", "Valid orders."),
    _c("lifetime_revenue", "DOUBLE", "dim_customers", "Sum of order totals."),
    _c("lifetime_refunds", "DOUBLE", "dim_customers", "Sum of refunds."),
    _c("net_revenue", "DOUBLE", "dim_customers", "Revenue minus refunds."),
    _c("avg_order_value", "DOUBLE", "dim_customers", "Average order total."),
    _c("avg_days_between_orders", "DOUBLE", "dim_customers", "Average gap between consecutive orders."),
    _c("complaints_count", "BIGINT", "dim_customers", "Support tickets that are complaints."),
    _c("open_tickets_count", "BIGINT", "dim_customers", "Open tickets when the mart was built."),
    _c("avg_review_rating", "DOUBLE", "dim_customers", "Average review stars."),
    _c("late_deliveries_count", "BIGINT", "dim_customers", "Orders delivered after the promised date."),
    _c("last_message_at", "TIMESTAMP", "dim_customers", "Latest message of any kind."),
    _c("is_repeat_customer", "BOOLEAN", "dim_customers", "Two or more valid orders."),
)

#: dim_customers columns that the view recomputes as of the run date.
AS_OF_COLUMNS: tuple[CandidateColumn, ...] = (
    _c("days_since_last_order", "BIGINT", "as_of", "Days from the latest valid order to as_of_date."),
    _c("last_nps_score", "BIGINT", "as_of", "Latest NPS answer (0-10) up to as_of_date."),
    _c("last_csat_score", "BIGINT", "as_of", "Latest CSAT answer (1-5) up to as_of_date."),
)

SCORE_COLUMNS: tuple[CandidateColumn, ...] = (
    _c("is_scored", "BOOLEAN", "churn_scores", "The customer has a churn score for as_of_date or earlier."),
    _c("churn_probability", "DOUBLE", "churn_scores", "Churn probability 0-1."),
    _c("risk_tier", "VARCHAR", "churn_scores", "high, medium or low."),
    _c("p_alive", "DOUBLE", "churn_scores", "BG/NBD probability the customer is still active."),
    _c("expected_purchases_90d", "DOUBLE", "churn_scores", "Expected purchases in the next 90 days."),
    _c("clv_12m", "DOUBLE", "churn_scores", "Predicted 12-month customer lifetime value."),
    _c("reason_1", "VARCHAR", "churn_scores", "Main reason behind the churn score."),
    _c("reason_2", "VARCHAR", "churn_scores", "Second reason."),
    _c("reason_3", "VARCHAR", "churn_scores", "Third reason."),
    _c("model_version", "VARCHAR", "churn_scores", "Model that produced the score."),
    _c("action_tier", "VARCHAR", "churn_scores",
       "high, medium, low or dormant (marts.customer_action_tiers): the active base (last order within "
       "365 days) ranked by value_at_risk, top 5% high, next 15% medium, the rest low; older customers "
       "dormant. A list a team can work, unlike risk_tier. NULL without a score of the latest batch."),
    _c("value_at_risk", "DOUBLE", "churn_scores",
       "Expected value at risk, churn_probability × clv_12m (NULL CLV counts 0): the tiers' ranking."),
    _c("action_rank", "BIGINT", "churn_scores", "Rank by value_at_risk in the active base, 1 = most at risk; "
       "NULL for dormant customers."),
    _c("scored_at", "TIMESTAMP", "churn_scores", "When the score was computed."),
)

DERIVED_COLUMNS: tuple[CandidateColumn, ...] = (
    _c("as_of_date", "DATE", "derived", "The run's date: use it instead of current_date."),
    _c("clv_rank", "BIGINT", "derived", "Rank by clv_12m among scored customers with a CLV, 1 = highest."),
    _c("clv_top_share", "DOUBLE", "derived",
       "Share of those customers with a higher CLV (0 for the best): `clv_top_share < 0.2` is the top 20%."),
    _c("has_valid_email", "BOOLEAN", "derived", "The email passes validation."),
    _c("has_valid_phone", "BOOLEAN", "derived", "The phone normalises to E.164."),
    _c("is_test_account", "BOOLEAN", "derived", "Internal or test account (always suppressed)."),
    _c("erasure_requested", "BOOLEAN", "derived", "The customer asked for erasure (always suppressed)."),
    _c("has_open_ticket", "BOOLEAN", "derived", "A support ticket created by as_of_date is still unresolved then."),
    _c("has_unresolved_complaint", "BOOLEAN", "derived", "An open ticket that is a complaint."),
    _c("last_complaint_at", "TIMESTAMP", "derived", "Latest complaint ticket up to as_of_date."),
    _c("last_nps_at", "TIMESTAMP", "derived", "When the latest NPS answer was given."),
    _c("last_nps_days_ago", "BIGINT", "derived", "Days from the latest NPS answer to as_of_date."),
    _c("last_nps_within_30d", "BOOLEAN", "derived", "The latest NPS answer is 0-30 days old."),
    _c("last_nps_within_90d", "BOOLEAN", "derived", "The latest NPS answer is 0-90 days old."),
    _c("last_csat_at", "TIMESTAMP", "derived", "When the latest CSAT answer was given."),
    _c("last_csat_days_ago", "BIGINT", "derived", "Days from the latest CSAT answer to as_of_date."),
    _c("last_csat_within_30d", "BOOLEAN", "derived", "The latest CSAT answer is 0-30 days old."),
    _c("is_dissatisfied", "BOOLEAN", "derived",
       "The latest NPS answer is a detractor (0-6) or the latest CSAT answer negative (1-2), any age "
       "(fct_feedback.is_dissatisfied)."),
    _c("is_dissatisfied_30d", "BOOLEAN", "derived",
       "The latest NPS or CSAT answer is dissatisfied (as is_dissatisfied) and 0-30 days old."),
    _c("is_promoter_90d", "BOOLEAN", "derived",
       "The latest NPS answer is a promoter (9-10, fct_feedback.is_promoter) and 0-90 days old."),
    _c("first_order_delivered_at", "TIMESTAMP", "derived",
       "Delivery of the first valid order, if delivered by as_of_date."),
    _c("first_order_delivered_days_ago", "BIGINT", "derived", "Days from that delivery to as_of_date."),
    _c("last_order_id", "VARCHAR", "derived", "The latest valid order up to as_of_date."),
    _c("last_order_delivered_at", "TIMESTAMP", "derived", "Its delivery, if delivered by as_of_date."),
    _c("last_order_delivered_days_ago", "BIGINT", "derived", "Days from that delivery to as_of_date."),
    _c("has_review_for_last_order", "BOOLEAN", "derived",
       "A review names the latest order, or a review without order was written after it was placed."),
    _c("last_marketing_message_at", "TIMESTAMP", "derived",
       "Latest outbound marketing message up to as_of_date (fct_messages.is_marketing_contact, or the "
       "playbook's marketing_message_types)."),
    _c("days_since_last_marketing_message", "BIGINT", "derived", "Days from it to as_of_date (frequency cap)."),
    _c("email_unsubscribed_via_message", "BOOLEAN", "derived",
       "Unsubscribed from an email after the consent record was last updated."),
    _c("sms_unsubscribed_via_message", "BOOLEAN", "derived",
       "Unsubscribed from an SMS after the consent record was last updated."),
)

CANDIDATE_COLUMNS: tuple[CandidateColumn, ...] = DIM_COLUMNS + AS_OF_COLUMNS + SCORE_COLUMNS + DERIVED_COLUMNS
VIEW_NAME = "outreach_candidates"


class OutreachInputError(RuntimeError):
    """An input table the outreach lists need is missing or empty."""


def missing_inputs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Input tables (schema.table) that do not exist on `con`."""
    have = {
        f"{s}.{t}"
        for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
    }
    return [t for t in INPUT_TABLES if t not in have]


def _table_columns(con: duckdb.DuckDBPyConnection, qualified: str) -> set[str]:
    schema, table = qualified.split(".")
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return {r[0] for r in rows}


def resolve_as_of(con: duckdb.DuckDBPyConnection, as_of: date | None = None) -> date:
    """The date the run is for: `as_of`, else the latest `ml.churn_scores.as_of_date`, else the latest order date."""
    if as_of is not None:
        return as_of
    found = con.execute("SELECT max(as_of_date)::DATE FROM ml.churn_scores").fetchall()[0][0]
    if found is None:
        found = con.execute(
            "SELECT max(ordered_at)::DATE FROM marts.fct_orders WHERE coalesce(is_valid, true)"
        ).fetchall()[0][0]
    if found is None:
        raise OutreachInputError(
            "cannot tell which date the outreach lists are for: ml.churn_scores and marts.fct_orders "
            "are empty; pass as_of explicitly"
        )
    return found


def validity_sql(dim_cols: set[str]) -> tuple[str, str]:
    """`has_valid_email` and `has_valid_phone` as SQL over `marts.dim_customers d` (with its columns)."""
    email = "d.email" if "email" in dim_cols else "NULL::VARCHAR"
    phone = "d.phone" if "phone" in dim_cols else "NULL::VARCHAR"
    return f"retain_email({email}) IS NOT NULL", f"retain_e164({phone}, d.country) IS NOT NULL"


def dim_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The columns `marts.dim_customers` has."""
    return _table_columns(con, "marts.dim_customers")


def _scores_sql(con: duckdb.DuckDBPyConnection, as_of: date) -> str:
    """Each customer's latest score for `as_of` or earlier.

    `ml.churn_scores` is one scoring batch (one as-of date, one row per customer) and
    `ml.churn_scores_history` every batch including that one, so it grows by a batch a day.
    When the current batch is for `as_of` or earlier and the history has no later batch up to
    `as_of` (every daily run), the current batch is the answer and the history is not read.
    Otherwise (a backfill for an earlier date, or a later batch in the history after an older
    date was re-scored) the latest row per customer is picked from both tables.
    """
    score_cols = ", ".join(SCORE_TABLE_COLUMNS)
    d = f"DATE '{as_of.isoformat()}'"
    has_history = _table_columns(con, "ml.churn_scores_history") >= set(SCORE_TABLE_COLUMNS)
    current = con.execute(f"SELECT max(as_of_date)::DATE FROM ml.churn_scores WHERE as_of_date <= {d}").fetchall()[0][0]
    if current is not None:
        later = None
        if has_history:
            later = con.execute(
                f"SELECT max(as_of_date)::DATE FROM ml.churn_scores_history WHERE as_of_date <= {d}"
            ).fetchall()[0][0]
        if later is None or later <= current:
            return f"SELECT {score_cols} FROM ml.churn_scores WHERE as_of_date <= {d}"
    score_source = f"SELECT {score_cols} FROM ml.churn_scores"
    if has_history:
        score_source += f" UNION ALL SELECT {score_cols} FROM ml.churn_scores_history"
    return f"""
    SELECT * FROM ({score_source})
    WHERE as_of_date <= {d}
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY as_of_date DESC, scored_at DESC) = 1
"""


def candidates_sql(
    con: duckdb.DuckDBPyConnection, as_of: date, marketing_message_types: tuple[str, ...] | None = None
) -> str:
    """The SELECT behind `outreach_candidates` for `as_of` (dim columns the mart lacks become NULL).

    Marketing contact is `fct_messages.is_marketing_contact` (seeds/message_types.csv), or the
    message types `marketing_message_types` when a playbook gives its own list.
    """
    dim_cols = _table_columns(con, "marts.dim_customers")
    dim_select = []
    for col in DIM_COLUMNS:
        if col.name == "country":
            dim_select.append("retain_country(d.country) AS country")
        elif col.name in dim_cols:
            dim_select.append(f"TRY_CAST(d.{col.name} AS {col.type}) AS {col.name}")
        else:
            dim_select.append(f"NULL::{col.type} AS {col.name}")
    valid_email, valid_phone = validity_sql(dim_cols)
    if marketing_message_types is None:
        marketing = "is_marketing_contact"
    else:
        marketing = "message_type IN (" + (
            ", ".join("'" + t.replace("'", "''") + "'" for t in marketing_message_types) or "NULL") + ")"
    acct_updated = "d.consent_updated_at" if "consent_updated_at" in dim_cols else "NULL::TIMESTAMP"
    test_account = "d.is_test_account" if "is_test_account" in dim_cols else "NULL::BOOLEAN"
    erasure = "d.erasure_requested_at" if "erasure_requested_at" in dim_cols else "NULL::TIMESTAMP"
    d = f"DATE '{as_of.isoformat()}'"
    end = f"(DATE '{as_of.isoformat()}' + INTERVAL 1 DAY)"
    if _table_columns(con, ACTION_TIERS_TABLE) >= {"customer_id", "scores_as_of_date", "action_tier"}:
        tiers = (f"SELECT customer_id, scores_as_of_date, action_tier, value_at_risk, action_rank "
                 f"FROM {ACTION_TIERS_TABLE}")
    else:
        tiers = ("SELECT NULL::VARCHAR AS customer_id, NULL::DATE AS scores_as_of_date, NULL::VARCHAR AS action_tier, "
                 "NULL::DOUBLE AS value_at_risk, NULL::BIGINT AS action_rank WHERE false")
    return f"""
WITH scores AS ({_scores_sql(con, as_of)}),
tiers AS ({tiers}),
clv AS (
    SELECT customer_id,
           rank() OVER (ORDER BY clv_12m DESC) AS clv_rank,
           (rank() OVER (ORDER BY clv_12m DESC) - 1) / count(*) OVER () AS clv_top_share
    FROM scores WHERE clv_12m IS NOT NULL
),
orders AS (
    SELECT customer_id, order_id, ordered_at,
           CASE WHEN delivered_at < {end} THEN delivered_at END AS delivered_at
    FROM marts.fct_orders
    WHERE coalesce(is_valid, true) AND ordered_at < {end}
),
order_stats AS (
    SELECT customer_id, first_order_delivered_at, last_order.o AS last_order_id,
           last_order.d AS last_order_delivered_at, last_ordered_at
    FROM (
        SELECT customer_id,
               -- the _null variants keep a NULL delivery of the first/last order (plain arg_min
               -- would skip to another order's delivery); the latest order's id and delivery
               -- come out of one aggregate
               arg_min_null(delivered_at, (ordered_at, order_id)) AS first_order_delivered_at,
               arg_max_null({{'o': order_id, 'd': delivered_at}}, (ordered_at, order_id)) AS last_order,
               max(ordered_at) AS last_ordered_at
        FROM orders GROUP BY customer_id
    )
),
reviews AS (
    SELECT o.customer_id, bool_or(true) AS has_review_for_last_order
    FROM order_stats o
    JOIN marts.fct_feedback r
      ON r.customer_id = o.customer_id AND r.feedback_type = 'review' AND r.submitted_at < {end}
     AND (r.order_id = o.last_order_id OR (r.order_id IS NULL AND r.submitted_at >= o.last_ordered_at))
    GROUP BY o.customer_id
),
surveys AS (
    -- each customer's latest NPS and CSAT answer up to the run date, with the mart's flags
    -- (score and flags from the same answer)
    SELECT customer_id,
           arg_max({{'score': score, 'dissatisfied': is_dissatisfied, 'promoter': is_promoter}}, submitted_at)
               FILTER (WHERE feedback_type = 'nps') AS last_nps,
           max(submitted_at) FILTER (WHERE feedback_type = 'nps') AS last_nps_at,
           arg_max({{'score': score, 'dissatisfied': is_dissatisfied}}, submitted_at)
               FILTER (WHERE feedback_type = 'csat') AS last_csat,
           max(submitted_at) FILTER (WHERE feedback_type = 'csat') AS last_csat_at
    FROM marts.fct_feedback
    WHERE submitted_at < {end} AND feedback_type IN ('nps', 'csat')
    GROUP BY customer_id
),
tickets AS (
    SELECT customer_id,
           bool_or(is_open) AS has_open_ticket,
           bool_or(is_open AND is_complaint) AS has_unresolved_complaint,
           max(created_at) FILTER (WHERE is_complaint) AS last_complaint_at
    FROM (
        SELECT customer_id, created_at, coalesce(is_complaint, false) AS is_complaint,
               -- open as of the run date: open in the mart, or resolved only after the run date
               (is_open OR resolved_at >= {end}) AS is_open
        FROM marts.fct_support_tickets
        WHERE created_at < {end}
    ) GROUP BY customer_id
),
messages AS (
    -- only marketing messages and unsubscribes matter: the rest (about 30% of all messages)
    -- is dropped before grouping
    SELECT customer_id,
           max(sent_at) FILTER (WHERE is_marketing) AS last_marketing_message_at,
           max(unsubscribed_at) FILTER (WHERE channel = 'email') AS email_unsubscribed_at,
           max(unsubscribed_at) FILTER (WHERE channel = 'sms') AS sms_unsubscribed_at
    FROM (
        SELECT customer_id, sent_at, unsubscribed_at, channel,
               coalesce(is_outbound AND {marketing}, false) AS is_marketing
        FROM marts.fct_messages
        WHERE sent_at < {end}
    )
    WHERE is_marketing OR unsubscribed_at IS NOT NULL
    GROUP BY customer_id
)
SELECT
    {", ".join(dim_select)},
    date_diff('day', o.last_ordered_at::DATE, {d})::BIGINT AS days_since_last_order,
    sv.last_nps.score::BIGINT AS last_nps_score,
    sv.last_csat.score::BIGINT AS last_csat_score,
    s.customer_id IS NOT NULL AS is_scored,
    s.churn_probability::DOUBLE AS churn_probability,
    s.risk_tier::VARCHAR AS risk_tier,
    s.p_alive::DOUBLE AS p_alive,
    s.expected_purchases_90d::DOUBLE AS expected_purchases_90d,
    s.clv_12m::DOUBLE AS clv_12m,
    s.reason_1::VARCHAR AS reason_1,
    s.reason_2::VARCHAR AS reason_2,
    s.reason_3::VARCHAR AS reason_3,
    s.model_version::VARCHAR AS model_version,
    tr.action_tier::VARCHAR AS action_tier,
    tr.value_at_risk::DOUBLE AS value_at_risk,
    tr.action_rank::BIGINT AS action_rank,
    s.scored_at::TIMESTAMP AS scored_at,
    {d} AS as_of_date,
    clv.clv_rank::BIGINT AS clv_rank,
    clv.clv_top_share::DOUBLE AS clv_top_share,
    {valid_email} AS has_valid_email,
    {valid_phone} AS has_valid_phone,
    coalesce({test_account}, false) AS is_test_account,
    {erasure} IS NOT NULL AS erasure_requested,
    coalesce(t.has_open_ticket, false) AS has_open_ticket,
    coalesce(t.has_unresolved_complaint, false) AS has_unresolved_complaint,
    t.last_complaint_at::TIMESTAMP AS last_complaint_at,
    sv.last_nps_at::TIMESTAMP AS last_nps_at,
    date_diff('day', sv.last_nps_at::DATE, {d})::BIGINT AS last_nps_days_ago,
    coalesce(date_diff('day', sv.last_nps_at::DATE, {d}) BETWEEN 0 AND 30, false) AS last_nps_within_30d,
    coalesce(date_diff('day', sv.last_nps_at::DATE, {d}) BETWEEN 0 AND 90, false) AS last_nps_within_90d,
    sv.last_csat_at::TIMESTAMP AS last_csat_at,
    date_diff('day', sv.last_csat_at::DATE, {d})::BIGINT AS last_csat_days_ago,
    coalesce(date_diff('day', sv.last_csat_at::DATE, {d}) BETWEEN 0 AND 30, false) AS last_csat_within_30d,
    coalesce(sv.last_nps.dissatisfied, false) OR coalesce(sv.last_csat.dissatisfied, false) AS is_dissatisfied,
    coalesce(date_diff('day', sv.last_nps_at::DATE, {d}) BETWEEN 0 AND 30 AND sv.last_nps.dissatisfied, false)
      OR coalesce(date_diff('day', sv.last_csat_at::DATE, {d}) BETWEEN 0 AND 30 AND sv.last_csat.dissatisfied, false)
      AS is_dissatisfied_30d,
    coalesce(date_diff('day', sv.last_nps_at::DATE, {d}) BETWEEN 0 AND 90 AND sv.last_nps.promoter, false)
      AS is_promoter_90d,
    o.first_order_delivered_at::TIMESTAMP AS first_order_delivered_at,
    date_diff('day', o.first_order_delivered_at::DATE, {d})::BIGINT AS first_order_delivered_days_ago,
    o.last_order_id::VARCHAR AS last_order_id,
    o.last_order_delivered_at::TIMESTAMP AS last_order_delivered_at,
    date_diff('day', o.last_order_delivered_at::DATE, {d})::BIGINT AS last_order_delivered_days_ago,
    coalesce(r.has_review_for_last_order, false) AS has_review_for_last_order,
    m.last_marketing_message_at::TIMESTAMP AS last_marketing_message_at,
    date_diff('day', m.last_marketing_message_at::DATE, {d})::BIGINT AS days_since_last_marketing_message,
    coalesce(m.email_unsubscribed_at > coalesce({acct_updated}, TIMESTAMP '1900-01-01'), false)
      AS email_unsubscribed_via_message,
    coalesce(m.sms_unsubscribed_at > coalesce({acct_updated}, TIMESTAMP '1900-01-01'), false)
      AS sms_unsubscribed_via_message
FROM marts.dim_customers d
LEFT JOIN scores s ON s.customer_id = d.customer_id
LEFT JOIN tiers tr ON tr.customer_id = s.customer_id AND tr.scores_as_of_date = s.as_of_date::DATE
LEFT JOIN clv ON clv.customer_id = d.customer_id
LEFT JOIN order_stats o ON o.customer_id = d.customer_id
LEFT JOIN reviews r ON r.customer_id = d.customer_id
LEFT JOIN surveys sv ON sv.customer_id = d.customer_id
LEFT JOIN tickets t ON t.customer_id = d.customer_id
LEFT JOIN messages m ON m.customer_id = d.customer_id
"""


def create_candidates_view(
    con: duckdb.DuckDBPyConnection,
    as_of: date | None = None,
    marketing_message_types: tuple[str, ...] | None = None,
) -> date:
    """Create the temporary view `outreach_candidates` on `con` for `as_of`; returns the date used.

    `marketing_message_types`: a playbook's own list of marketing message types; None (the
    default) reads `fct_messages.is_marketing_contact` (seeds/message_types.csv)."""
    missing = missing_inputs(con)
    if missing:
        raise OutreachInputError(
            "outreach lists need these tables, which the warehouse does not have yet: "
            + ", ".join(missing) + " (run the pipeline: dbt models and churn scoring)"
        )
    install_macros(con)
    as_of = resolve_as_of(con, as_of)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {VIEW_NAME} AS {candidates_sql(con, as_of, marketing_message_types)}")
    return as_of


def empty_candidates_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create an empty `outreach_candidates` table with the documented columns (to compile rules offline)."""
    cols = ", ".join(f"{c.name} {c.type}" for c in CANDIDATE_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {VIEW_NAME} ({cols})")
