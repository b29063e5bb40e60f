"""Sign-in, roles and the audit log in a real browser, against a real OpenID Connect provider.

The test starts `oidc-provider-mock` (a real OpenID Connect provider: discovery, authorization
page, token endpoint, signed ID tokens) on a free localhost port with four users, then
`retain dashboard` with RETAIN_OIDC_* pointing at it (so the CLI writes Streamlit's secrets
file), and signs in through Streamlit's `st.login` in Debian's headless Chromium as each user:

- signed out: only the sign-in page, on every URL;
- viewer: the pages, masked; no download buttons, no contact switch;
- marketer: the CRM downloads, whose file holds the warehouse's unmasked emails;
- support: Customer 360's contact details, unmasked, from the warehouse, and the search by the
  beginning of an email (a viewer finds a customer by a whole address only);
- every page as each role: no plain email or phone unless support reveals it;
- a user without a role: only a "no role" message.

Every download, contact view and email-prefix search must be in the audit log. With
$RETAIN_SCREENSHOTS set, screenshots of what each role saw go there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from dashboards import browser
from tests.browser_fixtures import browser_data_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROLES = ("viewer", "marketer", "support")
NO_ROLE = "nobody@shop.test"
EMAIL_RE = re.compile(r"[a-z0-9._%+-]{2,}@[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


def user(role: str) -> str:
    """The provider's subject (and email) of the test user with `role`."""
    return f"{role}@shop.test"


@pytest.fixture(scope="module")
def data_dir(request) -> Path:
    """The shared pipeline run's data folder (warehouse, snapshot, exports)."""
    return browser_data_dir(request, "sign-in test")


@pytest.fixture(scope="module")
def provider():
    """A real OpenID Connect provider on a free localhost port, with one user per role and one without."""
    from oidc_provider_mock import User, run_server_in_thread

    users = [User(sub=user(role), claims={"email": user(role), "email_verified": True, "name": role.title(),
                                          "roles": [role]}) for role in ROLES]
    users.append(User(sub=NO_ROLE, claims={"email": NO_ROLE, "email_verified": True, "name": "Nobody"}))
    with run_server_in_thread(port=0, user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def warehouse_customer(data_dir) -> dict:
    """A customer with an email and a phone, as the warehouse holds them (unmasked)."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute(
            "select customer_id, email, phone from marts.dim_customers "
            "where email is not null and phone is not null order by orders_count desc, customer_id limit 1"
        ).fetchone()
    return {"customer_id": row[0], "email": row[1], "phone": row[2]}


@pytest.fixture(scope="module")
def email_play(data_dir) -> str:
    """The email play with the most customers in the latest outreach run."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute(
            "select play from exports.outreach_lists where channel = 'email' and run_id = "
            "(select run_id from exports.runs order by created_at desc limit 1) "
            "group by play order by count(*) desc limit 1"
        ).fetchone()
    if row is None:
        pytest.skip("the shared run built no email outreach list")
    return row[0]


def play_url(base: str, play: str) -> str:
    """The Outreach page with `play` selected (the URL holds the play's label)."""
    from urllib.parse import quote

    from dashboards.ui import play_label

    return f"{base}/outreach?play={quote(play_label(play))}"


@pytest.fixture(scope="module")
def dashboard(data_dir, provider, tmp_path_factory):
    """`retain dashboard` with sign-in through `provider`, on a free port; its own data folder for logs."""
    work = tmp_path_factory.mktemp("signin")
    own = work / "data"
    port = browser.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    env.update(
        RETAIN_DATA_DIR=str(own),
        RETAIN_WAREHOUSE=str(data_dir / "warehouse.duckdb"),
        RETAIN_PUBLISHED=str(data_dir / "published"),
        RETAIN_EXPORTS=str(data_dir / "exports"),
        RETAIN_MODELS=str(data_dir / "models"),
        RETAIN_OIDC_METADATA_URL=f"{provider}/.well-known/openid-configuration",
        RETAIN_OIDC_CLIENT_ID="retain-dashboard",
        RETAIN_OIDC_CLIENT_SECRET="test-client-secret",
    )
    log = work / "dashboard.log"
    retain = Path(sys.executable).with_name("retain")
    cmd = [str(retain)] if retain.exists() else [sys.executable, "-m", "pipelines.cli"]
    with log.open("wb") as handle:
        proc = subprocess.Popen([*cmd, "dashboard", "--port", str(port)], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, cwd=browser.ROOT)
    try:
        _wait_healthy(proc, port, log)
        yield {"base": f"http://localhost:{port}", "data_dir": own, "work": work, "log": log, "proc": proc}
    finally:
        browser.stop_server(proc)


