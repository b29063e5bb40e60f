"""Roles, the audit log and how `retain dashboard` decides to serve (no browser, no shared warehouse).

`retain dashboard --host 0.0.0.0` is run for real: without sign-in it must refuse (exit code 2
and a message saying why and what to do); with `--allow-unauthenticated` it must start (the
test waits for Streamlit's health endpoint on 127.0.0.1, then stops it). The data folder is
empty, so the server has nothing to show while it listens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboards import access
from pipelines import audit, dashboard_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean RETAIN_* environment over an empty data folder."""
    for var in list(os.environ):
        if var.startswith("RETAIN_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("RETAIN_DATA_DIR", str(tmp_path / "data"))
    # Streamlit secrets in the user's home must not decide the mode of these tests.
    monkeypatch.setattr(dashboard_server, "default_secrets_files", lambda: [])
    return tmp_path


# ----------------------------------------------------------------------------- roles


def test_roles_come_from_the_claim_and_admin_means_all():
    assert access.roles_from_claims({"roles": ["viewer"]}) == {"viewer"}
    assert access.roles_from_claims({"roles": ["marketer"]}) == {"viewer", "marketer"}
    assert access.roles_from_claims({"roles": ["support", "marketer"]}) == {"viewer", "marketer", "support"}
    assert access.roles_from_claims({"roles": "ADMIN"}) == set(access.ROLES)
    assert access.roles_from_claims({"roles": "viewer, marketer"}) == {"viewer", "marketer"}


def test_unknown_users_and_unknown_claim_values_get_no_role():
    assert access.roles_from_claims({"email": "someone@else.test"}) == frozenset()
    assert access.roles_from_claims({"roles": ["Domain Users", "owner"]}) == frozenset()
    who = access.oidc_identity({"email": "someone@else.test", "sub": "x"}, access.AccessSettings())
    assert not who.has_access and not who.can_download and not who.can_see_contacts
    assert who.describe_roles() == "no role"


def test_claim_names_can_be_dotted_paths_or_namespaced_urls():
    keycloak = {"realm_access": {"roles": ["support", "offline_access"]}}
    assert access.roles_from_claims(keycloak, "realm_access.roles") == {"viewer", "support"}
    auth0 = {"https://retain.example/roles": ["marketer"]}
    assert access.roles_from_claims(auth0, "https://retain.example/roles") == {"viewer", "marketer"}
    assert access.roles_from_claims({"groups": ["viewer"]}, "groups") == {"viewer"}


def test_the_mapping_file_maps_emails_and_claim_values(tmp_path):
    path = tmp_path / "roles.yaml"
    path.write_text("users:\n  Ana@Shop.Example: admin\n  ben@shop.example: [marketer]\n"
                    "claims:\n  0b1c-group-id: support\n")
    mapping = access.load_role_mapping(path)
    assert access.roles_from_claims({"email": "ana@shop.example"}, mapping=mapping) == set(access.ROLES)
    assert access.roles_from_claims({"email": "ben@shop.example", "email_verified": True},
                                    mapping=mapping) == {"viewer", "marketer"}
    assert access.roles_from_claims({"groups": ["0b1c-group-id"]}, "groups", mapping) == {"viewer", "support"}
    # An address the provider says it has not verified is not trusted for the mapping.
    assert access.roles_from_claims({"email": "ana@shop.example", "email_verified": False},
                                    mapping=mapping) == frozenset()


@pytest.mark.parametrize("text, message", [
    ("users:\n  ana@shop.example: superuser\n", "unknown role 'superuser'"),
    ("people:\n  ana@shop.example: viewer\n", "'users' and/or 'claims'"),
    ("users: [ana]\n", "'users' must map names to roles"),
    ("users: {a: [b\n", "not valid YAML"),
])
def test_a_bad_mapping_file_says_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "roles.yaml"
    path.write_text(text)
    with pytest.raises(access.AccessConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        access.load_role_mapping(path)


def test_local_mode_has_every_role_unless_told_otherwise(env, monkeypatch):
    assert access.local_identity(access.access_settings()).roles == set(access.ROLES)
    monkeypatch.setenv("RETAIN_LOCAL_ROLES", "viewer")
    who = access.local_identity(access.access_settings())
    assert who.roles == {"viewer"} and who.mode == "local" and who.user.startswith("local:")
    monkeypatch.setenv("RETAIN_LOCAL_ROLES", "boss")
    with pytest.raises(access.AccessConfigError, match="RETAIN_LOCAL_ROLES"):
        access.access_settings()


def test_an_old_sign_in_must_be_renewed():
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    fresh = {"iat": (now - timedelta(hours=1)).timestamp()}
    old = {"iat": (now - timedelta(hours=13)).timestamp()}
    assert not access.signed_in_too_long(fresh, 12, now)
    assert access.signed_in_too_long(old, 12, now)
    assert not access.signed_in_too_long(old, 0, now)


# ----------------------------------------------------------------------------- audit log


def test_the_audit_log_is_owner_only_append_only_json_lines(env):
    who = access.local_identity(access.AccessSettings()).audit_fields()
    path = audit.audit_log_path()
    assert path == env / "data" / "logs" / "audit.jsonl"
    audit.record("contact_view", who, customer_ids=["C1"], rows=1, fields=["email"])
    audit.record("download", who, play="winback", format="klaviyo", run_id="r1", file_name="winback-klaviyo.csv",
                 rows=42)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["action"] == "contact_view" and first["customer_ids"] == ["C1"] and first["user"] == who["user"]
    assert second["rows"] == 42 and second["play"] == "winback"
    assert datetime.fromisoformat(second["at"]).tzinfo is not None
    # A file found readable by others is narrowed before the next line goes in.
    os.chmod(path, 0o644)
    audit.record("session_start", who, page=None)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [e["action"] for e in audit.read()] == ["contact_view", "download", "session_start"]
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record("peek", who)


def test_retain_audit_prints_and_filters_the_log(env):
    from typer.testing import CliRunner

    from pipelines.cli import app

    who = access.local_identity(access.AccessSettings()).audit_fields()
    audit.record("contact_view", who, customer_ids=["C42"], rows=1, fields=["email"])
    audit.record("download", {**who, "user": "mia@shop.example"}, play="winback", format="csv", run_id="r",
                 file_name="winback-csv.csv", rows=7)
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "--json", "--action", "download"])
    assert out.exit_code == 0, out.output
    entries = [json.loads(line) for line in out.output.splitlines()]
    assert [e["user"] for e in entries] == ["mia@shop.example"]
    out = runner.invoke(app, ["audit", "--customer", "C42"])
    assert out.exit_code == 0 and "C42" in out.output and "winback" not in out.output
    assert runner.invoke(app, ["audit", "--action", "peek"]).exit_code == 1


