"""Personal data at rest and in the published snapshot, after a real `retain run`.

A small shop (a few hundred customers, the session's `cli_shop`) went through `retain generate`
and `retain run` in subprocesses started with the usual umask 022, so the test sees what the
CLI itself makes of file modes. Then: every file under the data folder is owner-only, and
the newest snapshot holds no plain email or phone of any customer.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import duckdb
import pytest

from pipelines.core.privacy import mask_email, mask_phone, published_select
from pipelines.core.warehouse import open_snapshot
from pipelines.publish import current_snapshot, publish
from tests.conftest import CLI_SHOP_CUSTOMERS, retain_cli

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
MASKED_EMAIL = re.compile(r"^.•••@")


@pytest.fixture(scope="module")
def shop(cli_shop) -> Path:
    """The shop `retain generate` and `retain run` built in subprocesses (tests/conftest.py)."""
    return cli_shop


def _loose(data_dir: Path) -> list[str]:
    """Paths under the data folder that group or others may read, write or enter."""
    loose = []
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077 or (stat.S_ISDIR(mode) and stat.S_IMODE(mode) != 0o700):
            loose.append(f"{path.relative_to(data_dir.parent)} {stat.filemode(mode)}")
    return loose


def test_every_file_retain_writes_is_owner_only(shop):
    files = {p.relative_to(shop).as_posix() for p in shop.rglob("*") if p.is_file()}
    # the run wrote every kind of file holding personal data
    assert "warehouse.duckdb" in files
    assert any(f.startswith("published/snapshot-") for f in files)
    assert any(f.startswith("landing/customers/") for f in files)
    assert any(f.startswith("models/") and f.endswith(".joblib") for f in files)
    assert any(f.startswith("exports/") and f.endswith(".csv") for f in files)
    assert any(f.endswith(".snapshot.arrow") for f in files)
    assert any(f.startswith("dagster/") for f in files)
    assert _loose(shop) == []


def test_files_left_readable_by_an_older_version_are_tightened_once(shop):
    warehouse = shop / "warehouse.duckdb"
    exports = shop / "exports"
    os.chmod(warehouse, 0o644)
    os.chmod(exports, 0o755)
    first = retain_cli(shop, "status")
    assert first.returncode == 0, first.stderr
    assert "made 2 files and folders" in first.stderr and "owner-only" in first.stderr
    assert stat.S_IMODE(warehouse.stat().st_mode) == 0o600
    assert stat.S_IMODE(exports.stat().st_mode) == 0o700
    second = retain_cli(shop, "status")
    assert "owner-only" not in second.stderr
    assert _loose(shop) == []


def _customers(data_dir: Path) -> tuple[set[str], set[str]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("select email, phone from raw.customers").fetchall()
    emails = {e.strip().lower() for e, _ in rows if e}
    phones = {p.strip() for _, p in rows if p}
    return emails, phones


def _plain_contact_data(snapshot: Path, phones: set[str]) -> list[str]:
    """Every unmasked email and every customer's phone found in any text column of the snapshot."""
    found = []
    digits = {re.sub(r"\D", "", p) for p in phones}
    with open_snapshot(snapshot) as con:
        columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' order by all"
        ).fetchall()
        for schema, table, column in columns:
            values = con.execute(f'select distinct "{column}" from "{schema}"."{table}" where "{column}" is not null')
            for (value,) in values.fetchall():
                for email in EMAIL.findall(value):
                    if not MASKED_EMAIL.match(value[value.find(email):]) and not MASKED_EMAIL.match(email):
                        found.append(f"{schema}.{table}.{column}: email {email!r}")
                if value.strip() in phones or (re.sub(r"\D", "", value) in digits and len(value) > 5):
                    found.append(f"{schema}.{table}.{column}: phone {value!r}")
    return found


def test_the_published_snapshot_holds_no_plain_email_or_phone(shop):
    emails, phones = _customers(shop)
    assert len(emails) > CLI_SHOP_CUSTOMERS / 2 and len(phones) > CLI_SHOP_CUSTOMERS / 3
    snapshot = current_snapshot(shop / "published")
    assert _plain_contact_data(snapshot, phones) == []
    with open_snapshot(snapshot) as con:
        rows = con.execute(
            "select email, email_sha256, phone, first_name, last_name, postal_code from marts.dim_customers "
            "where email is not null and phone is not null and first_name is not null and postal_code is not null"
        ).fetchall()
    assert rows
    for email, _sha, phone, first, last, postal in rows:
        assert "•••@" in email and "•" in phone
        assert re.fullmatch(r"\w\.", first) and re.fullmatch(r"\w\.", last or "X.")
        assert len(postal) <= 2
    # email_sha256 joins to the warehouse's (trimmed, lower-cased) addresses
    hashed = {hashlib.sha256(e.encode()).hexdigest() for e in emails}
    assert {sha for _, sha, *_ in rows} <= hashed


def test_an_incremental_publish_masks_the_same_way(shop):
    published = shop / "published"
    result = publish(shop / "warehouse.duckdb", published, incremental=True)
    assert result.mode == "incremental", result.reason
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    _, phones = _customers(shop)
    assert _plain_contact_data(result.path, phones) == []


def test_masking_in_sql():
    con = duckdb.connect()
    row = con.execute(
        f"select {mask_email('$e')}, {mask_phone('$p')}", {"e": "jane.doe@example.com", "p": "+4915112345678"}
    ).fetchone()
    assert row == ("j•••@example.com", "+49•••••••••78")
    con.execute(
        "create table t as select ' Jane.Doe@Example.com ' as email, '+4915112345678' as phone, 'Jane' as first_name, "
        "'10115' as postal_code, 'mail me at jane@example.com or +49 151 1234 5678' as comment, 3 as n"
    )
    cols = con.execute("select column_name, data_type from information_schema.columns where table_name = 't'")
    cols = cols.fetchall()
    masked = con.execute(f"select {published_select(cols)} from t").fetchone()
    assert "•••@" in masked[0] and "Doe" not in masked[0]
    assert masked[1] == hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert masked[2:] == ("+49•••••••••78", "J.", "10", "mail me at [email hidden] or [phone hidden]", 3)


def test_tightening_walks_storage_once_and_leaves_delivered_landing_files_alone(tmp_path):
    from pipelines.core.privacy import tighten_tree

    data = tmp_path / "data"
    (data / "landing" / "orders").mkdir(parents=True)
    (data / "published").mkdir()
    delivered = data / "landing" / "orders" / "a.csv"
    snapshot = data / "published" / "snapshot.duckdb"
    delivered.touch()
    snapshot.touch()
    for path, mode in ((delivered, 0o644), (snapshot, 0o644), (data / "published", 0o755), (data, 0o755)):
        os.chmod(path, mode)
    assert tighten_tree([data, data / "published"], skip=[data / "landing"]) == 3
    assert [stat.S_IMODE(p.stat().st_mode) for p in (data, data / "published", snapshot, delivered)] == [
        0o700, 0o700, 0o600, 0o644]
    assert tighten_tree([data, data / "published"], skip=[data / "landing"]) == 0
