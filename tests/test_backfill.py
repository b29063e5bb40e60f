"""Backfills: a past date range is rebuilt from the raw data, every other period stays as it was.

One small raw warehouse (tests/dbt_fixture.py) gets a plain `dbt run`; then raw rows are
changed in place, without a new load, so that no incremental run could ever see the change:
an order and a message inside the range, an order and a message outside it, and an order in
the range is erased. `retain backfill` (one real Dagster run of `backfill_job`) must pick up
exactly the changes inside the range.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dbt_fixture import build_raw  # noqa: E402

START, END = date(2024, 3, 1), date(2024, 3, 31)
OUTSIDE_MONTH = "2024-05-01"

#: The incremental tables, their key and the column that dates a row.
TABLES = {
    "staging.stg_shop__orders": ("order_id", "ordered_at"),
    "staging.stg_messaging__messages": ("message_id", "sent_at"),
    "marts.fct_orders": ("order_id", "ordered_at"),
    "marts.message_engagement_monthly": ("cast(month as varchar) || channel || message_type", "month"),
}


@contextmanager
def isolated(data_dir: Path) -> Iterator[None]:
    """RETAIN_DATA_DIR = data_dir and no other RETAIN_* variable; the whole environment is
    restored afterwards (retain exports resolved paths and dbt settings into it)."""
    saved = dict(os.environ)
    try:
        for var in [v for v in os.environ if v.startswith("RETAIN_")]:
            del os.environ[var]
        os.environ["RETAIN_DATA_DIR"] = str(data_dir)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _rows(con: duckdb.DuckDBPyConnection, table: str, inside: bool) -> dict:
    """Every row of `table` (with _built_at) by key, inside or outside the backfill range."""
    key, dated = TABLES[table]
    where = f"cast({dated} as date) between '{START}' and '{END}'"
    rows = con.execute(f"select {key} as k, * from {table} where {'' if inside else 'not '}({where})").fetchall()
    return {row[0]: row[1:] for row in rows}


def _pick(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    (value,) = con.execute(sql).fetchone()
    return value


@dataclass
class Backfilled:
    """The warehouse before and after the backfill, and what was changed in raw."""

    warehouse: Path
    summary: object
    before: dict[str, dict[str, dict]]  # table -> "inside"/"outside" -> rows by key
    totals_before: dict[str, float]
    in_order: str
    out_order: str
    erased_order: str
    in_message: tuple[str, str, str]  # message_id, channel, message_type
    out_message: tuple[str, str, str]

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the warehouse."""
        return duckdb.connect(str(self.warehouse), read_only=True)


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> Backfilled:
    """Raw data → `dbt run` → raw changed in place → `backfill(START, END)` through Dagster."""
    from pipelines.backfill import backfill
    from pipelines.core.config import export_environment, settings
    from pipelines.defs.dbt import dbt_cli

    data_dir = tmp_path_factory.mktemp("backfill")
    with isolated(data_dir):
        export_environment()
        warehouse = settings().warehouse
        build_raw(warehouse, customers=300, seed=13)
        # build, not run: the models read the seeds (the business rules' value lists)
        dbt_cli(["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test",
                 "--target-path", str(data_dir / "target"), "--log-path", str(data_dir / "logs")], check=True)

        with duckdb.connect(str(warehouse)) as con:
            before = {t: {"inside": _rows(con, t, True), "outside": _rows(con, t, False)} for t in TABLES}
            month = "date_trunc('month', ordered_at)"
            # Orders of customers with more than one order, so the numbering has something to check.
            repeat = "customer_id in (select customer_id from marts.fct_orders group by 1 having count(*) > 1)"
            in_order = _pick(con, f"select min(order_id) from marts.fct_orders where {month} = '{START}' and {repeat}")
            out_order = _pick(con, f"select min(order_id) from marts.fct_orders where {month} = '{OUTSIDE_MONTH}'")
            # An erased customer's only order: nothing outside the range depends on it.
            single = "customer_id in (select customer_id from marts.fct_orders group by 1 having count(*) = 1)"
            erased_order = _pick(
                con, f"select max(order_id) from marts.fct_orders where {month} = '{START}' and {single}"
            )
            totals_before = dict(con.execute(
                "select order_id, total from marts.fct_orders where order_id in (?, ?)", [in_order, out_order]
            ).fetchall())
            unopened = (
                "select message_id, channel, message_type from staging.stg_messaging__messages "
                "where direction = 'outbound' and opened_at is null and clicked_at is null "
                "and date_trunc('month', sent_at) = ? order by message_id limit 1"
            )
            in_message = con.execute(unopened, [str(START)]).fetchone()
            out_message = con.execute(unopened, [OUTSIDE_MONTH]).fetchone()
            # Changed in place: same load, same _loaded_at, so only a backfill can see them.
            con.execute("update raw.orders set total = total + 1000 where order_id in (?, ?)", [in_order, out_order])
            con.execute("delete from raw.orders where order_id = ?", [erased_order])
            con.execute(
                "update raw.messages set opened_at = sent_at + interval 1 hour where message_id in (?, ?)",
                [in_message[0], out_message[0]],
            )

        summary = backfill(START, END)
        assert summary.success, summary.as_status()
        yield Backfilled(
            warehouse, summary, before, totals_before, in_order, out_order, erased_order, in_message, out_message
        )


