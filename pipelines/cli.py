"""The `retain` command-line tool.

Every command reads its storage locations from `RETAIN_*` environment variables
(see `pipelines/core/config.py` and the README); flags override them. Heavy imports happen inside
the commands so that `retain --help` answers at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.core.config import PROJECT_ROOT, export_environment, settings

app = typer.Typer(
    help=(
        "retain: customer-retention data warehouse for e-commerce.\n\n"
        "Typical flow: `retain generate` (or drop your own files into data/landing/SOURCE/), "
        "`retain run`, `retain dashboard`. Storage paths come from RETAIN_* environment "
        "variables (RETAIN_DATA_DIR, RETAIN_WAREHOUSE, ...), see the README."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)
# Wide enough for the run summary when output is piped (a log file, CI) rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Root of all storage (sets RETAIN_DATA_DIR). Default: ./data", show_default=False),
]


def _use_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None:
        os.environ["RETAIN_DATA_DIR"] = str(data_dir.resolve())
    export_environment()


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} expects a date as YYYY-MM-DD, got {value!r}")


@app.command()
def generate(
    customers: Annotated[int, typer.Option(help="Number of customers to generate.", min=1)] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same arguments give byte-identical files.")] = 7,
    start: Annotated[str, typer.Option(help="First day of order history (YYYY-MM-DD).")] = "2023-01-01",
    end: Annotated[str, typer.Option(help="Last day of history (YYYY-MM-DD).")] = "2026-10-31",
    fmt: Annotated[str, typer.Option("--format", help="File format: csv, csv.gz, parquet or jsonl.")] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="Landing folder to write into. Default: $RETAIN_LANDING (data/landing).")
    ] = None,
    clean: Annotated[bool, typer.Option(help=(
        "Delete previously generated files of the 8 sources first "
        "(with --as-platforms: the generated platform files)."))] = False,
    as_platforms: Annotated[
        bool,
        typer.Option(
            "--as-platforms",
            help=(
                "Write the same shop as platform export files instead of contract files: Shopify orders and "
                "customers exports, Klaviyo events and profiles, Zendesk tickets, Judge.me reviews, Delighted "
                "responses, into <out>/<platform>/ (see docs/generator.md). Write the contract files of the same "
                "shop into another --out to compare the two."
            ),
        ),
    ] = False,
    shop_timezone: Annotated[
        str, typer.Option(help="With --as-platforms: the shop's IANA time zone for Shopify's local times.")
    ] = "America/New_York",
    next_day: Annotated[
        bool,
        typer.Option(
            "--next-day",
            help=(
                "Instead of a new shop, add one day after the last one to the landing files already there: "
                "the last day's orders, items, returns, messages, surveys, reviews and tickets copied a day "
                "later with new ids, as increment-<date>.csv per source (.parquet in a Parquet landing "
                "folder). For trying the daily job: retain generate --next-day, then retain run --job "
                "daily_job. Takes only --out and --data-dir."
            ),
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Generate a realistic synthetic shop (all 8 landing sources) with planted causal effects.

    See docs/generator.md for what is planted and how strongly. With --next-day, add one more
    day to the landing files instead.
    """
    if next_day:
        given = [name for name, value, default in (
            ("--customers", customers, 10_000), ("--seed", seed, 7), ("--start", start, "2023-01-01"),
            ("--end", end, "2026-10-31"), ("--format", fmt, "csv"), ("--clean", clean, False),
            ("--as-platforms", as_platforms, False), ("--shop-timezone", shop_timezone, "America/New_York"),
        ) if value != default]
        if given:
            _fail(f"--next-day extends the landing files already there; it takes no {', '.join(given)}")
        _generate_next_day(out, data_dir)
        return
    start_date, end_date = _parse_date(start, "--start"), _parse_date(end, "--end")
    if start_date >= end_date:
        _fail(f"--start ({start}) must be before --end ({end})")
    if as_platforms and fmt != "csv":
        _fail("--as-platforms writes each platform's own formats; it takes no --format")
    if not as_platforms and shop_timezone != "America/New_York":
        _fail("--shop-timezone only applies to --as-platforms")
    from rich.progress import Progress

    from pipelines.generate import generate as run_generate

    _use_data_dir(data_dir)
    target = out or settings().landing
    t0 = time.perf_counter()
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("generating", total=None)

        def report(stage: str, rows: int) -> None:
            progress.update(task, description=f"{stage}: {rows:,} rows")

        if as_platforms:
            from pipelines.generate.platforms import generate_platforms

            try:
                counts = generate_platforms(out=target, customers=customers, seed=seed, start=start_date,
                                            end=end_date, shop_timezone=shop_timezone, clean=clean,
                                            progress=report)
            except (ValueError, FileExistsError) as exc:
                _fail(str(exc))
        else:
            counts = run_generate(
                out=target,
                customers=customers,
                seed=seed,
                start=start_date,
                end=end_date,
                fmt=fmt,
                clean=clean,
                progress=report,
            )
    table = Table(title=f"Generated into {target} in {time.perf_counter() - t0:.1f} s")
    table.add_column("platform/file" if as_platforms else "source")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


