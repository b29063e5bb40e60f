"""History thinning (pipelines.core.history): every batch for a few weeks, one a week after, none past the limit."""

from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from ml.score import SCORE_COLUMNS, write_scores
from pipelines.core.history import HistoryPolicy

NEWEST = date(2026, 11, 1)


def _dated_table(con, days: int) -> None:
    con.execute("create table h (as_of_date date, run_id varchar, v integer)")
    con.execute(
        "insert into h select ?::date - cast(i as integer), 'r' || i, i from range(?) t(i)", [NEWEST, days]
    )


def _kept(con, table: str = "h") -> list[date]:
    return [r[0] for r in con.execute(f"select distinct as_of_date from {table} order by 1").fetchall()]


def test_keeps_daily_then_weekly_then_nothing():
    con = duckdb.connect()
    _dated_table(con, 500)
    deleted = HistoryPolicy(daily_days=35, keep_days=365).prune(con, "h", "as_of_date")
    kept = _kept(con)
    assert deleted == 500 - len(kept)
    recent = [d for d in kept if d >= NEWEST - timedelta(days=35)]
    older = [d for d in kept if d < NEWEST - timedelta(days=35)]
    assert recent == [NEWEST - timedelta(days=i) for i in range(35, -1, -1)]  # every day of the window
    assert min(kept) >= NEWEST - timedelta(days=365)
    weeks = [d.isocalendar()[:2] for d in older]
    assert len(weeks) == len(set(weeks)), "one date per ISO week beyond the daily window"
    assert all(d.weekday() == 6 for d in older), "the week's latest date (Sunday) is the one kept"
    assert 45 <= len(older) <= 48


def test_prune_twice_changes_nothing_and_zero_keeps_everything():
    con = duckdb.connect()
    _dated_table(con, 400)
    policy = HistoryPolicy(daily_days=10, keep_days=100)
    policy.prune(con, "h", "as_of_date")
    first = _kept(con)
    assert policy.prune(con, "h", "as_of_date") == 0
    assert _kept(con) == first
    assert HistoryPolicy(keep_days=0).prune(con, "h", "as_of_date") == 0
    assert HistoryPolicy(keep_days=0).keeps_everything


def test_related_tables_follow_and_run_log_is_kept():
    con = duckdb.connect()
    _dated_table(con, 60)
    con.execute("create table lists as select run_id, v from h, range(3)")
    con.execute("create table supp as select run_id from h where v % 2 = 0")
    deleted = HistoryPolicy(daily_days=7, keep_days=20).prune(
        con, "h", "as_of_date", also={"lists": "run_id", "supp": "run_id"}, keep_table=True
    )
    assert con.execute("select count(*) from h").fetchone()[0] == 60  # the run log stays whole
    kept_runs = {r[0] for r in con.execute("select distinct run_id from lists").fetchall()}
    assert kept_runs == {f"r{i}" for i in range(21) if i <= 7 or (NEWEST - timedelta(days=i)).weekday() == 6}
    assert {r[0] for r in con.execute("select distinct run_id from supp").fetchall()} <= kept_runs
    assert deleted == (60 - len(kept_runs)) * 3 + con.execute(
        "select count(*) from h where v % 2 = 0 and run_id not in (select run_id from lists)"
    ).fetchone()[0]


def test_policy_from_environment(monkeypatch):
    monkeypatch.setenv("RETAIN_HISTORY_DAILY_DAYS", "14")
    monkeypatch.setenv("RETAIN_HISTORY_DAYS", "90")
    assert HistoryPolicy.from_env() == HistoryPolicy(14, 90)
    monkeypatch.setenv("RETAIN_HISTORY_DAYS", "a year")
    with pytest.raises(ValueError, match="RETAIN_HISTORY_DAYS"):
        HistoryPolicy.from_env()
    monkeypatch.setenv("RETAIN_HISTORY_DAYS", "-1")
    with pytest.raises(ValueError, match="negative"):
        HistoryPolicy.from_env()


def test_write_scores_thins_the_score_history():
    con = duckdb.connect()
    policy = HistoryPolicy(daily_days=3, keep_days=30)
    for back in range(40, -1, -1):
        day = NEWEST - timedelta(days=back)
        scores = pd.DataFrame({name: [None, None] for name in SCORE_COLUMNS})
        scores["customer_id"] = ["a", "b"]
        scores["as_of_date"] = day
        scores["scored_at"] = pd.Timestamp(day)
        scores["churn_probability"] = 0.5
        scores["model_version"] = "m1"
        write_scores(con, scores, history=policy)
    kept = _kept(con, "ml.churn_scores_history")
    assert kept[-4:] == [NEWEST - timedelta(days=i) for i in (3, 2, 1, 0)]
    assert min(kept) >= NEWEST - timedelta(days=30)
    assert len(kept) < 12
    assert con.execute("select count(*) from ml.churn_scores").fetchone()[0] == 2  # today's list untouched


def test_the_batch_just_written_is_kept_until_a_later_run():
    con = duckdb.connect()
    _dated_table(con, 10)
    con.execute("insert into h values (date '2024-01-03', 'old', 0)")  # a backfill of a long-gone Wednesday
    policy = HistoryPolicy(daily_days=3, keep_days=30)
    policy.prune(con, "h", "as_of_date", protect=date(2024, 1, 3))
    assert date(2024, 1, 3) in _kept(con)
    policy.prune(con, "h", "as_of_date")
    assert date(2024, 1, 3) not in _kept(con)