def _wait_healthy(proc: subprocess.Popen, port: int, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"retain dashboard exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"retain dashboard did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def driver(dashboard):
    """One headless Chromium for the module; each test starts signed out (cookies cleared)."""
    downloads = dashboard["work"] / "downloads"
    downloads.mkdir()
    d = browser.make_driver(dashboard["work"] / "chromium-profile", download_dir=downloads)
    d.downloads = downloads
    yield d
    d.quit()


@pytest.fixture
def browser_session(driver, dashboard):
    """The driver, signed out: no cookies for localhost (the dashboard's and the provider's)."""
    driver.get(dashboard["base"] + "/_stcore/health")
    driver.delete_all_cookies()
    return driver


def audit_entries(dashboard) -> list[dict]:
    """The audit log the dashboard wrote, as dicts."""
    path = dashboard["data_dir"] / "logs" / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def page(driver, url: str) -> dict:
    """Open `url` and collect what it shows."""
    from selenium.webdriver.common.by import By

    browser.open_page(driver, url)
    main = driver.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]'); return m ? m.innerText : '';"
    ) or ""
    sidebar = driver.execute_script(
        "const s = document.querySelector('[data-testid=\"stSidebar\"]'); return s ? s.innerText : '';"
    ) or ""

    def count(selector: str) -> int:
        return len(driver.find_elements(By.CSS_SELECTOR, selector))

    return {
        "main": main, "sidebar": sidebar,
        "errors": [e.text for e in driver.find_elements(By.CSS_SELECTOR, browser.ERROR_SELECTOR)],
        "charts": count(browser.CHART_SELECTOR), "metrics": count('[data-testid="stMetric"]'),
        "downloads": count('[data-testid="stDownloadButton"]'), "nav": count('[data-testid="stSidebarNav"]'),
        "tables": count('[data-testid="stDataFrame"]'),
        "toggles": len([t for t in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stCheckbox"]')
                        if "Show contact details" in t.text]),
    }


def shoot(driver, dashboard, name: str) -> Path | None:
    """Screenshot into $RETAIN_SCREENSHOTS, when set, for a person to look at.

    Nothing asserts on these pictures (the page checks read the page's elements), and each one
    resizes the window and waits for the charts to lay out again: about 2 s each, 25 in this
    module. `tests/test_dashboard_browser.py` screenshots every page in every run.
    """
    target = os.environ.get("RETAIN_SCREENSHOTS")
    if not target:
        return None
    path = browser.screenshot(driver, dashboard["work"] / "screenshots" / f"{name}.png")
    Path(target).mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, Path(target) / path.name)
    return path


def test_signed_out_visitors_see_only_the_sign_in_page(browser_session, dashboard, warehouse_customer):
    base = dashboard["base"]
    for path in ("/", "/outreach", f"/customer_360?customer={warehouse_customer['customer_id']}", "/churn"):
        shown = page(browser_session, base + path)
        assert "Sign in" in shown["main"], (path, shown["main"][:300])
        assert not shown["errors"], shown["errors"]
        assert shown["charts"] == 0 and shown["metrics"] == 0 and shown["downloads"] == 0 and shown["nav"] == 0, path
        assert not EMAIL_RE.search(shown["main"] + shown["sidebar"])
        assert warehouse_customer["customer_id"] not in shown["main"]
    shoot(browser_session, dashboard, "signed_out")