# ----------------------------------------------------------------------------- retain dashboard


def test_loopback_addresses():
    assert all(dashboard_server.is_loopback(h) for h in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost"))
    assert not any(dashboard_server.is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org"))


def test_local_mode_refuses_other_addresses_unless_forced(env):
    plan = dashboard_server.plan(8501, "127.0.0.1")
    assert plan.mode == "local" and "--secrets.files" not in plan.command and not plan.warnings
    with pytest.raises(dashboard_server.ServeError, match="refusing to serve on 0.0.0.0 without sign-in"):
        dashboard_server.plan(8501, "0.0.0.0")
    forced = dashboard_server.plan(8501, "0.0.0.0", allow_unauthenticated=True)
    assert forced.env["RETAIN_ALLOW_UNAUTHENTICATED"] == "1"
    assert any("WITHOUT sign-in" in w for w in forced.warnings)


def test_oidc_variables_become_an_owner_only_secrets_file(env, monkeypatch):
    monkeypatch.setenv("RETAIN_OIDC_METADATA_URL", "https://login.example/.well-known/openid-configuration")
    monkeypatch.setenv("RETAIN_OIDC_CLIENT_ID", "retain")
    monkeypatch.setenv("RETAIN_OIDC_CLIENT_SECRET", 'se"cret')
    monkeypatch.setenv("RETAIN_OIDC_SCOPE", "openid email profile groups")
    plan = dashboard_server.plan(8600, "0.0.0.0")  # sign-in configured: any address is allowed
    assert plan.mode == "oidc"
    secrets_file = plan.secrets_file
    assert plan.command[plan.command.index("--secrets.files") + 1] == str(secrets_file)
    assert secrets_file.stat().st_mode & 0o777 == 0o600 and secrets_file.parent.stat().st_mode & 0o777 == 0o700
    import tomllib

    auth = tomllib.loads(secrets_file.read_text())["auth"]
    assert auth["client_secret"] == 'se"cret' and auth["client_id"] == "retain"
    assert auth["redirect_uri"] == "http://localhost:8600/oauth2callback"
    assert auth["client_kwargs"]["scope"] == "openid email profile groups"
    assert len(auth["cookie_secret"]) >= 32
    # The cookie secret survives a restart (signed-in users stay signed in), kept owner-only.
    again = tomllib.loads(dashboard_server.plan(8600, "0.0.0.0").secrets_file.read_text())["auth"]
    assert again["cookie_secret"] == auth["cookie_secret"]
    assert (secrets_file.parent / "cookie_secret").stat().st_mode & 0o777 == 0o600
    assert any("plain HTTP" in w for w in plan.warnings)


def test_half_configured_sign_in_is_an_error(env, monkeypatch):
    monkeypatch.setenv("RETAIN_OIDC_CLIENT_ID", "retain")
    with pytest.raises(dashboard_server.ServeError, match="RETAIN_OIDC_METADATA_URL, RETAIN_OIDC_CLIENT_SECRET"):
        dashboard_server.plan(8501, "127.0.0.1")


def _retain(*args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _clean_env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    env["RETAIN_DATA_DIR"] = str(data_dir)
    env["HOME"] = str(data_dir)  # no ~/.streamlit/secrets.toml of the person running the tests
    return env


def test_retain_dashboard_on_all_interfaces_without_sign_in_refuses_to_start(tmp_path):
    t0 = time.monotonic()
    result = _retain("dashboard", "--host", "0.0.0.0", "--port", "8599", env=_clean_env(tmp_path / "data"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = " ".join(result.stderr.split())
    assert "refusing to serve on 0.0.0.0 without sign-in" in message
    assert "--allow-unauthenticated" in message and "RETAIN_OIDC_" in message
    assert time.monotonic() - t0 < 30  # it refuses before starting anything


def test_retain_dashboard_with_the_force_flag_starts_and_warns(tmp_path):
    from dashboards.browser import free_port

    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "dashboard", "--host", "0.0.0.0", "--port",
                                 str(port), "--allow-unauthenticated"], env=_clean_env(tmp_path / "data"),
                                cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and not healthy:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:  # noqa: S310
                    healthy = r.status == 200
            except OSError:
                time.sleep(0.5)
        assert healthy, log.read_text()
        assert "WITHOUT sign-in" in " ".join(log.read_text().split())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ----------------------------------------------------------------------------- reading the warehouse


def test_contact_details_come_from_the_warehouse_or_say_why_not(env, monkeypatch, tmp_path):
    import duckdb

    from dashboards.data.connection import WarehouseUnavailable
    from dashboards.data.customer_360 import contact_details
    from dashboards.data.downloads import warehouse_export_support


    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("RETAIN_WAREHOUSE", str(warehouse))
    with pytest.raises(WarehouseUnavailable, match="no warehouse"):
        contact_details("C1")
    writer = duckdb.connect(str(warehouse))
    writer.execute("create schema marts")
    writer.execute("create table marts.dim_customers as select 'C1' as customer_id, 'ana@shop.example' as email, "
                   "'+4930123456' as phone, 'Ana' as first_name, 'Lopez' as last_name, 'DE' as country")
    # While a writer holds the file (a pipeline run), the dashboard cannot read it: it says so.
    with pytest.raises(WarehouseUnavailable, match="busy"):
        contact_details("C1")
    writer.close()
    assert contact_details("C1") == {"email": "ana@shop.example", "phone": "+4930123456",
                                          "first_name": "Ana", "last_name": "Lopez"}
    assert contact_details("C2") is None
    assert "busy" not in str(warehouse_export_support().get("problem") or "")


def test_an_email_prefix_search_reads_the_warehouse_masked_and_literal(env, monkeypatch, tmp_path):
    import duckdb

    from dashboards.data.connection import WarehouseUnavailable
    from dashboards.data.customer_360 import search_emails


    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("RETAIN_WAREHOUSE", str(warehouse))
    writer = duckdb.connect(str(warehouse))
    writer.execute("create schema marts")
    writer.execute("create table marts.dim_customers as select * from (values "
                   "('C1', 'Ana_L@shop.example', 'DE', 3), ('C2', 'anaxl@shop.example', 'FR', 1), "
                   "('C3', 'ben@shop.example', 'DE', 2)) t(customer_id, email, country, orders_count)")
    with pytest.raises(WarehouseUnavailable, match="busy"):
        search_emails("ana")
    writer.close()
    found = search_emails("  ANA ")
    assert found["customer_id"].tolist() == ["C1", "C2"]
    assert found["email"].tolist() == ["A•••@shop.example", "a•••@shop.example"]
    assert search_emails("ana_")["customer_id"].tolist() == ["C1"], "_ is a character, not a wildcard"
    assert search_emails("%").empty and search_emails("").empty


def test_count_rows_counts_customers_in_csv_and_zip_downloads():
    import io
    import zipfile

    from dashboards.data.downloads import count_rows


    csv_bytes = '\ufeffemail,note\na@x.test,"two\nlines"\nb@x.test,\n'.encode()
    assert count_rows(csv_bytes, "p-csv.csv") == 2
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("p-part001.csv", csv_bytes)
        z.writestr("p-part002.csv", b"email\nc@x.test\n")
    assert count_rows(buf.getvalue(), "p-meta.zip") == 3