def _generate_next_day(out: Path | None, data_dir: Path | None) -> None:
    from pipelines.generate.next_day import NextDayError, append_next_day

    _use_data_dir(data_dir)
    target = out or settings().landing
    t0 = time.perf_counter()
    try:
        added = append_next_day(target)
    except NextDayError as exc:
        _fail(str(exc))
    table = Table(title=f"Added {added['day']} to {target} in {time.perf_counter() - t0:.1f} s")
    table.add_column("source")
    table.add_column("rows", justify="right")
    for name, rows in added["rows"].items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


@app.command()
def ingest(
    source: Annotated[
        list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable). Default: all 8.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Load new and changed landing files into raw.SOURCE, validating every row.

    Like every writer it takes the warehouse writer slot first: during a run it waits for
    the run's writer step to finish (and says so).

    Rows that break the data contract go to raw._quarantine with a reason; unreadable files
    to raw._rejected_files; every file gets a line in the raw._loads ledger. Files already
    loaded (same sha256) are skipped, so running it twice loads nothing the second time.
    Platform exports (landing/shopify/, landing/woocommerce/, ...) are mapped onto the
    sources they feed; a full ingest then prints how many rows of each source belong to a
    shop customer (docs/importing.md).
    """
    from pipelines.core.contract import SOURCE_NAMES

    for name in source or []:
        if name not in SOURCE_NAMES:
            _fail(f"unknown source {name!r}; choose from {', '.join(SOURCE_NAMES)}")
    from pipelines.core.warehouse import WarehouseBusy, connect
    from pipelines.ingest import format_summary
    from pipelines.ingest import ingest as run_ingest

    _use_data_dir(data_dir)
    from pipelines.importers.identity import match_rates
    from pipelines.importers.report import format_match_rates

    rates = []
    with _warehouse_turn("retain ingest"):
        try:
            results = run_ingest(sources=source or None)
            if not source:  # how many rows of each source belong to a shop customer
                with connect(read_only=True) as con:
                    rates = match_rates(con)
        except WarehouseBusy as exc:
            _fail(f"the warehouse {settings().warehouse} is busy (the dashboard or another program is reading it "
                  f"for a moment): try again shortly. {exc}")
    console.print(format_summary(results))
    if rates:
        console.print(format_match_rates(rates))


@app.command()
def quarantine(
    source: Annotated[str | None, typer.Option("--source", "-s", help="Only this source.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 50,
    data_dir: DataDirOption = None,
) -> None:
    """Show quarantined rows and rejected files: which file, row and column, and why."""
    from pipelines.ingest import quarantine_report

    _use_data_dir(data_dir)
    s = settings()
    if not s.warehouse.exists():
        _fail(f"no warehouse at {s.warehouse}: run `retain ingest` or `retain run` first")
    with _warehouse_turn("retain quarantine"), _warehouse_connection(read_only=True) as con:
        console.print(quarantine_report(con, source=source, limit=limit))


def _skip_word(assets: int, skipped: list[str] | None) -> str:
    """'skipped' when every asset of a stage skipped its work on purpose, 'partly skipped' when some did."""
    if not skipped:
        return ""
    return "skipped" if len(skipped) >= assets else "partly skipped"


def _stage_label(stage: str, assets: int, skipped: list[str] | None) -> str:
    """The stage's name, marked when its steps skipped their work on purpose (all or some of it)."""
    word = _skip_word(assets, skipped)
    return f"{stage} [yellow]({word})[/]" if word else stage


def _print_run(summary) -> None:
    table = Table(title=f"{summary.job} {'succeeded' if summary.success else 'FAILED'} · run {summary.run_id[:8]}")
    for col, justify in [
        ("stage", "left"),
        ("assets", "right"),
        ("rows in", "right"),
        ("rows out", "right"),
        ("seconds", "right"),
        ("checks passed", "right"),
        ("checks failed", "right"),
        ("warnings", "right"),
        ("peak MB", "right"),
    ]:
        table.add_column(col, justify=justify, no_wrap=col == "stage")
    for st in summary.stages:
        table.add_row(
            _stage_label(st.stage, st.assets, getattr(st, "skipped", None)),
            str(st.assets),
            f"{st.rows_in:,}",
            f"{st.rows_out:,}",
            f"{st.seconds:.1f}",
            str(st.checks_passed),
            f"[red]{st.checks_failed}[/]" if st.checks_failed else "0",
            f"[yellow]{st.checks_warned}[/]" if st.checks_warned else "0",
            f"{st.peak_rss_mb:,.0f}",
        )
    console.print(table)
    for st in summary.stages:
        for why in getattr(st, "skipped", None) or []:
            console.print(f"[yellow]{st.stage} {_skip_word(st.assets, st.skipped)}:[/] {why}", highlight=False)
    for st in summary.stages:
        for check in st.failed_checks:
            err.print(f"[red]failed check[/] {check}")
        for step in st.failed_steps:
            err.print(f"[red]failed step[/] {step}")
    if summary.error:
        err.print(f"[red]error:[/] {summary.error}")


@app.command()
def run(
    job: Annotated[
        str,
        typer.Option(
            help="Dagster job: full_job (everything incl. training), daily_job (no retraining), "
            "retrain_job, ingest_job."
        ),
    ] = "full_job",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print Dagster's engine events.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Run the whole pipeline in-process through Dagster and print a per-stage summary.

    Stages: ingest → dbt build (staging, intermediate, marts, tests as checks) → train →
    score → outreach lists → CRM exports → publish the dashboard snapshot. The run is
    recorded in the Dagster instance (see `retain ui`) and in data/published/status.json.
    Exits non-zero if any step or blocking check failed; the last published snapshot then
    stays in place.
    """
    from pipelines.runner import run_job

    _use_data_dir(data_dir)
    t0 = time.perf_counter()
    summary = run_job(job, verbose=verbose)
    _print_run(summary)
    console.print(f"total {time.perf_counter() - t0:.1f} s")
    if not summary.success:
        raise typer.Exit(1)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First day of the range (YYYY-MM-DD).", show_default=False)],
    end: Annotated[str, typer.Option(help="Last day of the range, included (YYYY-MM-DD).", show_default=False)],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print Dagster's engine events.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Rebuild a past date range of the warehouse from the raw data; leave every other period alone.

    Orders (by ordered_at), messages (by sent_at) and the monthly message engagement (the
    months the range touches) are rewritten for the range only; the marts built as tables
    follow. Scores, outreach lists, exports and the dashboard snapshot are left to the next
    daily run. See docs/architecture.md (Backfill).
    """
    from pipelines.backfill import BackfillError
    from pipelines.backfill import backfill as run_backfill

    start_date, end_date = _parse_date(start, "--start"), _parse_date(end, "--end")
    _use_data_dir(data_dir)
    t0 = time.perf_counter()
    try:
        summary = run_backfill(start_date, end_date, verbose=verbose)
    except BackfillError as exc:
        _fail(str(exc))
    _print_run(summary)
    console.print(f"total {time.perf_counter() - t0:.1f} s")
    if not summary.success:
        raise typer.Exit(1)


@app.command()
def status(data_dir: DataDirOption = None) -> None:
    """Show the last run and the last successful run: per stage rows, seconds and checks, and freshness."""
    from pipelines.publish import current_snapshot, read_run_status

    _use_data_dir(data_dir)
    s = settings()
    _print_runs_in_progress()
    recorded = read_run_status(s.published)
    if not recorded or not recorded.get("last_run"):
        console.print("No run has finished yet: run `retain run`.")
        raise typer.Exit(0)
    for label in ("last_run", "last_success"):
        info = recorded.get(label)
        if not info:
            console.print(f"{label}: none")
            continue
        state = "[green]success[/]" if info["success"] else "[red]failed[/]"
        age = datetime.now(datetime.fromisoformat(info["finished_at"]).tzinfo) - datetime.fromisoformat(
            info["finished_at"]
        )
        console.print(
            f"[bold]{label}[/]: {state} · {info['job']} · finished {info['finished_at']} "
            f"({age.total_seconds() / 3600:.1f} h ago) · run {info['run_id'][:8]}"
        )
        if label == "last_run":
            table = Table()
            for col in ("stage", "rows in", "rows out", "seconds", "checks passed", "checks failed"):
                table.add_column(col)
            for st in info["stages"]:
                table.add_row(
                    _stage_label(st["stage"], st.get("assets", 0), st.get("skipped")),
                    f"{st['rows_in']:,}",
                    f"{st['rows_out']:,}",
                    f"{st['seconds']:.1f}",
                    str(st["checks_passed"]),
                    str(st["checks_failed"]),
                )
            console.print(table)
            for st in info["stages"]:
                for why in st.get("skipped") or []:
                    word = _skip_word(st.get("assets", 0), st["skipped"])
                    console.print(f"[yellow]{st['stage']} {word}:[/] {why}", highlight=False)
            for check in info.get("failed_checks", []):
                console.print(f"[red]failed check[/] {check}")
            if info.get("error"):
                console.print(f"[red]error[/] {info['error']}")
    snap = current_snapshot(s.published)
    console.print(f"published snapshot: {snap.name if snap else 'none yet'}")
    for line in _freshness_lines(recorded, snap):
        console.print(line)


def _print_runs_in_progress() -> None:
    """Runs in progress (job, pid, started, step), after cleaning up the ones whose process died."""
    import dagster as dg

    from pipelines.publish import read_run_status
    from pipelines.runs import active_runs, recover_dead_runs

    with dg.DagsterInstance.get() as instance:
        recover_dead_runs(instance, say=None)
        running = active_runs(instance)
    for info in running:
        state = "[yellow]in progress[/]" if info.alive is not False else "[red]dead[/]"
        console.print(f"[bold]running[/]: {state} · {info.describe()}")
    for info in read_run_status(settings().published).get("recovered", [])[:3]:
        step = f" during step {info['step']}" if info.get("step") else ""
        console.print(
            f"[bold]cleaned up[/]: run {info['run_id'][:8]} ({info['job']}, pid {info['pid']}) died{step}; "
            f"marked failed and its writer slot freed at {info['recovered_at']}"
        )


def _freshness_lines(recorded: dict, snapshot: Path | None) -> list[str]:
    """Freshness by the same rule as the Dagster freshness policies, plus how recent the data is."""
    import duckdb

    from pipelines.core.warehouse import open_snapshot
    from pipelines.definitions import FRESHNESS_HOURS

    lines = []
    success = recorded.get("last_success")
    if success:
        finished = datetime.fromisoformat(success["finished_at"])
        hours = (datetime.now(finished.tzinfo) - finished).total_seconds() / 3600
        state = "[green]fresh[/]" if hours <= FRESHNESS_HOURS else "[red]stale[/]"
        lines.append(f"marts freshness: {state} (rebuilt {hours:.1f} h ago; stale after {FRESHNESS_HOURS} h)")
    if snapshot is not None:
        with open_snapshot(snapshot) as con:
            try:
                latest = con.execute("select max(ordered_at) from marts.fct_orders").fetchall()[0][0]
            except duckdb.Error:
                latest = None
        if latest is not None:
            lines.append(f"latest order in the published data: {latest:%Y-%m-%d %H:%M} UTC")
    return lines


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    allow_unauthenticated: Annotated[
        bool,
        typer.Option(
            "--allow-unauthenticated",
            help="Serve on a non-loopback address without sign-in: everyone who reaches the port gets the local "
                 "user's roles. Only when something in front of it already restricts who can connect.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the Streamlit dashboard (reads the last published snapshot).

    With RETAIN_OIDC_METADATA_URL, RETAIN_OIDC_CLIENT_ID and RETAIN_OIDC_CLIENT_SECRET set (or an
    [auth] section in .streamlit/secrets.toml) users sign in through your identity provider and
    see what their roles allow; without them it runs in local mode, one user with every role,
    on 127.0.0.1 only. See docs/security.md.
    """
    from pipelines.dashboard_server import ServeError, plan

    _use_data_dir(data_dir)
    try:
        serve = plan(port, host, allow_unauthenticated=allow_unauthenticated)
    except ServeError as exc:
        _fail(str(exc), code=2)
    for warning in serve.warnings:
        err.print(f"[bold yellow]warning:[/] {warning}")
    shown = "localhost" if serve.mode == "oidc" and host in {"127.0.0.1", "localhost"} else host
    how = "sign-in through your identity provider" if serve.mode == "oidc" else "local mode, no sign-in"
    console.print(f"retain dashboard: [bold]http://{shown}:{port}[/]  ({how}; Ctrl+C to stop)")
    # Become Streamlit (same process id) rather than wait for a child: a signal to stop `retain
    # dashboard` (a service manager, a test) then stops the server instead of orphaning it.
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(PROJECT_ROOT)
    os.execve(serve.command[0], serve.command, serve.env)


@app.command()
def audit(
    user: Annotated[str | None, typer.Option(help="Only entries whose user contains this text.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action: contact_view, contact_search, download, session_start, "
                           "access_denied.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only entries at or after this date (YYYY-MM-DD).")] = None,
    customer: Annotated[
        str | None, typer.Option(help="Only contact views and searches that showed this customer id.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON lines.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Show the dashboard's audit log: who saw which contact details and downloaded which lists, when."""
    from pipelines import audit as audit_log

    _use_data_dir(data_dir)
    if action and action not in audit_log.ACTIONS:
        _fail(f"--action expects one of {', '.join(audit_log.ACTIONS)}, got {action!r}")
    start = _parse_date(since, "--since")
    since_at = datetime(start.year, start.month, start.day) if start else None
    path = audit_log.audit_log_path()
    entries = [e for e in audit_log.read(path) if audit_log.matches(e, user, action, since_at, customer)]
    if as_json:
        for e in entries:
            print(json.dumps(e, ensure_ascii=False))
        return
    if not entries:
        console.print(f"No audit entries{' match' if any((user, action, since, customer)) else ''} in {path}.")
        return
    table = Table(title=str(path))
    for col in ("at (UTC)", "user", "roles", "action", "what", "rows"):
        table.add_column(col)
    for e in entries:
        if e.get("action") == "download":
            what = f"{e.get('play')} · {e.get('format')} · {e.get('file_name')}"
        elif e.get("action") in ("contact_view", "contact_search"):
            what = ", ".join(e.get("customer_ids") or [])
        else:
            what = str(e.get("reason") or e.get("page") or e.get("text") or "")
        table.add_row(str(e.get("at", ""))[:19].replace("T", " "), str(e.get("user", "")),
                      ", ".join(e.get("roles") or []), str(e.get("action", "")), what,
                      "" if e.get("rows") is None else f"{e['rows']:,}")
    console.print(table)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port for the Dagster UI.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    data_dir: DataDirOption = None,
) -> None:
    """Open the Dagster UI for this project: the lineage graph files → exports, runs, schedules, sensors."""
    _use_data_dir(data_dir)
    console.print(f"Dagster UI: [bold]http://{host}:{port}[/]  (Ctrl+C to stop)")
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions", "-p", str(port), "-h", host]
    raise typer.Exit(subprocess.call(cmd, cwd=PROJECT_ROOT))


@contextmanager
def _warehouse_turn(purpose: str):
    """Hold the warehouse writer slot (shared with every Dagster writer step) and stop cleanly on signals.

    Readers take it too: DuckDB lets no other process open the file, even read-only, while a
    step writes, so they wait for the step (and say so) instead of failing on the lock.
    """
    from pipelines.runs import StopGuard, writer_slot

    with StopGuard(), writer_slot(purpose):
        yield


def _warehouse_connection(read_only: bool = False):
    from pipelines.core.warehouse import WarehouseBusy, connect

    s = settings()
    if not s.warehouse.exists():
        _fail(f"no warehouse at {s.warehouse}: run `retain run` first")
    try:
        return connect(s.warehouse, read_only=read_only)
    except WarehouseBusy as exc:
        _fail(f"the warehouse {s.warehouse} is busy (another run is writing?): {exc}")


@app.command()
def train(
    as_of: Annotated[
        str | None, typer.Option(help="Train as if today were this date (YYYY-MM-DD). Default: latest order date.")
    ] = None,
    horizon_days: Annotated[int, typer.Option(help="Churn horizon H: no valid order within H days = churned.")] = 180,
    tolerance: Annotated[
        float, typer.Option(help="Promotion gate: how far (ROC AUC) below the current model a new one may fall.")
    ] = 0.02,
    data_dir: DataDirOption = None,
) -> None:
    """Retrain the churn model: backtest on past cut-offs, compare with baselines, promote if it passes the gate.

    Every run is recorded in ml.model_runs; a model that does not beat the recency rule, or
    falls more than --tolerance below the current model, is recorded but not promoted.
    """
    as_of_date = _parse_date(as_of, "--as-of")
    _use_data_dir(data_dir)
    from ml.train import NotEnoughHistory
    from ml.train import train as run_train

    with _warehouse_turn("retain train"), _warehouse_connection() as con:
        try:
            result = run_train(
                con, as_of=as_of_date, horizon_days=horizon_days, models_dir=settings().models, tolerance=tolerance
            )
        except NotEnoughHistory as exc:
            console.print(f"skipped: {exc.reason}", markup=False, highlight=False)
            return
    console.print(result.summary(), markup=False, highlight=False)


@app.command()
def score(
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this date (YYYY-MM-DD), for audits and backtests.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Score every customer with the promoted churn model into ml.churn_scores (history in ml.churn_scores_history)."""
    as_of_date = _parse_date(as_of, "--as-of")
    _use_data_dir(data_dir)
    from ml.score import ScoringSkipped
    from pipelines.core.spark import is_spark
    from pipelines.defs.dbt.project import AFTER_SCORING_TAG, dbt_cli
    from pipelines.engines import score_customers

    with _warehouse_turn("retain score"):
        with _warehouse_connection() as con:
            try:
                scores = score_customers(con, as_of=as_of_date, models_dir=settings().models)
            except ScoringSkipped as exc:
                console.print(f"skipped: {exc.reason}", markup=False, highlight=False)
                return
        # the action tiers of these scores (dbt model customer_action_tiers: the rule lives there)
        if is_spark():  # dbt on Spark reads the new scores from the lake, and its tables come back
            from pipelines.defs.dbt.assets import SPARK_SOURCES_ENV, sync_warehouse_sources

            with _warehouse_connection(read_only=True) as con:
                os.environ[SPARK_SOURCES_ENV] = ",".join(sync_warehouse_sources(con))
        built = dbt_cli(["build", "--quiet", "--select", f"tag:{AFTER_SCORING_TAG}"]) == 0
        if built and is_spark():
            from pipelines.engines import copy_models_to_warehouse

            with _warehouse_connection() as con:
                copy_models_to_warehouse(con)
        action = None
        if built:
            with _warehouse_connection(read_only=True) as con:
                action = dict(con.execute(
                    "SELECT action_tier, count(*) FROM marts.customer_action_tiers GROUP BY 1").fetchall())
    tiers = scores.risk_tiers
    table = Table(title=f"Scored {scores.rows:,} customers as of {scores.as_of_date or '-'}")
    for col in ("risk tier", "customers", "share"):
        table.add_column(col)
    for tier in ("high", "medium", "low"):
        n = int(tiers.get(tier, 0))
        table.add_row(tier, f"{n:,}", f"{n / max(scores.rows, 1):.1%}")
    console.print(table)
    if action is None:
        console.print("action tiers not rebuilt: dbt build of marts.customer_action_tiers failed (output above)")
        return
    table = Table(title="Action tiers: the active base (ordered in the last 365 days) by value at risk")
    for col in ("action tier", "customers", "share"):
        table.add_column(col)
    for tier in ("high", "medium", "low", "dormant"):
        n = int(action.get(tier, 0))
        table.add_row(tier, f"{n:,}", f"{n / max(scores.rows, 1):.1%}")
    console.print(table)


@app.command()
def model(data_dir: DataDirOption = None) -> None:
    """Print the current churn model's card: data window, metrics against baselines, top drivers."""
    _use_data_dir(data_dir)
    from ml.card import model_card

    with _warehouse_turn("retain model"), _warehouse_connection(read_only=True) as con:
        console.print(model_card(con, settings().models), markup=False, highlight=False)


@app.command()
def plays(
    playbook: Annotated[
        Path | None, typer.Option(help="Playbook YAML (default: $RETAIN_PLAYBOOK or the built-in one).")
    ] = None,
) -> None:
    """List the outreach plays in priority order, validating the playbook file."""
    from pipelines.outreach import PlaybookError, describe_plays

    try:
        described = describe_plays(playbook)
    except PlaybookError as exc:
        _fail(str(exc))
    table = Table(title="Outreach plays (first match wins)")
    for col in ("priority", "play", "channel", "action", "holdout", "rule"):
        table.add_column(col, overflow="fold")
    for p in described:
        table.add_row(str(p["priority"]), p["name"], p["channel"], p["action"], f"{p['holdout']:.0%}",
                      " ".join(str(p["rule"]).split()))
    console.print(table)


@app.command("simulate-lift")
def simulate_lift(
    weeks: Annotated[int, typer.Option(min=1, max=52, help="Weekly list runs to simulate.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same customers and orders.")] = 7,
    observe_days: Annotated[
        int | None,
        typer.Option(min=1, help="Days of orders after the first run (default: until every window has passed)."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Simulate weekly outreach runs with a known lift per play in a NEW data folder, measure it, publish.

    Win-back gets +5 points of 60-day conversion, at-risk nurture +3 and advocate referral none
    (pipelines/generate/experiments.py); then dbt measures the lift and the snapshot is published,
    so `retain dashboard` shows the Outreach page's "Did it work?" section. The folder must not hold
    a warehouse yet: simulated orders are not mixed into a real shop.
    """
    _use_data_dir(data_dir)
    from pipelines.core.warehouse import connect
    from pipelines.defs.dbt.project import dbt_cli
    from pipelines.generate.experiments import simulate_outreach
    from pipelines.publish import publish

    s = settings()
    if s.warehouse.exists():
        _fail(f"{s.warehouse} already exists: simulate into a new folder, e.g. --data-dir data-lift")
    s.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = connect(s.warehouse)
    try:
        (sim,) = simulate_outreach(con, seeds=(seed,), weeks=weeks, observe_days=observe_days)
    finally:
        con.close()
    console.print(f"simulated {weeks} weekly runs from {sim.run_dates[0]}: {sim.customers:,} customers, "
                  f"{sim.orders:,} orders up to {sim.data_end:%Y-%m-%d}")
    if dbt_cli(["run", "--quiet"]) != 0:
        _fail("dbt run failed (output above)")
    publish(s.warehouse, s.data_dir / "published")
    table = Table(title="Planted lift (true) per play")
    for col in ("play", "30 days", "60 days", "90 days"):
        table.add_column(col)
    for play, lifts in sim.truth().items():
        table.add_row(play, *(f"{lifts[w]['conversion'] * 100:+.1f} pts" for w in (30, 60, 90)))
    console.print(table)
    console.print(f"measured in marts.outreach_lift; see it with: retain dashboard --data-dir {s.data_dir}")


@app.command()
def export(
    play: Annotated[str, typer.Option(help="Play name (see `retain plays`) or `all`.")] = "all",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="csv, hubspot, klaviyo, salesforce, mailchimp, google_customer_match, meta_custom_audience, or all.",
        ),
    ] = "csv",
    out: Annotated[Path | None, typer.Option(help="Folder for export runs. Default: $RETAIN_EXPORTS.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Outreach run to export. Default: the latest.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Export outreach lists in a CRM's import format, with a manifest and diffs against the previous export.

    Each export is a folder <out>/<play>/<format>/<run id>/ written atomically; suppressed
    customers never appear, and hashed formats never contain a raw email or phone.
    """
    _use_data_dir(data_dir)
    from pipelines.outreach import FORMATS, ExportError, OutreachInputError
    from pipelines.outreach import export as run_export

    if fmt != "all" and fmt not in FORMATS:
        _fail(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)} or all")
    target = out or settings().exports
    # exporting only reads the warehouse, but DuckDB lets no other process open it while a step writes
    with _warehouse_turn("retain export"), _warehouse_connection(read_only=True) as con:
        try:
            results = run_export(con, play, fmt, target, run_id=run_id)
        except (ExportError, OutreachInputError, LookupError) as exc:
            _fail(str(exc))
    table = Table(title=f"Exports in {target}")
    for col in ("play", "format", "rows", "added", "changed", "removed", "folder"):
        table.add_column(col, overflow="fold")
    for r in results:
        if r.skipped:
            table.add_row(r.play, r.format, "-", "", "", "", f"skipped: {r.skipped}")
        else:
            table.add_row(r.play, r.format, f"{r.rows:,}", str(r.added), str(r.changed), str(r.removed), str(r.path))
    console.print(table)


@app.command()
def docs(
    port: Annotated[int, typer.Option(help="Port for the dbt docs site.")] = 8080,
    generate_only: Annotated[bool, typer.Option(help="Only build the docs into target/, do not serve.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Build and serve the dbt docs: every model, column, KPI definition and the lineage graph."""
    _use_data_dir(data_dir)
    from pipelines.defs.dbt import dbt_cli

    code = dbt_cli(["docs", "generate"])
    if code or generate_only:
        raise typer.Exit(code)
    console.print(f"dbt docs: [bold]http://127.0.0.1:{port}[/]  (Ctrl+C to stop)")
    raise typer.Exit(dbt_cli(["docs", "serve", "--port", str(port), "--host", "127.0.0.1", "--no-browser"]))


@app.command("import-cdnow")
def import_cdnow(
    source: Annotated[Path, typer.Argument(help="The CDNOW master file (whitespace separated, YYYYMMDD dates).")],
    out: Annotated[Path | None, typer.Option(help="Landing folder. Default: $RETAIN_LANDING.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Turn the public CDNOW purchase log into an orders landing file (a plain transaction log)."""
    if not source.exists():
        _fail(f"{source} does not exist")
    _use_data_dir(data_dir)
    from pipelines.generate import convert_cdnow

    target = out or settings().landing
    rows = convert_cdnow(source, target)
    console.print(f"wrote {rows:,} orders to {target / 'orders'}")


import_app = typer.Typer(help="Platform exports (Shopify, WooCommerce, ...): see docs/importing.md.")
app.add_typer(import_app, name="import")


@import_app.command("preview")
def import_preview(
    file: Annotated[Path, typer.Argument(help="A platform export (CSV or JSON), anywhere on disk.")],
    platform: Annotated[
        str | None, typer.Option(help="Platform it is from. Default: the name of its folder (shopify/, ...).")
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="A mapping YAML to read it with (a tool retain does not know).")]
    = None,
    rows: Annotated[int, typer.Option(help="Show this many mapped rows per contract source.")] = 5,
) -> None:
    """Show how FILE's first rows map onto the contract and what would be quarantined; writes nothing."""
    from pipelines.importers.mapping import MappingError
    from pipelines.importers.preview import preview
    from pipelines.ingest import FileRejected

    if not file.is_file():
        _fail(f"{file} does not exist")
    try:
        result = preview(file, platform=platform, mapping=mapping, rows=rows)
    except FileRejected as exc:
        _fail(f"{file} would be rejected ({exc.code}): {exc.message}")
    except (MappingError, ValueError) as exc:
        _fail(str(exc))
    console.print(result)


@app.command()
def contract(
    markdown: Annotated[bool, typer.Option(help="Print the column tables of docs/data-contract.md.")] = False,
) -> None:
    """Show the data contract: sources, their columns, types, required columns and keys."""
    from pipelines.core.contract import load_contract, to_markdown

    if markdown:
        sys.stdout.write(to_markdown() + "\n")
        return
    for src in load_contract().values():
        table = Table(title=f"{src.name} (key: {', '.join(src.primary_key)})")
        for col in ("column", "type", "required", "rule"):
            table.add_column(col)
        for c in src.columns:
            rule = ", ".join(c.allowed) if c.allowed else (c.format or "")
            if c.min is not None or c.max is not None:
                rule = f"{'' if c.min is None else c.min} … {'' if c.max is None else c.max}"
            table.add_row(c.name, c.type, "yes" if c.required else "", rule)
        console.print(table)


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for `python -m pipelines.cli`."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
