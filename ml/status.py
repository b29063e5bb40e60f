"""What the churn model steps did last: trained or skipped, scored or skipped, and why.

One row in `ml.churn_status`, rewritten by the training step (`training`, `training_reason`)
and updated by the scoring step (`scoring`, `scoring_reason`). It travels to the dashboard
in the published snapshot, so the churn and outreach pages can say "not enough history yet:
…" instead of showing an empty chart, and `retain status` can say the same.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

TABLE = "ml.churn_status"
COLUMNS = {
    "updated_at": "TIMESTAMP",
    "as_of_date": "DATE",
    "training": "VARCHAR",  # trained | skipped
    "training_reason": "VARCHAR",
    "scoring": "VARCHAR",  # scored | skipped
    "scoring_reason": "VARCHAR",
    "model_version": "VARCHAR",
    "history_days": "INTEGER",
    "history_days_needed": "INTEGER",
    "customers": "INTEGER",
    "uplift": "VARCHAR",  # scored | skipped (ml/uplift.py, after the lift models)
    "uplift_reason": "VARCHAR",
}


def _ensure(con) -> None:
    con.execute("create schema if not exists ml")
    cols = ", ".join(f"{name} {typ}" for name, typ in COLUMNS.items())
    con.execute(f"create table if not exists {TABLE} ({cols})")
    have = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'ml' and table_name = 'churn_status'"
    ).fetchall()}
    for name, typ in COLUMNS.items():  # a warehouse from before a column was added
        if name not in have:
            con.execute(f"alter table {TABLE} add column {name} {typ}")


def read_status(con) -> dict:
    """The row as a dict ({} when no training or scoring step has run yet)."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'ml' and table_name = 'churn_status'"
    ).fetchone()[0]
    if not exists:
        return {}
    frame = con.execute(f"select * from {TABLE} limit 1").df()
    if frame.empty:
        return {}
    return {k: (None if not isinstance(v, str) and pd.isna(v) else v) for k, v in frame.iloc[0].to_dict().items()}


def write_status(con, **fields) -> dict:
    """Merge `fields` into the row (unknown names refused) and stamp it; returns the new row."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown churn status fields: {sorted(unknown)}")
    row = {name: None for name in COLUMNS} | {k: v for k, v in read_status(con).items() if k in COLUMNS} | fields
    row["updated_at"] = datetime.now(UTC).replace(tzinfo=None)
    _ensure(con)
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {TABLE}")
        con.execute(
            f"insert into {TABLE} ({', '.join(COLUMNS)}) values ({', '.join('?' for _ in COLUMNS)})",
            [row[name] for name in COLUMNS],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return row


def training_skipped(con, reason: str, as_of: date | None, days: int | None, days_needed: int | None,
                     customers: int | None) -> dict:
    """Record a skipped training step; the scoring columns are reset (the next step sets them)."""
    return write_status(
        con, as_of_date=as_of, training="skipped", training_reason=reason, scoring=None, scoring_reason=None,
        history_days=days, history_days_needed=days_needed, customers=customers,
    )


def training_done(con, as_of: date, model_version: str | None, reason: str) -> dict:
    """Record a training step that produced a model (promoted or not: `reason` says)."""
    return write_status(
        con, as_of_date=as_of, training="trained", training_reason=reason, scoring=None, scoring_reason=None,
        model_version=model_version, history_days=None, history_days_needed=None, customers=None,
    )


def uplift_done(con, reason: str) -> dict:
    """Record an uplift step that scored customers (`reason` says for which plays)."""
    return write_status(con, uplift="scored", uplift_reason=reason)


def uplift_skipped(con, reason: str) -> dict:
    """Record a skipped uplift step ("not enough holdout data yet: ...")."""
    return write_status(con, uplift="skipped", uplift_reason=reason)
