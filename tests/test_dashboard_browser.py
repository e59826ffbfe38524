"""The dashboard in a real browser: `finsent dashboard`'s serve path (streamlit run) on a
free port against a replayed SQLite database, every page loaded in headless Chromium.

Needs the Debian packages `chromium` and `chromium-driver` (skipped with that reason when
/usr/bin/chromium is missing). Screenshots go to artifacts/screenshots/<page>.png (or $FINSENT_SCREENSHOT_DIR)
(FINSENT_SCREENSHOTS=0 to leave them alone).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[1]
# Test artefacts go to artifacts/screenshots (git-ignored); refresh the README's pictures with
# FINSENT_SCREENSHOT_DIR=docs/screenshots pytest tests/test_dashboard_browser.py
SHOTS = Path(os.environ.get("FINSENT_SCREENSHOT_DIR", ROOT / "artifacts" / "screenshots"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
        reason="needs Debian chromium + chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]

# (screenshot name, URL path, title the page must show)
# The alert deep link goes first: it is what a chat message opens, often on a server that
# has just started, whose first session must land on the page without a "Page not found".
PAGES = [
    ("alerts", "/Alerts?alert={alert_id}", "Alerts"),
    ("overview", "/", "Overview"),
    ("companies", "/Companies", "Companies"),
    ("explorer", "/Explorer", "Explorer"),
    ("model", "/Model", "Model"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pipelines.feed import generate, write
    from tests.test_dashboard import T0, _feed, _seed

    d = tmp_path_factory.mktemp("browser")
    msgs = _feed(d / "feed.csv")
    # Chinese posts and news about A-shares in the same hours (no surge: the NVDA alert stays the first).
    chinese = [{**m, "id": f"zh-{m['id']}"} for m in generate(5, T0 + timedelta(hours=10), 9 * 60, 1.5, lang="zh")]
    write(d / "feed.csv", msgs + chinese)
    return _seed(f"sqlite:///{d / 'finsent.db'}", d / "feed.csv")


@pytest.fixture(scope="module")
def server(seeded_db: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from monitor.app import dashboard as dashboard_cmd
    from monitor.config import load_settings

    port = _free_port()
    watchlist = [{"symbol": "NVDA", "name": "Nvidia"}, {"symbol": "AAPL", "name": "Apple", "aliases": ["iPhone maker"]}]
    settings = load_settings(None, database_url=seeded_db["url"], entities=watchlist)
    log = (tmp_path_factory.mktemp("streamlit") / "streamlit.log").open("w+")
    proc = dashboard_cmd.start(settings, "127.0.0.1", port, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"streamlit exited with {proc.returncode}: {log.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("streamlit did not answer /_stcore/health within 90 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="finsent-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    # The viewport itself 1280x900 (a window of that size has a smaller viewport).
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait_rendered(driver: Any, title: str, timeout: float = 90) -> None:
    """The page's title is shown and the script has finished (no running indicator) for a
    moment, so charts and tables are drawn."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        heads = [h.text.strip() for h in driver.find_elements(By.CSS_SELECTOR, "h1")]
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        skeleton = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSkeleton"]')
        if title in heads and not running and not skeleton:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 2.0:
                return
        else:
            quiet_since = None
        time.sleep(0.25)
    raise AssertionError(f"page {title!r} did not finish rendering within {timeout} s; headings: {heads}")


@pytest.mark.parametrize(("name", "path", "title"), PAGES, ids=[p[0] for p in PAGES])
def test_page_renders_in_chromium(
    server: str, browser: Any, seeded_db: dict[str, Any], name: str, path: str, title: str
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + path.format(alert_id=seeded_db["alert_id"]))
    _wait_rendered(browser, title)
    errors = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not errors, [e.text[:500] for e in errors]
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Page not found" not in body
    if name == "overview":
        assert "Documents" in body and f"{seeded_db['documents']:,}" in body
        assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')
    elif name == "alerts":
        assert seeded_db["alert_id"] in body and "entity NVDA" in body  # the deep link opened the alert
        assert "Evidence" in body
    elif name == "companies":
        assert "Company" in body and "Documents" in body
    if os.environ.get("FINSENT_SCREENSHOTS", "1") != "0":
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / f"{name}.png"))


def test_companies_search_and_ranking_in_chromium(server: str, browser: Any) -> None:
    """The ranking table renders and the search box finds a company by name."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/Companies")
    _wait_rendered(browser, "Companies")
    grids = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    assert grids, "no ranking table"
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "companies with items in this range" in body
    box = browser.find_element(By.CSS_SELECTOR, 'input[aria-label="Find a company"]')
    box.send_keys("nvidia", Keys.ENTER)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = browser.find_element(By.TAG_NAME, "body").text
        if "1 company with items in this range" in body:
            break
        time.sleep(0.5)
    _wait_rendered(browser, "Companies")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "1 company with items in this range" in body, body[-1500:]  # the table narrowed to it
    assert "NVDA · Nvidia" in browser.page_source  # the picker names the company found
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    if os.environ.get("FINSENT_SCREENSHOTS", "1") != "0":
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "companies-search.png"))


def test_chinese_documents_and_company_names_in_chromium(server: str, browser: Any) -> None:
    """A Chinese company is found by its Chinese name, shown with it, and its Chinese posts
    are listed; the CJK glyphs are drawn (two different characters give two different
    pictures: without a CJK font both would be the same empty box)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/Companies")
    _wait_rendered(browser, "Companies")
    box = browser.find_element(By.CSS_SELECTOR, 'input[aria-label="Find a company"]')
    box.send_keys("贵州茅台", Keys.ENTER)
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and "1 company with items in this range" not in browser.find_element(By.TAG_NAME, "body").text
    ):
        time.sleep(0.5)
    _wait_rendered(browser, "Companies")
    assert "600519.SH · 贵州茅台" in browser.page_source
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "1 company with items in this range" in body, body[-1500:]
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    drawn = browser.execute_script(
        """
        const c = document.createElement('canvas'); c.width = 64; c.height = 64;
        const g = c.getContext('2d');
        const font = getComputedStyle(document.body).fontFamily;
        const picture = (ch) => { g.clearRect(0, 0, 64, 64); g.font = '48px ' + font;
            g.fillText(ch, 4, 52); return Array.from(g.getImageData(0, 0, 64, 64).data).join(','); };
        return [picture('贵'), picture('州'), picture('\u0378')];
        """
    )
    assert drawn[0] != drawn[1], "CJK characters are drawn as the same box: no CJK font (fonts-noto-cjk)"
    if os.environ.get("FINSENT_SCREENSHOTS", "1") != "0":
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / "companies-chinese.png"))
