"""How long dated history is kept: every batch for a few weeks, then one a week, then none.

Every run appends a batch to the history tables (`ml.churn_scores_history`: one row per
customer; `exports.outreach_lists` and `exports.suppressions`: one row per listed or suppressed
customer). At a million customers that is about a million rows a day, so a daily schedule
left alone would grow the warehouse and the dashboard snapshot without end. After each run
the history is thinned:

* batches whose date is within `daily_days` of the newest are all kept (the dashboard's
  day-by-day trend, re-runs, backfills of recent days);
* older ones up to `keep_days` keep one date per ISO week, the week's latest (the long trend);
* anything older than `keep_days` is deleted.

`RETAIN_HISTORY_DAILY_DAYS` (default 35) and `RETAIN_HISTORY_DAYS` (default 365) set them;
`RETAIN_HISTORY_DAYS=0` keeps everything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

DAILY_ENV = "RETAIN_HISTORY_DAILY_DAYS"
KEEP_ENV = "RETAIN_HISTORY_DAYS"


@dataclass(frozen=True)
class HistoryPolicy:
    """Keep every batch for `daily_days`, one per week up to `keep_days` (0: keep everything)."""

    daily_days: int = 35
    keep_days: int = 365

    def __post_init__(self):
        if self.daily_days < 0 or self.keep_days < 0:
            raise ValueError(f"history days must not be negative (daily {self.daily_days}, keep {self.keep_days})")

    @classmethod
    def from_env(cls) -> HistoryPolicy:
        """The policy set by RETAIN_HISTORY_DAILY_DAYS and RETAIN_HISTORY_DAYS (defaults otherwise)."""
        values = {}
        for name, field_name in ((DAILY_ENV, "daily_days"), (KEEP_ENV, "keep_days")):
            raw = os.environ.get(name, "").strip()
            if not raw:
                continue
            try:
                values[field_name] = int(raw)
            except ValueError:
                raise ValueError(f"{name} must be a whole number of days, got {raw!r}") from None
        return cls(**values)

    @property
    def keeps_everything(self) -> bool:
        return self.keep_days == 0

    def expired_dates_sql(self, table: str, date_column: str, protect: date | None = None) -> str:
        """A query of the distinct dates of `table` whose batches the policy drops (never `protect`)."""
        spared = f" and d <> date '{str(protect)[:10]}'" if protect is not None else ""  # a date or Timestamp
        return f"""
            with dates as (select distinct {date_column} as d from {table} where {date_column} is not null),
            ranked as (
                select d, max(d) over () as newest,
                       row_number() over (partition by date_trunc('week', d) order by d desc) as nth_in_week
                from dates
            )
            select d from ranked
            where d < newest - {int(self.daily_days)}
              and (d < newest - {int(self.keep_days)} or nth_in_week > 1){spared}
        """

    def prune(
        self,
        con,
        table: str,
        date_column: str,
        also: dict[str, str] | None = None,
        keep_table: bool = False,
        protect: date | None = None,
    ) -> int:
        """Delete the expired batches (inside the caller's transaction); returns the rows deleted.

        The batch dates come from `table`. `also` maps further tables to a column they share
        with `table` (e.g. `run_id`): their rows of the expired batches go too. With
        `keep_table`, only those go and `table` itself (a small run log) is left whole. The
        batch of date `protect` (the one the run just wrote, e.g. a backfill of an old date)
        is kept this time; a later run thins it like any other.
        """
        if self.keeps_everything:
            return 0
        expired = self.expired_dates_sql(table, date_column, protect)
        con.execute(f"create or replace temp table _retain_expired as select d from ({expired})")
        try:
            if not con.execute("select count(*) from _retain_expired").fetchone()[0]:
                return 0
            deleted = 0
            for other, key in (also or {}).items():
                row = con.execute(
                    f"delete from {other} where {key} in "
                    f"(select {key} from {table} where {date_column} in (select d from _retain_expired))"
                ).fetchone()
                deleted += int(row[0]) if row else 0
            if not keep_table:
                row = con.execute(
                    f"delete from {table} where {date_column} in (select d from _retain_expired)"
                ).fetchone()
                deleted += int(row[0]) if row else 0
            return deleted
        finally:
            con.execute("drop table if exists _retain_expired")
