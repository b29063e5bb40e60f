"""Random but stable holdout groups: which listed customers a play does not contact.

Every play keeps a share of its list uncontacted (`holdout` in the playbook, default 10%, 0
switches it off), so that the later orders of contacted and held-out customers can be
compared (the lift, `models/marts/outreach_lift.sql`). A customer's arm is decided by a hash,
not by a random draw:

    bucket = first 13 hex digits of sha256("<customer_id>|<play>|<experiment>") / 16^13
    held out  <=>  bucket < holdout share

so the same customer is in the same arm of the same play in every run, rerun and backfill
of an experiment (a held-out customer stays held out week after week: otherwise the
holdout would slowly be contacted too), and a new `experiment` id draws new arms. The
bucket is uniform on [0, 1) and independent of everything a rule can read, so the arms are
a random split of the list.

Held-out customers are written to `exports.holdouts`, never to `exports.outreach_lists`,
which is the only table the exports read: they can not reach a CRM file.
"""

from __future__ import annotations

import hashlib

#: Hex digits of the sha256 used for the bucket (52 bits: exact in a double and a UBIGINT).
HEX_DIGITS = 13

#: Default share of each list that is held out, and the default outcome windows (days).
DEFAULT_HOLDOUT = 0.10
DEFAULT_OUTCOME_WINDOWS = (30, 60, 90)
DEFAULT_EXPERIMENT = "1"
#: A holdout above half the list would contact fewer customers than it keeps back.
MAX_HOLDOUT = 0.5

DDL = (
    """CREATE TABLE IF NOT EXISTS exports.holdouts (
        run_id VARCHAR NOT NULL,
        play VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        experiment VARCHAR NOT NULL,
        risk_tier VARCHAR,
        churn_probability DOUBLE,
        clv_12m DOUBLE,
        as_of_date DATE,
        created_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS exports.experiments (
        run_id VARCHAR NOT NULL,
        play VARCHAR NOT NULL,
        experiment VARCHAR NOT NULL,
        template VARCHAR,
        holdout_share DOUBLE NOT NULL,
        outcome_windows INTEGER[] NOT NULL,
        contacted BIGINT NOT NULL,
        held_out BIGINT NOT NULL,
        as_of_date DATE NOT NULL,
        created_at TIMESTAMP
    )""",
)


def bucket(customer_id: str, play: str, experiment: str = DEFAULT_EXPERIMENT) -> float:
    """The customer's place on [0, 1) for a play's experiment (the Python twin of `bucket_sql`)."""
    digest = hashlib.sha256(f"{customer_id}|{play}|{experiment}".encode()).hexdigest()
    return int(digest[:HEX_DIGITS], 16) / 16**HEX_DIGITS


def is_held_out(customer_id: str, play: str, holdout: float, experiment: str = DEFAULT_EXPERIMENT) -> bool:
    """Whether the customer is in the play's holdout (never contacted by it)."""
    return holdout > 0 and bucket(customer_id, play, experiment) < holdout


def bucket_sql(customer_id: str, play: str, experiment: str) -> str:
    """DuckDB expression of the bucket for SQL expressions `customer_id`, `play`, `experiment`."""
    key = f"sha256(concat_ws('|', {customer_id}, {play}, {experiment}))"
    return f"(('0x' || left({key}, {HEX_DIGITS}))::UBIGINT / {float(16**HEX_DIGITS)!r})"