def test_the_cli_wrote_the_sign_in_secrets_owner_only(dashboard):
    secrets_file = dashboard["data_dir"] / "dashboard" / "secrets.toml"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert secrets_file.parent.stat().st_mode & 0o777 == 0o700
    text = secrets_file.read_text()
    assert "test-client-secret" in text and "cookie_secret" in text and "/oauth2callback" in text


def test_viewer_sees_kpis_and_masked_lists_but_no_downloads_or_contacts(browser_session, dashboard,
                                                                          warehouse_customer, email_play):
    base = dashboard["base"]
    browser.sign_in(browser_session, base, user("viewer"))
    shown = page(browser_session, base + "/")
    assert not shown["errors"], shown["errors"]
    assert shown["charts"] >= 1 and shown["metrics"] >= 1 and shown["nav"] == 1
    assert "Signed in as viewer@shop.test" in shown["sidebar"] and "viewer" in shown["sidebar"]
    shoot(browser_session, dashboard, "viewer_overview")

    outreach = page(browser_session, play_url(base, email_play))
    assert not outreach["errors"], outreach["errors"]
    assert outreach["downloads"] == 0
    assert "need the marketer role" in outreach["main"]
    assert outreach["tables"] >= 1, "the masked preview of the play's list is missing"
    shoot(browser_session, dashboard, "viewer_outreach")

    c360 = page(browser_session, f"{base}/customer_360?customer={warehouse_customer['customer_id']}")
    assert not c360["errors"], c360["errors"]
    assert c360["toggles"] == 0
    assert warehouse_customer["customer_id"] in c360["main"]
    assert warehouse_customer["email"] not in c360["main"] and warehouse_customer["phone"] not in c360["main"]
    assert not EMAIL_RE.search(c360["main"])
    shoot(browser_session, dashboard, "viewer_customer_360")
    viewer = [e for e in audit_entries(dashboard) if e["user"] == user("viewer")]
    assert viewer and {e["action"] for e in viewer} == {"session_start"}
    assert viewer[0]["mode"] == "oidc" and viewer[0]["roles"] == ["viewer"] and viewer[0]["subject"] == user("viewer")


def _wait_for_download(folder: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if not p.name.endswith((".crdownload", ".tmp"))]
        if done:
            return done[0]
        time.sleep(0.3)
    raise AssertionError(f"nothing was downloaded into {folder} within {timeout:.0f} s")


def test_marketer_downloads_the_crm_file_and_the_download_is_audited(browser_session, dashboard, data_dir,
                                                                      email_play, warehouse_customer):
    from selenium.webdriver.common.by import By

    base = dashboard["base"]
    browser.sign_in(browser_session, base, user("marketer"))
    shown = page(browser_session, play_url(base, email_play))
    assert not shown["errors"], shown["errors"]
    assert shown["downloads"] >= 1, shown["main"][:1000]
    shoot(browser_session, dashboard, "marketer_outreach")
    buttons = browser_session.find_elements(By.CSS_SELECTOR, '[data-testid="stDownloadButton"] button')
    button = next(b for b in buttons if "Klaviyo" in b.text) if any("Klaviyo" in b.text for b in buttons) \
        else buttons[0]
    title = button.text
    before = len(audit_entries(dashboard))
    button.click()
    downloaded = _wait_for_download(browser_session.downloads)
    content = downloaded.read_bytes()
    assert downloaded.name.startswith(email_play)
    # The file carries real (unmasked) addresses, as `retain export` writes them.
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        emails = {r[0].lower() for r in con.execute(
            "select d.email from exports.outreach_lists l join marts.dim_customers d using (customer_id) "
            "where l.play = ? and d.email is not null", [email_play]).fetchall()}
    text = content.decode("utf-8-sig") if downloaded.suffix == ".csv" else ""
    if text:
        assert "•" not in text
        assert any(e in text.lower() for e in emails)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(audit_entries(dashboard)) == before:
        time.sleep(0.2)
    downloads = [e for e in audit_entries(dashboard)[before:] if e["action"] == "download"]
    assert len(downloads) == 1, audit_entries(dashboard)[before:]
    entry = downloads[0]
    assert entry["user"] == user("marketer") and entry["roles"] == ["marketer", "viewer"]
    assert entry["play"] == email_play and entry["file_name"] == downloaded.name and entry["run_id"]
    if text:
        assert entry["rows"] == len([line for line in text.splitlines() if line.strip()]) - 1
    assert entry["format"].replace("_", " ").lower() in title.lower() or entry["format"] in downloaded.name

    c360 = page(browser_session, f"{base}/customer_360?customer={warehouse_customer['customer_id']}")
    assert c360["toggles"] == 0 and warehouse_customer["email"] not in c360["main"]


