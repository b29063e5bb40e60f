"""The `retain` CLI: every command explains itself, and bad options get a clear error."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()
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
