"""`retain import preview FILE`: how a platform file maps onto the contract, without a warehouse.

The file is read and mapped exactly as `retain ingest` would (same detection, staging and
plans, same validation SQL), in an in-memory DuckDB database; nothing is written anywhere.
Duplicate keys within the file are reported too (ingestion quarantines all but the first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Group
from rich.table import Table

from pipelines.core.contract import SOURCE_NAMES, source
from pipelines.core.warehouse import scratch
from pipelines.importers.driver import read_file, target_plans
from pipelines.importers.mapping import PLATFORMS, Mapping, load_mapping, mappings_for
from pipelines.ingest.loader import SCRATCH, _map_columns, _validation_sql
from pipelines.ingest.rules import q


@dataclass
class TargetPreview:
    """How a file maps onto one contract source."""

    source: str
    rows: int
    quarantined: int
    columns: list[str]
    sample: list[dict]  # first rows as loaded (contract columns, typed), with `_row`
    problems: list[tuple[int, str | None, str, str]] = field(default_factory=list)  # row, column, code, message


@dataclass
class Preview:
    """The whole preview: which kind the file is, and each target."""

    file: str
    platform: str
    kinds: list[str]
    targets: list[TargetPreview]
    ignored: dict[str, int] = field(default_factory=dict)

    def __rich__(self) -> Group:
        """Render as tables (one per target) for `rich.print`."""
        parts = []
        head = Table.grid()
        head.add_row(f"[bold]{self.file}[/]: {self.platform} {', '.join(self.kinds)}")
        if self.ignored:
            head.add_row("ignored streams: " + ", ".join(f"{s} ({n})" for s, n in self.ignored.items()))
        parts.append(head)
        for t in self.targets:
            title = f"{t.source}: {t.rows:,} rows, {t.quarantined:,} would be quarantined"
            table = Table(title=title, title_justify="left")
            shown = ["_row", *t.columns[:8]]
            for c in shown:
                table.add_column("row" if c == "_row" else c, overflow="fold")
            for r in t.sample:
                table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in shown))
            parts.append(table)
            if t.problems:
                pt = Table(title=f"{t.source}: quarantine reasons (first {len(t.problems)})", title_justify="left")
                for c in ("row", "column", "reason code", "message"):
                    pt.add_column(c, overflow="fold")
                for row, col, code, msg in t.problems:
                    pt.add_row(str(row), col or "", code, msg)
                parts.append(pt)
        return Group(*parts)


def _mappings(path: Path, platform: str | None, mapping: Path | None) -> tuple[str, list[Mapping]]:
    folder = path.parent
    if mapping is not None:
        m = load_mapping(mapping, platform or folder.name)
        return m.platform, [m]
    if platform:
        if platform not in PLATFORMS and platform != folder.name:
            raise ValueError(f"unknown platform {platform!r}; choose from {', '.join(PLATFORMS)} (or give --mapping)")
        found = mappings_for(folder) if folder.name == platform else mappings_for(folder.parent / platform)
        return platform, found
    if folder.name in PLATFORMS or any(folder.glob("_mapping*.y*ml")):
        return folder.name, mappings_for(folder)
    raise ValueError(
        f"{path}: say which platform it is from (--platform {'|'.join(PLATFORMS)}) or give a mapping (--mapping FILE)"
    )


def preview(path: Path | str, platform: str | None = None, mapping: Path | str | None = None, rows: int = 5,
            problems: int = 10) -> Preview:
    """Map a platform file in memory and return how its first rows load and what would be quarantined.

    Raises FileRejected (the file would be rejected, with the reason), MappingError or ValueError.
    """
    path = Path(path)
    plat, maps = _mappings(path, platform, Path(mapping) if mapping else None)
    con = scratch()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET disabled_optimizers = 'in_clause'")
        con.execute(f"ATTACH ':memory:' AS {SCRATCH}")
        staged = read_file(con, path, maps, plat)
        plans = target_plans(staged)
        out = []
        now = datetime.now(UTC)
        for name in [s for s in SOURCE_NAMES if s in plans]:
            src, plan = source(name), plans[name]
            known, extras = _map_columns(plan, src, path.name)
            sql = _validation_sql(plan, src, known, extras, now)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _preview AS {sql}")
            keys = ", ".join(q(c) for c in src.primary_key)
            total, bad = con.execute("SELECT count(*), count(_reason) FROM _preview").fetchone()
            dup = con.execute(
                f"SELECT _source_row, {keys} FROM (SELECT *, row_number() OVER (PARTITION BY {keys} "
                f"ORDER BY _source_row) AS n FROM _preview WHERE _reason IS NULL) WHERE n > 1 ORDER BY 1"
            ).fetchall()
            cols = [c for c in src.column_names if c in known]
            sample_rows = con.execute(
                f"SELECT _source_row, {', '.join(q(c) for c in cols)} FROM _preview ORDER BY _source_row LIMIT {rows}"
            ).fetchall()
            sample = [dict(zip(["_row", *cols], r, strict=True)) for r in sample_rows]
            probs = [(r, c, code, m) for r, c, code, m in con.execute(
                "SELECT _source_row, _reason.col, _reason.code, _reason.msg FROM _preview WHERE _reason IS NOT NULL "
                f"ORDER BY _source_row LIMIT {problems}"
            ).fetchall()]
            probs += [(r[0], ", ".join(src.primary_key), "duplicate_key",
                       f"duplicate primary key {', '.join(map(str, r[1:]))} in this file") for r in dup[:problems]]
            out.append(TargetPreview(name, total, bad + len(dup), cols, sample, probs))
        return Preview(path.name, plat, [m.name for m, _ in staged.kinds], out, staged.ignored)
    finally:
        con.close()