def test_rows_outside_the_range_are_untouched(backfilled):
    """Every row dated outside the range is byte-for-byte the same, _built_at included."""
    with backfilled.connect() as con:
        for table in TABLES:
            after = _rows(con, table, inside=False)
            assert after == backfilled.before[table]["outside"], table
            assert len(after) == len(backfilled.before[table]["outside"]) > 0, table


def test_rows_inside_the_range_are_rebuilt_from_raw(backfilled):
    with backfilled.connect() as con:
        for table in TABLES:
            inside = _rows(con, table, inside=True)
            built_at = {row[-1] for row in inside.values()}
            old_built_at = {row[-1] for row in backfilled.before[table]["inside"].values()}
            assert inside and not built_at & old_built_at, f"{table}: every row in the range is rewritten"
        totals = dict(con.execute(
            "select order_id, total from marts.fct_orders where order_id in (?, ?)",
            [backfilled.in_order, backfilled.out_order],
        ).fetchall())
        staged = dict(con.execute(
            "select order_id, total from staging.stg_shop__orders where order_id in (?, ?)",
            [backfilled.in_order, backfilled.out_order],
        ).fetchall())
        erased = con.execute(
            "select count(*) from marts.fct_orders where order_id = ?", [backfilled.erased_order]
        ).fetchone()[0]
    assert totals[backfilled.in_order] == backfilled.totals_before[backfilled.in_order] + 1000
    assert staged[backfilled.in_order] == totals[backfilled.in_order]
    # Outside the range the raw change waits for a full refresh.
    assert totals[backfilled.out_order] == backfilled.totals_before[backfilled.out_order]
    assert staged[backfilled.out_order] == backfilled.totals_before[backfilled.out_order]
    # Gone from raw, so gone from the range: the range is emptied, not merged by key.
    assert erased == 0
    inside_before = backfilled.before["marts.fct_orders"]["inside"]
    assert backfilled.erased_order in inside_before
    with backfilled.connect() as con:
        assert len(_rows(con, "marts.fct_orders", inside=True)) == len(inside_before) - 1


def test_order_numbers_in_the_range_count_the_whole_history(backfilled):
    with backfilled.connect() as con:
        wrong = con.execute(f"""
            with numbered as (
                select order_id, row_number() over (partition by customer_id order by ordered_at, order_id) as n,
                    lag(ordered_at) over (partition by customer_id order by ordered_at, order_id) as previous_at
                from staging.stg_shop__orders where status <> 'cancelled'
            )
            select count(*), count(*) filter (where f.customer_order_number > 1)
            from marts.fct_orders f join numbered using (order_id)
            where cast(f.ordered_at as date) between '{START}' and '{END}'
                and (f.customer_order_number <> numbered.n
                     or f.previous_order_at is distinct from numbered.previous_at)
        """).fetchone()
        repeats = con.execute(f"""
            select count(*) from marts.fct_orders
            where cast(ordered_at as date) between '{START}' and '{END}' and customer_order_number > 1
        """).fetchone()[0]
    assert wrong == (0, 0)
    assert repeats > 0, "the range must hold repeat orders for this check to mean anything"