def test_support_sees_contact_details_from_the_warehouse_and_each_view_is_audited(browser_session, dashboard,
                                                                                  warehouse_customer, email_play):
    from selenium.webdriver.common.by import By

    base, customer_id = dashboard["base"], warehouse_customer["customer_id"]
    browser.sign_in(browser_session, base, user("support"))
    shown = page(browser_session, f"{base}/customer_360?customer={customer_id}")
    assert not shown["errors"], shown["errors"]
    assert shown["toggles"] == 1
    assert warehouse_customer["email"] not in shown["main"], "contact details must stay masked until revealed"
    before = len(audit_entries(dashboard))
    toggle = next(t for t in browser_session.find_elements(By.CSS_SELECTOR, '[data-testid="stCheckbox"]')
                  if "Show contact details" in t.text)
    toggle.find_element(By.CSS_SELECTOR, "label").click()
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = browser_session.execute_script("return document.querySelector('[data-testid=\"stMain\"]').innerText")
        if warehouse_customer["email"] in text:
            break
        time.sleep(0.3)
    assert warehouse_customer["email"] in text and warehouse_customer["phone"] in text, text[:800]
    shoot(browser_session, dashboard, "support_customer_360_revealed")
    views = [e for e in audit_entries(dashboard)[before:] if e["action"] == "contact_view"]
    assert len(views) == 1, audit_entries(dashboard)[before:]
    assert views[0]["user"] == user("support") and views[0]["customer_ids"] == [customer_id]
    assert views[0]["rows"] == 1 and "email" in views[0]["fields"]

    outreach = page(browser_session, play_url(base, email_play))
    assert outreach["downloads"] == 0 and "need the marketer role" in outreach["main"]


PHONE_RE = re.compile(r"\+\d[\d ()/-]{7,}\d")


@pytest.mark.parametrize("role", ROLES)
def test_no_page_shows_plain_contact_data_to_any_role(role, browser_session, dashboard, warehouse_customer):
    """Every page, as each role, without revealing: no plain email or phone anywhere in the main area."""
    base = dashboard["base"]
    browser.sign_in(browser_session, base, user(role))
    # A marketer's pages are a viewer's but for the Outreach page's download buttons.
    pages = [p for p in browser.PAGES if role != "marketer" or p[0] == "outreach"]
    assert pages
    for path, title in pages:
        query = f"?customer={warehouse_customer['customer_id']}" if path == "customer_360" else ""
        shown = page(browser_session, f"{base}/{path}{query}")
        assert not shown["errors"], (path, shown["errors"])
        assert title in shown["main"], (path, shown["main"][:300])
        assert not EMAIL_RE.search(shown["main"]), (role, path, EMAIL_RE.search(shown["main"]).group(0))
        assert not PHONE_RE.search(shown["main"]), (role, path, PHONE_RE.search(shown["main"]).group(0))
        assert warehouse_customer["email"] not in shown["main"] and warehouse_customer["phone"] not in shown["main"]
        shoot(browser_session, dashboard, f"{role}_{path}")


