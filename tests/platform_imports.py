"""Helpers for the platform importer tests: a landing folder of fixtures or real samples, and queries.

Fixtures come from `tests/fixtures/platforms/<platform>/`; the real samples are read in place
from `../shared/platform-samples/` (linked into the test's landing folder, never copied into
the repository); tests that need them skip with a reason where that folder is absent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.importers import resolve
from pipelines.ingest import ingest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "platforms"
SAMPLES = ROOT.parent / "shared" / "platform-samples"


def customer_key(email: str | None = None, platform_id: str | None = None) -> str | None:
    """The framework's customer key (docs/importing.md): the email's `em_` key, else the platform id."""
    e = (email or "").strip().lower()
    if "@" in e and " " not in e:
        return "em_" + hashlib.md5(e.encode()).hexdigest()[:20]
    return platform_id


def sample(rel: str) -> Path:
    """A real sample file, or skip the test naming what is missing."""
    path = SAMPLES / rel
    if not path.exists():
        pytest.skip(f"{path} is absent (real platform samples live in ../shared/platform-samples)")
    return path


@pytest.fixture
def data(tmp_path, monkeypatch):
    """An empty data folder, with only this test's RETAIN_* settings."""
    for var in list(os.environ):
        if var.startswith("RETAIN_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path))
    (tmp_path / "landing").mkdir()
    return tmp_path


def land(data: Path, platform: str, *files: Path | str) -> Path:
    """Put files in `landing/<platform>/`: fixtures (by name) copied, real samples linked in place."""
    folder = data / "landing" / platform
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        src = FIXTURES / platform / f if isinstance(f, str) else f
        if src.is_relative_to(SAMPLES):
            (folder / src.name).symlink_to(src)
        else:
            shutil.copy(src, folder / src.name)
    return folder


def run(data: Path, **kw):
    """`retain ingest` over the landing folder: {(source, file name): FileResult}."""
    results = ingest(landing=data / "landing", warehouse=data / "warehouse.duckdb", **kw)
    return {(r.source, Path(r.file).name): r for r in results}


def counts(results) -> dict:
    """{(source, file): (status, read, loaded, quarantined)} of a run."""
    return {k: (r.status, r.rows_read, r.rows_loaded, r.rows_quarantined) for k, r in results.items()}


def query(data: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def quarantined(data: Path, file: str) -> list[tuple]:
    """(source, row, column, code, message) of a file's quarantined rows, in row order."""
    return query(data, "SELECT source, source_row, column_name, reason_code, message FROM raw._quarantine "
                       "WHERE source_file LIKE ? ORDER BY source, source_row", [f"%/{file}"])


def match_rates(data: Path) -> dict:
    """{(source, platform): (rows, matched, unmatched)} after resolving the identity table."""
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        return {(s, p): (n, m, u) for s, p, n, m, u, _ in resolve(con)}


def balanced(data: Path) -> None:
    """Every loaded ledger row: read = loaded + quarantined, and the tables hold exactly those rows."""
    for source, file, read, loaded, quar in query(
        data, "SELECT source, file_path, rows_read, rows_loaded, rows_quarantined FROM raw._loads "
              "WHERE status = 'loaded' AND source IN (SELECT table_name FROM information_schema.tables "
              "WHERE table_schema = 'raw')"):
        assert read == loaded + quar, (source, file)
        assert query(data, f'SELECT count(*) FROM raw."{source}" WHERE _source_file = ?', [file])[0][0] == loaded
        assert query(data, "SELECT count(*) FROM raw._quarantine WHERE source = ? AND source_file = ?",
                     [source, file])[0][0] == quar


def idempotent(data: Path) -> None:
    """A second run loads nothing and records nothing."""
    before = query(data, "SELECT count(*) FROM raw._loads")[0][0]
    again = run(data)
    assert {r.status for r in again.values()} == {"unchanged"}, counts(again)
    assert query(data, "SELECT count(*) FROM raw._loads")[0][0] == before
