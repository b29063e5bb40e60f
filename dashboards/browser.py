"""Drive the dashboard in a real headless Chromium: serve it, open every page, check, screenshot.

Used by tests/test_dashboard_browser.py and, for the docs, from the command line:

    python -m dashboards.browser --data-dir data/screens --out docs/screenshots

Only Debian's own `chromium` and `chromedriver` are used, given by path, with Selenium
Manager switched off, so nothing is ever downloaded.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("RETAIN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RETAIN_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)

#: (url path, title) of every page, in navigation order.
PAGES = (
    ("overview", "Overview"),
    ("retention", "Retention"),
    ("post_purchase", "Post-purchase experience"),
    ("support", "Support & complaints"),
    ("products", "Products"),
    ("churn", "Churn risk"),
    ("outreach", "Outreach"),
    ("customer_360", "Customer 360"),
)
ERROR_SELECTOR = '[data-testid="stException"]'
CHART_SELECTOR = ".js-plotly-plot"
#: Screenshots for the docs are kept under this size (bytes) by reducing colours.
MAX_SCREENSHOT_BYTES = 400_000


def missing_browser() -> str | None:
    """Why the browser pass cannot run here, or None if Chromium, chromedriver and Selenium are present."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            return f"{path} not found: install Debian's {package} (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """Start `streamlit run dashboards/app.py` on 127.0.0.1:port reading `data_dir`; wait until it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    env["RETAIN_DATA_DIR"] = str(data_dir)
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--global.developmentMode", "false", "--client.toolbarMode", "viewer",
    ]
    handle = log.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    url = f"http://127.0.0.1:{port}/_stcore/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - our own localhost server
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"streamlit did not answer on port {port} within 60 s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server started by `start_server`."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def make_driver(user_data_dir: Path, width: int = 1440, height: int = 1000, download_dir: Path | None = None):
    """A headless Chromium WebDriver on Debian's binaries, with a fresh profile (downloads into `download_dir`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={width},{height}")
    if download_dir is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(download_dir), "download.prompt_for_download": False,
        })
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


@dataclass
class PageCheck:
    """What one page showed in the browser."""

    name: str
    page: str
    url: str
    title: str = ""
    text: str = ""
    errors: list[str] = field(default_factory=list)
    charts: int = 0
    seconds: float = 0.0
    screenshot: Path | None = None


def sign_in(driver, base_url: str, subject: str, timeout: float = 60) -> float:
    """Sign in through the dashboard's sign-in page and the OpenID provider's page of `oidc-provider-mock`.

    Opens `base_url`, clicks "Sign in" (Streamlit's `st.login`), picks the provider's user
    `subject` on its authorization page, and waits for the dashboard to render again.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    t0 = time.monotonic()
    open_page(driver, base_url)
    wait = WebDriverWait(driver, timeout)
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, '//*[@data-testid="stButton"]//button[.//p[text()="Sign in"]]'))).click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f'button[name="sub"][value="{subject}"]'))).click()
    wait.until(lambda d: d.current_url.startswith(base_url) and "oauth2callback" not in d.current_url)
    open_page(driver, driver.current_url)
    return time.monotonic() - t0


def _rendered(driver) -> bool:
    # Streamlit shows its status widget while a script runs and skeletons until elements arrive;
    # Plotly marks a chart's element `.js-plotly-plot` with an `svg.main-svg` once it has drawn it.
    return bool(
        driver.execute_script(
            """
            const app = document.querySelector('[data-testid="stApp"]');
            if (!app) return false;
            if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
            if (document.querySelector('[data-testid="stSkeleton"]')) return false;
            const main = document.querySelector('[data-testid="stMain"]') || app;
            if (main.innerText.trim().length === 0) return false;
            for (const chart of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
                if (!chart.querySelector('.js-plotly-plot .main-svg')) return false;
            }
            return true;
            """
        )
    )


def open_page(driver, url: str, timeout: float = 60, settle: float = 0.5) -> float:
    """Load `url` and wait until Streamlit finished running the page and every chart drew.

    `settle`: seconds the page must stay so (a rerun shows the status widget again).
    """
    t0 = time.monotonic()
    driver.get(url)
    deadline = t0 + timeout
    stable_since = None
    while time.monotonic() < deadline:
        if _rendered(driver):
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= settle:
                break
        else:
            stable_since = None
        time.sleep(0.25)
    return time.monotonic() - t0