def test_engagement_months_in_the_range_are_recomputed(backfilled):
    key = TABLES["marts.message_engagement_monthly"][0]
    before_in = backfilled.before["marts.message_engagement_monthly"]["inside"]
    with backfilled.connect() as con:
        opened = {
            month: con.execute(
                f"select opened from marts.message_engagement_monthly where {key} = ?",
                [f"{month}{channel}{message_type}"],
            ).fetchone()[0]
            for month, (_, channel, message_type) in ((str(START), backfilled.in_message),
                                                      (OUTSIDE_MONTH, backfilled.out_message))
        }
        columns = [c[0] for c in con.execute("describe marts.message_engagement_monthly").fetchall()]
    opened_at = columns.index("opened")
    _, channel, message_type = backfilled.in_message
    assert opened[str(START)] == before_in[f"{START}{channel}{message_type}"][opened_at] + 1
    before_out = backfilled.before["marts.message_engagement_monthly"]["outside"]
    _, channel, message_type = backfilled.out_message
    assert opened[OUTSIDE_MONTH] == before_out[f"{OUTSIDE_MONTH}{channel}{message_type}"][opened_at]


def test_marts_built_as_tables_follow_the_rebuilt_range(backfilled):
    with backfilled.connect() as con:
        mismatch = con.execute("""
            select count(*) from marts.kpi_monthly k
            join (select order_month, sum(total) as revenue from marts.fct_orders where is_valid group by 1) f
                on k.month = f.order_month
            where k.revenue <> f.revenue
        """).fetchone()[0]
        march = con.execute("select revenue from marts.kpi_monthly where month = ?", [str(START)]).fetchone()[0]
        dim = con.execute(
            "select lifetime_revenue from marts.dim_customers where customer_id = "
            "(select customer_id from marts.fct_orders where order_id = ?)", [backfilled.in_order]
        ).fetchone()[0]
    assert mismatch == 0 and march is not None and dim >= 1000


def test_the_run_is_the_backfill_job_tagged_with_its_range(backfilled):
    import dagster as dg

    summary = backfilled.summary
    assert summary.job == "backfill_job"
    assert [stage.stage for stage in summary.stages] == ["dbt"], "nothing downstream of dbt runs"
    assert summary.stages[0].checks_failed == 0 and summary.stages[0].checks_passed > 0
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(summary.run_id)
    assert run.tags["retain/backfill"] == f"{START}..{END}"
    assert run.run_config["ops"]["retain_dbt_models"]["config"] == {
        "backfill_start": str(START), "backfill_end": str(END),
    }


# --- the range is checked before anything runs --------------------------------------------


@pytest.fixture
def empty_data_dir(tmp_path):
    """An isolated, empty RETAIN_DATA_DIR."""
    with isolated(tmp_path):
        yield tmp_path


def test_invalid_ranges_are_refused_with_a_clear_error(empty_data_dir):
    from pipelines.backfill import BackfillError, backfill, validate_range

    today = datetime.now(UTC).date()
    with pytest.raises(BackfillError, match=r"start \(2024-03-02\) is after end \(2024-03-01\)"):
        backfill(date(2024, 3, 2), date(2024, 3, 1))
    with pytest.raises(BackfillError, match="future"):
        backfill(today - timedelta(days=3), today + timedelta(days=1))
    with pytest.raises(BackfillError, match="must be a date"):
        backfill("2024-03-01", date(2024, 3, 2))
    assert validate_range(datetime(2024, 3, 1, 12), today) == (date(2024, 3, 1), today)
    with pytest.raises(BackfillError, match="no warehouse .* run `retain run` first"):
        backfill(date(2024, 3, 1), date(2024, 3, 1))
    duckdb.connect(str(empty_data_dir / "warehouse.duckdb")).close()
    with pytest.raises(BackfillError, match="not been built yet .*stg_shop__orders"):
        backfill(date(2024, 3, 1), date(2024, 3, 1))


def test_cli_reports_a_bad_range(empty_data_dir):
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["backfill", "--start", "2024-03-31", "--end", "2024-03-01"])
    assert result.exit_code == 1
    assert "after end" in result.output


def test_dbt_step_passes_the_range_as_vars_merged_with_others():
    from pipelines.defs.dbt import DbtBuildConfig
    from pipelines.defs.dbt.assets import _with_vars

    config = DbtBuildConfig(backfill_start="2024-03-01", backfill_end="2024-03-31")
    assert config.dbt_vars() == {"backfill_start": "2024-03-01", "backfill_end": "2024-03-31"}
    assert DbtBuildConfig().dbt_vars() == {}
    args = _with_vars(["build", "--vars", "{as_of_date: '2024-04-01'}", "--quiet"], config.dbt_vars())
    assert args[0] == "build" and args[-1] == "--quiet"
    assert json.loads(args[2]) == {"as_of_date": "2024-04-01", **config.dbt_vars()}
