"""The `retain` CLI: every command explains itself, and bad options get a clear error."""

from __future__ import annotations

import os
from datetime import date

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _own_environment():
    """The CLI runs in this process: no retain setting comes in from another test, none goes out."""
    saved = dict(os.environ)
    for var in [v for v in os.environ if v.startswith("RETAIN_") or v == "DAGSTER_HOME"]:
        del os.environ[var]
    yield
    os.environ.clear()
    os.environ.update(saved)


COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def test_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_for_every_option(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    click_cmd = next(c for c in app.registered_commands if (c.name or c.callback.__name__) == command)
    assert click_cmd.callback.__doc__, f"{command} has no description"
    import typer.main

    params = typer.main.get_command(app).commands[command].params
    for param in params:
        if param.name == "help":
            continue
        assert getattr(param, "help", None), f"retain {command}: option {param.name} has no help text"


def test_unknown_source_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["ingest", "--source", "invoices", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown source 'invoices'" in result.output


def test_bad_date_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["generate", "--end", "31/10/2026", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "YYYY-MM-DD" in result.output


def test_status_before_any_run(tmp_path):
    result = runner.invoke(app, ["status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "No run has finished yet" in result.output


def test_generate_next_day_adds_one_day_and_then_another(tmp_path):
    from datetime import timedelta

    import duckdb

    landing = tmp_path / "landing"
    assert runner.invoke(app, ["generate", "--customers", "300", "--out", str(landing)]).exit_code == 0
    before = sorted(p.relative_to(landing) for p in landing.rglob("*") if p.is_file())
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    orders = f"read_csv('{landing}/orders/*.csv', union_by_name = true)"
    last = con.execute(f"select max(ordered_at::timestamptz::date) from {orders}").fetchone()[0]
    on_last_day = con.execute(f"select count(*) from {orders} where ordered_at::timestamptz::date = ?",
                              [last]).fetchone()[0]
    new_day = last + timedelta(days=1)
    result = runner.invoke(app, ["generate", "--next-day", "--out", str(landing)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Added {new_day}" in result.output
    new = landing / "orders" / f"increment-{new_day}.csv"
    rows = con.execute(
        "select count(*), min(ordered_at::timestamptz)::date, max(ordered_at::timestamptz)::date "
        f"from read_csv('{new}')"
    ).fetchone()
    # the last day's orders, copied a day later
    assert rows == (on_last_day, new_day, new_day) and on_last_day > 0
    # earlier files are untouched and the next call continues from the new last day
    assert all((landing / p).exists() for p in before)
    again = runner.invoke(app, ["generate", "--next-day", "--out", str(landing)], env={"COLUMNS": "200"})
    assert again.exit_code == 0 and f"Added {new_day + timedelta(days=1)}" in again.output


def test_generate_next_day_without_orders_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["generate", "--next-day", "--out", str(tmp_path / "empty")])
    assert result.exit_code != 0
    assert "no order files" in result.output


def test_generate_next_day_refuses_options_it_would_ignore_and_never_overwrites(tmp_path):
    landing = tmp_path / "landing"
    assert runner.invoke(app, ["generate", "--customers", "200", "--out", str(landing)]).exit_code == 0
    result = runner.invoke(app, ["generate", "--next-day", "--clean", "--out", str(landing)])
    assert result.exit_code != 0 and "takes no --clean" in result.output
    assert (landing / "orders").is_dir() and any((landing / "orders").iterdir())  # nothing was cleaned
    import duckdb

    last = duckdb.connect().execute(
        f"select max(ordered_at::timestamptz at time zone 'UTC')::date from read_csv('{landing}/orders/*.csv')"
    ).fetchone()[0]
    new_day = date.fromordinal(last.toordinal() + 1)
    stray = landing / "reviews" / f"increment-{new_day}.csv"
    stray.write_text("review_id\nkept\n")
    result = runner.invoke(app, ["generate", "--next-day", "--out", str(landing)], env={"COLUMNS": "200"})
    assert result.exit_code != 0 and "never overwrites" in result.output
    assert stray.read_text() == "review_id\nkept\n"
    assert not (landing / "orders" / f"increment-{new_day}.csv").exists()  # nothing half-written either


def test_generate_next_day_on_parquet_landing_files_writes_typed_parquet_that_ingest_loads(tmp_path):
    """A Parquet landing folder gets `increment-<date>.parquet` files typed as its own files, with
    the same rows the CSV folder of the same shop gets; ingestion loads them."""
    import duckdb

    folders = {fmt: tmp_path / fmt / "landing" for fmt in ("csv", "parquet")}
    for fmt, landing in folders.items():
        made = runner.invoke(app, ["generate", "--customers", "300", "--seed", "3", "--format", fmt,
                                   "--out", str(landing)])
        assert made.exit_code == 0, made.output
        added = runner.invoke(app, ["generate", "--next-day", "--out", str(landing)], env={"COLUMNS": "200"})
        assert added.exit_code == 0, added.output
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    increments = sorted(p.relative_to(folders["parquet"]) for p in folders["parquet"].rglob("increment-*"))
    assert increments and all(p.suffix == ".parquet" for p in increments)
    assert [p.with_suffix(".csv") for p in increments] == sorted(
        p.relative_to(folders["csv"]) for p in folders["csv"].rglob("increment-*"))
    for rel in increments:
        new = str(folders["parquet"] / rel)
        old = [str(p) for p in (folders["parquet"] / rel.parent).glob("*.parquet") if p.name != rel.name]
        # typed as the source's own files
        assert con.execute(f"describe select * from read_parquet('{new}')").fetchall() == con.execute(
            f"describe select * from read_parquet({old!r}, union_by_name = true)").fetchall()
        # the same rows as the CSV increment of the same shop (its timestamps as text)
        columns = [row[0] for row in con.execute(f"describe select * from read_parquet('{new}')").fetchall()]
        typed = {row[0]: row[1] for row in con.execute(f"describe select * from read_parquet('{new}')").fetchall()}
        as_csv = ", ".join(f"cast(\"{c}\" as {typed[c]}) as \"{c}\"" for c in columns)
        csv_rows = con.execute(f"select {as_csv} from read_csv('{folders['csv'] / rel.with_suffix('.csv')}', "
                               "all_varchar = true) order by all").fetchall()
        assert con.execute(f"select * from read_parquet('{new}') order by all").fetchall() == csv_rows
    from tests.conftest import retain_cli

    ingested = retain_cli(tmp_path / "parquet", "ingest")
    assert ingested.returncode == 0, ingested.stdout[-2000:] + ingested.stderr[-2000:]
    with duckdb.connect(str(tmp_path / "parquet" / "warehouse.duckdb"), read_only=True) as wh:
        loads = wh.execute("select status, count(*) from raw._loads where file_path like '%increment-%' "
                           "group by 1").fetchall()
    assert loads == [("loaded", len(increments))]


def test_retain_writes_its_bytecode_cache_even_where_the_environment_turns_it_off(tmp_path):
    """With PYTHONDONTWRITEBYTECODE=1 every process would compile all it imports from source
    (about 12 s of a small shop's run): importing `pipelines` turns the cache back on, for the
    process and the processes it starts."""
    import subprocess
    import sys

    module = tmp_path / "retain_bytecode_probe.py"
    module.write_text("VALUE = 1\n")
    code = (
        "import os, subprocess, sys\n"
        "import pipelines\n"
        "import retain_bytecode_probe\n"
        "probe = 'import os; print(os.environ.get(\"PYTHONDONTWRITEBYTECODE\"))'\n"
        "child = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True).stdout.strip()\n"
        "print(sys.dont_write_bytecode, child)\n"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "None"]
    assert list((tmp_path / "__pycache__").glob("retain_bytecode_probe.*.pyc"))