def screenshot(driver, path: Path, width: int = 1440, max_height: int = 6000,
               max_bytes: int = MAX_SCREENSHOT_BYTES) -> Path:
    """Save the whole page (not just the window) as a PNG, reduced in colours to stay small."""
    height = driver.execute_script(
        """
        const main = document.querySelector('[data-testid="stMain"]');
        const block = document.querySelector('[data-testid="stMainBlockContainer"]');
        return Math.max(document.body.scrollHeight, main ? main.scrollHeight : 0,
                        block ? block.scrollHeight + 120 : 0);
        """
    )
    driver.set_window_size(width, min(int(height) + 40, max_height))
    time.sleep(1.0)  # plotly re-lays out on resize
    png = driver.get_screenshot_as_png()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_shrink(png, max_bytes))
    return path


def _shrink(png: bytes, max_bytes: int) -> bytes:
    from PIL import Image

    if len(png) <= max_bytes:
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    for colors in (256, 128, 64):
        out = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
        if out.tell() <= max_bytes:
            return out.getvalue()
    scale = 0.8
    while True:
        small = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.quantize(colors=128).save(out, format="PNG", optimize=True)
        if out.tell() <= max_bytes or scale < 0.3:
            return out.getvalue()
        scale *= 0.85


def check_page(driver, base_url: str, page: str, query: str = "", out_dir: Path | None = None,
               width: int = 1440, name: str | None = None) -> PageCheck:
    """Open one page, collect its title, text, error elements and rendered charts; optionally screenshot it."""
    from selenium.webdriver.common.by import By

    # The default page lives at the root URL; its url_path would be "page not found".
    path = "" if page == PAGES[0][0] else page
    url = f"{base_url}/{path}{'?' + query if query else ''}"
    driver.set_window_size(width, 1000)
    seconds = open_page(driver, url)
    errors = [e.text[:500] for e in driver.find_elements(By.CSS_SELECTOR, ERROR_SELECTOR)]
    charts = len([c for c in driver.find_elements(By.CSS_SELECTOR, CHART_SELECTOR)
                  if c.find_elements(By.CSS_SELECTOR, ".main-svg")])
    titles = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMain"] h1')
    text = driver.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]'); return m ? m.innerText : '';"
    )
    result = PageCheck(name=name or page, page=page, url=url, title=titles[0].text.strip() if titles else "",
                       text=text or "", errors=errors, charts=charts, seconds=seconds)
    if out_dir is not None:
        result.screenshot = screenshot(driver, out_dir / f"{result.name}.png", width=width)
    return result


def check_all(data_dir: Path, out_dir: Path | None, queries: dict[str, str] | None = None,
              work_dir: Path | None = None, extra: dict[str, tuple[str, str]] | None = None) -> list[PageCheck]:
    """Serve the dashboard on a free port and open every page in headless Chromium.

    `queries` adds a query string to a page's URL; `extra` opens more views, name → (page, query).
    """
    work = Path(work_dir or tempfile.mkdtemp(prefix="retain-browser-"))
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(data_dir, port, work / "streamlit.log")
    profile = work / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    driver = None
    try:
        driver = make_driver(profile)
        base = f"http://127.0.0.1:{port}"
        views = [(page, page, (queries or {}).get(page, "")) for page, _ in PAGES]
        views += [(name, page, query) for name, (page, query) in (extra or {}).items()]
        return [check_page(driver, base, page, query, out_dir, name=name) for name, page, query in views]
    finally:
        if driver is not None:
            driver.quit()
        stop_server(server)


def main(argv: list[str] | None = None) -> int:
    """Command line: screenshot every page of the dashboard served from a data folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="retain data folder with a published snapshot")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    parser.add_argument("--customer", help="customer id to show on the Customer 360 page")
    parser.add_argument("--query", default="", help="query string for every page, e.g. 'country=DE'")
    parser.add_argument("--page-query", action="append", default=[], metavar="PAGE=QUERY",
                        help="query string for one page, e.g. 'outreach=play=Win-back' (repeatable)")
    args = parser.parse_args(argv)
    reason = missing_browser()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    queries = {page: args.query for page, _ in PAGES}
    if args.customer:
        queries["customer_360"] = f"customer={args.customer}"
    for item in args.page_query:
        page, _, query = item.partition("=")
        queries[page] = query
    results = check_all(args.data_dir.resolve(), args.out.resolve(), queries)
    failed = False
    for r in results:
        size = r.screenshot.stat().st_size // 1000 if r.screenshot else 0
        print(f"{r.name:15} {r.seconds:5.1f} s  charts={r.charts:2d}  errors={len(r.errors)}  {size} KB")
        failed |= bool(r.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
