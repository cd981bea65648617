"""Fixtures of the status page's tests: a home with real runs, the app serving it, and a
real headless Chromium (skipped on a machine without it, unless
``MPCONNECT_REQUIRE_BROWSER=1``, as in CI, makes its absence a failure)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_support import UiHome, build_home

from mpconnect.emulator.background import BackgroundServer
from mpconnect.ui.app import UiOptions, make_app
from mpconnect.ui.wiring import standalone

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_ENV = "MPCONNECT_REQUIRE_BROWSER"
#: Where screenshots go (the test artefacts); docs/ keeps the ones the README shows.
SCREENSHOTS_ENV = "MPCONNECT_SCREENSHOTS"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ui_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiHome]:
    """A home with a succeeded, a failed, a quarantining and a running run."""
    made = build_home(tmp_path_factory.mktemp("ui-home"))
    try:
        yield made
    finally:
        made.finish_running()


class Served:
    """The status app over ``ui_home``, with the "run now" requests it received."""

    def __init__(self, made: UiHome, token: str | None = None) -> None:
        self.asked: list[str] = []
        status, options = standalone(
            lambda: made.config, made.plugins, made.home, token, self._run_now
        )
        self.status = status
        self.server = BackgroundServer(make_app(status, options)).start()
        self.url = self.server.url

    def _run_now(self, source: str) -> str:
        self.asked.append(source)
        return f"{source}: run started"

    def stop(self) -> None:
        """Stop serving."""
        self.server.stop()


@pytest.fixture(scope="module")
def served(ui_home: UiHome) -> Iterator[Served]:
    """The status app without a token, on a loopback port."""
    server = Served(ui_home)
    try:
        yield server
    finally:
        server.stop()


def serve_app(status: Any, options: UiOptions) -> BackgroundServer:
    """Serve an app built from ``status`` and ``options`` (stop it when done)."""
    return BackgroundServer(make_app(status, options)).start()


def _browser_missing() -> str | None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        return (
            f"no {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install -y chromium "
            "chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A real headless Chromium driven by Selenium, with a fresh profile, in Tokyo's time
    zone (so local times differ from UTC)."""
    missing = _browser_missing()
    if missing:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but the browser tests cannot run: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mpconnect-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    service = Service(str(CHROMEDRIVER), env={**os.environ, "TZ": "Asia/Tokyo"})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Any, str], Path]:
    """Return ``save(driver, name)``: a PNG of the whole page in the artefacts folder
    (``$MPCONNECT_SCREENSHOTS``, else ``build/screenshots``; the README's are in docs/)."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or REPO / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def save(driver: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        size = driver.get_window_size()
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], max(size["height"], min(int(height) + 120, 2400)))
        try:
            driver.save_screenshot(str(path))
        finally:
            driver.set_window_size(size["width"], size["height"])
        return path

    return save
