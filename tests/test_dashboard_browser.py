"""The dashboard in a real browser: `streamlit run dashboards/app.py` on a free localhost port,
every page opened in Debian's headless Chromium (driven by Selenium through the system
chromedriver; nothing is downloaded), checked for error elements and rendered charts, and
screenshotted into the test's tmp folder (and into $RETAIN_SCREENSHOTS when it is set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dashboards import browser
from tests.browser_fixtures import browser_data_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def data_dir(request) -> Path:
    """A data folder with a published snapshot: the shared pipeline run's."""
    return browser_data_dir(request, "dashboard test")


@pytest.fixture(scope="module")
def customer_id(data_dir) -> str:
    """A customer with several orders, for the Customer 360 page."""
    from dashboards.data.connection import connect, query
    from pipelines.publish import current_snapshot

    con = connect(current_snapshot(data_dir / "published"))
    try:
        return query(
            con, "select customer_id from marts.dim_customers order by orders_count desc, customer_id limit 1"
        ).iloc[0]["customer_id"]
    finally:
        con.close()


@pytest.fixture(scope="module")
def browsed(data_dir, customer_id, tmp_path_factory):
    """Every page opened once in Chromium, plus a filtered Overview opened from a shared link."""
    work = tmp_path_factory.mktemp("browser")
    shots = work / "screenshots"
    extra = {"overview_germany": ("overview", "country=DE&period=2026-01&period=2026-06")}
    results = browser.check_all(
        data_dir, shots, queries={"customer_360": f"customer={customer_id}"}, work_dir=work, extra=extra
    )
    target = os.environ.get("RETAIN_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for r in results:
            if r.screenshot:
                shutil.copy2(r.screenshot, Path(target) / r.screenshot.name)
    return {r.name: r for r in results}


@pytest.mark.parametrize("page", [p for p, _ in browser.PAGES])
def test_page_renders_in_chromium_without_errors(page, browsed):
    r = browsed[page]
    assert not r.errors, f"{r.url} shows an exception:\n" + "\n".join(r.errors)
    assert r.charts >= 1, f"{r.url} rendered no chart"
    assert r.title == dict(browser.PAGES)[page], f"{r.url} shows {r.title!r}"
    assert r.screenshot is not None and r.screenshot.stat().st_size > 10_000
    assert r.screenshot.stat().st_size <= browser.MAX_SCREENSHOT_BYTES


def test_a_shared_link_opens_with_its_filters(browsed):
    r = browsed["overview_germany"]
    assert not r.errors
    assert "Jan 2026 – Jun 2026 · DE" in r.text, r.text[:500]


def test_no_page_shows_a_raw_email(browsed):
    import re

    for r in browsed.values():
        assert not re.search(r"[a-z0-9._-]{2,}@[a-z0-9.-]+\.[a-z]{2,}", r.text), (r.name, r.text[:300])
