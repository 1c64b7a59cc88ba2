"""A real browser for the web tests: Debian's Chromium, headless, driven by Selenium through
Debian's chromium-driver (no network: Selenium Manager is told to stay offline).

Also a tracker: a local HTTP server that counts every request it gets, for the tests that show an
HTML mail makes zero requests.
"""
from __future__ import annotations

import http.server
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("POSTERN_SCREENSHOTS", ROOT / "tests" / "screenshots"))

os.environ.setdefault("SE_OFFLINE", "true")


def _binary(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def make_browser(javascript: bool = True, downloads: Path | None = None):
    """A headless Chromium; `javascript=False` turns scripts off as a user would."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed — run scripts/install-test-deps", pytrace=False)
    chromium = _binary("chromium", "chromium-browser")
    driver_path = _binary("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromium-driver are not installed — run scripts/install-test-deps", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--disable-gpu", "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--lang=en-US"):
        options.add_argument(arg)
    prefs = {"intl.accept_languages": "en-US"}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    if downloads is not None:
        prefs.update({"download.default_directory": str(downloads), "download.prompt_for_download": False,
                      "safebrowsing.enabled": False})
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    if downloads is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def screenshot(driver, name: str) -> Path:
    """Saves the page as tests/screenshots/NAME.png (README and docs take a few of them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # The whole page, not only the window: let the window grow to the document's height.
    height = driver.execute_script("return document.documentElement.scrollHeight") if _scripts_on(driver) else 1000
    driver.set_window_size(1280, max(700, min(int(height or 1000), 2400)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path


def _scripts_on(driver) -> bool:
    try:
        return driver.execute_script("return 1") == 1
    except Exception:
        return False


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # the page may be mid-navigation
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Tracker:
    """An HTTP server that answers everything with a 1x1 GIF and remembers each request."""

    GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
           b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

    def __init__(self):
        tracker = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                tracker.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(Tracker.GIF)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(Tracker.GIF)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