def _search(driver, text: str, expect: str, timeout: float = 30) -> str:
    """Type `text` into Customer 360's search box, press Enter, wait until the page shows `expect`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, '[data-testid="stTextInput"] input')
    box.send_keys(Keys.CONTROL, "a")  # clear() does not reach Streamlit's React state
    box.send_keys(Keys.BACKSPACE)
    box.send_keys(text, Keys.ENTER)
    deadline = time.monotonic() + timeout
    main = ""
    while time.monotonic() < deadline:
        main = driver.execute_script("return document.querySelector('[data-testid=\"stMain\"]').innerText")
        if expect in main and browser._rendered(driver):
            return main
        time.sleep(0.3)
    raise AssertionError(f"{expect!r} did not appear after searching; the page shows:\n{main[:800]}")


def test_viewer_finds_a_customer_by_whole_email_and_support_by_its_beginning(browser_session, dashboard,
                                                                             warehouse_customer):
    base, customer_id, email = dashboard["base"], warehouse_customer["customer_id"], warehouse_customer["email"]
    browser.sign_in(browser_session, base, user("viewer"))
    page(browser_session, f"{base}/customer_360")
    main = _search(browser_session, email.split("@")[0] + "@", "No customer with id")
    main = _search(browser_session, email.upper(), "Timeline")
    assert customer_id in main and email not in main and not EMAIL_RE.search(main)
    assert not [e for e in audit_entries(dashboard) if e["action"] == "contact_search"]

    browser_session.get(base + "/_stcore/health")
    browser_session.delete_all_cookies()
    browser.sign_in(browser_session, base, user("support"))
    page(browser_session, f"{base}/customer_360")
    before = len(audit_entries(dashboard))
    main = _search(browser_session, email[:-3].upper(), "Timeline")
    assert customer_id in main and email not in main and not EMAIL_RE.search(main)
    shoot(browser_session, dashboard, "support_customer_360_email_search")
    searches = [e for e in audit_entries(dashboard)[before:] if e["action"] == "contact_search"]
    assert len(searches) == 1 and searches[0]["customer_ids"] == [customer_id], audit_entries(dashboard)[before:]
    assert searches[0]["user"] == user("support") and searches[0]["search"] == "email_prefix"


def test_a_user_without_a_role_sees_nothing_but_a_message(browser_session, dashboard):
    base = dashboard["base"]
    browser.sign_in(browser_session, base, NO_ROLE)
    for path in ("/", "/outreach", "/customer_360"):
        shown = page(browser_session, base + path)
        assert "no role" in shown["main"], shown["main"][:300]
        assert shown["charts"] == 0 and shown["metrics"] == 0 and shown["nav"] == 0 and shown["downloads"] == 0
    shoot(browser_session, dashboard, "no_role")
    denied = [e for e in audit_entries(dashboard) if e["user"] == NO_ROLE]
    assert denied and {e["action"] for e in denied} == {"access_denied"}


def test_sign_out_returns_to_the_sign_in_page(browser_session, dashboard):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base = dashboard["base"]
    browser.sign_in(browser_session, base, user("viewer"))
    assert "Signed in as viewer@shop.test" in page(browser_session, base + "/")["sidebar"]
    wait = WebDriverWait(browser_session, 30)
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, '//*[@data-testid="stSidebar"]//button[.//p[text()="Sign out"]]'))).click()
    # The provider's end-session page (RP-initiated logout) asks to confirm, then sends us back.
    wait.until(ec.element_to_be_clickable((By.XPATH, '//button[text()="End session"]'))).click()
    wait.until(lambda d: d.current_url.startswith(base))
    shown = page(browser_session, base + "/")
    assert "Sign in" in shown["main"] and shown["nav"] == 0 and shown["charts"] == 0


def test_the_audit_log_is_owner_only(dashboard):
    path = dashboard["data_dir"] / "logs" / "audit.jsonl"
    assert path.exists()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
