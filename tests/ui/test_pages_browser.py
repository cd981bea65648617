"""The status pages in a real headless Chromium: what a person sees, the click-through
from a source to a run to its quarantine, escaping, local times, a phone's width, the
keyboard, and a cross-site form refused. Screenshots are saved as test artefacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import Served
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from ui_support import BILLING_RUNS, XSS_NAME, XSS_REASON, UiHome

Shot = Callable[[Any, str], Path]
T = TypeVar("T")

#: Seconds a wait allows before failing the test: a safety net, never reached when slow.
SAFETY_TIMEOUT = 120


def _wait(browser: Any) -> WebDriverWait:
    # A live page replaces its rows while a condition reads them: a row found a moment
    # ago may be gone, so the condition is asked again instead of failing.
    return WebDriverWait(
        browser, SAFETY_TIMEOUT, ignored_exceptions=(StaleElementReferenceException,)
    )


def _read(browser: Any, read: Callable[[Any], T]) -> T:
    """What ``read`` finds on the page, read again from the start if the page replaced
    an element while it was reading (every page refreshes its content as data change)."""
    return _wait(browser).until(lambda b: (read(b),))[0]


def _click(browser: Any, find: Callable[[Any], Any]) -> None:
    """Click what ``find`` finds, finding it again if the page replaced it meanwhile."""
    _wait(browser).until(lambda b: find(b).click() or True)


def _drawn(browser: Any, chart_id: str) -> Any:
    """The chart once drawn (found afresh each time: a refresh replaces it)."""

    def drawn(b: Any) -> Any:
        chart = b.find_element(By.ID, chart_id)
        return chart if chart.get_attribute("data-drawn") == "true" else None

    return _wait(browser).until(drawn)


def _no_alert(browser: Any) -> None:
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


def _row(browser: Any, source: str) -> Any:
    return browser.find_element(By.CSS_SELECTOR, f'tr[data-source="{source}"]')


def test_sources_page_shows_statuses_and_freshness(
    browser: Any, served: Served, screenshot: Shot
) -> None:
    browser.set_window_size(1280, 900)
    browser.get(served.url + "/")
    assert browser.title == "Sources · mpconnect"

    def rows(b: Any) -> dict[str, tuple[str, str, str]]:
        shown = {}
        for name in ("billing", "crm", "live"):
            row = _row(b, name)
            badge = row.find_element(By.CLASS_NAME, "badge")
            shown[name] = (row.text, badge.text, badge.value_of_css_property("color"))
        return shown

    seen = _read(browser, rows)
    (billing, billing_badge, green), (crm, crm_badge, red) = seen["billing"], seen["crm"]
    assert (billing_badge, crm_badge) == ("fresh", "stale")
    assert "succeeded" in billing and "400" in billing
    assert "failed" in crm
    assert "running" in seen["live"][0]
    assert red != green and red.startswith("rgba(180, 35, 24")  # --bad
    screenshot(browser, "ui-sources")


def test_source_page_draws_records_and_duration_of_each_run(
    browser: Any, served: Served, screenshot: Shot
) -> None:
    browser.get(served.url + "/sources/billing")

    def chart_and_runs(b: Any) -> tuple[int, str, list[str]]:
        chart = _drawn(b, "history-chart")
        legend = chart.find_element(By.CLASS_NAME, "u-legend").text
        canvases = len(chart.find_elements(By.TAG_NAME, "canvas"))
        return canvases, legend, [r.text for r in b.find_elements(By.CSS_SELECTOR, "tr[data-run]")]

    canvases, legend, rows = _read(browser, chart_and_runs)
    assert canvases
    assert "records" in legend and "duration (s)" in legend
    assert len(rows) == BILLING_RUNS
    assert all("succeeded" in row and "400" in row for row in rows)
    screenshot(browser, "ui-source")


def test_times_are_in_the_viewers_zone_with_utc_on_hover(browser: Any, served: Served) -> None:
    browser.get(served.url + "/sources/billing")

    def first_time(b: Any) -> tuple[str, str]:
        first = b.find_element(By.CSS_SELECTOR, "tr[data-run] time")
        return first.text, first.get_attribute("title")

    text, title = _read(browser, first_time)
    assert title.endswith(" UTC")
    assert "GMT+9" in text  # the browser runs in Asia/Tokyo
    assert text != title


def test_click_from_a_source_to_a_run_to_its_quarantine(
    browser: Any, served: Served, ui_home: UiHome, screenshot: Shot
) -> None:
    browser.set_window_size(1280, 900)
    browser.get(served.url + "/")
    _click(browser, lambda b: _row(b, "orders").find_element(By.LINK_TEXT, "orders"))
    _wait(browser).until(expected_conditions.title_is("orders · mpconnect"))

    def history(b: Any) -> tuple[int, int]:
        chart = _drawn(b, "history-chart")
        return len(chart.find_elements(By.TAG_NAME, "canvas")), chart.size["height"]

    canvases, height = _read(browser, history)
    assert canvases and height > 100

    run_id = ui_home.runs["orders"].run_id
    _click(browser, lambda b: b.find_element(By.CSS_SELECTOR, f'tr[data-run="{run_id}"] td a'))
    _wait(browser).until(expected_conditions.title_contains(run_id))

    def run_page(b: Any) -> tuple[list[str], list[int], str]:
        _drawn(b, "throughput-chart")
        phases = [e.text for e in b.find_elements(By.CLASS_NAME, "phase-name")]
        widths = [bar.size["width"] for bar in b.find_elements(By.CLASS_NAME, "phase-bar")]
        return phases, widths, b.find_element(By.CLASS_NAME, "facts-grid").text

    phases, widths, facts = _read(browser, run_page)
    assert phases == ["create", "import", "extract", "publish", "live", "prune"]
    assert widths and all(width > 0 for width in widths)
    assert "270" in facts
    screenshot(browser, "ui-run")

    _click(browser, lambda b: b.find_element(By.LINK_TEXT, "30 records"))
    _wait(browser).until(expected_conditions.title_contains("Quarantine"))

    def quarantine_page(b: Any) -> tuple[str, str, str]:
        reasons = b.find_element(By.CSS_SELECTOR, "table.reasons tbody").text
        sample = b.find_element(By.CSS_SELECTOR, "details.sample pre").text
        link = b.find_element(By.PARTIAL_LINK_TEXT, "Download the quarantine file")
        return reasons, sample, link.get_attribute("href")

    reasons, sample, href = _read(browser, quarantine_page)
    assert XSS_REASON in reasons and reasons.startswith("30")
    assert XSS_NAME in sample  # shown as text, never run
    _no_alert(browser)
    assert href.endswith(f"/runs/{run_id}/quarantine.jsonl")
    screenshot(browser, "ui-quarantine")


def test_failed_run_shows_its_redacted_error(
    browser: Any, served: Served, ui_home: UiHome, screenshot: Shot
) -> None:
    browser.get(served.url + f"/runs/{ui_home.runs['crm'].run_id}")
    error = _read(browser, lambda b: b.find_element(By.CLASS_NAME, "error-text").text)
    assert "api_key=***" in error and "<b>denied</b>" in error
    _no_alert(browser)
    screenshot(browser, "ui-run-failed")


def test_datasets_page_shows_versions(
    browser: Any, served: Served, ui_home: UiHome, screenshot: Shot
) -> None:
    browser.get(served.url + "/datasets")

    def live_billing_versions(b: Any) -> list[str]:
        section = next(
            s
            for s in b.find_elements(By.CSS_SELECTOR, "section.dataset")
            if s.find_element(By.TAG_NAME, "h2").text.startswith("BILLING")
        )
        rows = [row.text for row in section.find_elements(By.CSS_SELECTOR, "tbody tr")]
        return [row for row in rows if " live " in f" {row} "]

    live = _read(browser, live_billing_versions)
    assert live and live[0].startswith(ui_home.runs["billing"].version_id)
    assert "400" in live[0]
    screenshot(browser, "ui-datasets")


def test_readable_on_a_phone(browser: Any, served: Served, screenshot: Shot) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(served.url + "/")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1
        assert _read(
            browser, lambda b: _row(b, "crm").find_element(By.CLASS_NAME, "badge").is_displayed()
        )
        screenshot(browser, "ui-sources-phone")
    finally:
        browser.set_window_size(1280, 900)


def test_usable_by_keyboard(browser: Any, served: Served) -> None:
    browser.get(served.url + "/")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content"
    skip.send_keys(Keys.ENTER)
    for _ in range(12):  # tab on to the first source's link and follow it
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element.text == "billing":
            break
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    _wait(browser).until(expected_conditions.title_is("billing · mpconnect"))


def test_run_now_from_the_page(browser: Any, served: Served) -> None:
    served.asked.clear()
    browser.get(served.url + "/sources/billing")
    _click(browser, lambda b: b.find_element(By.CSS_SELECTOR, "form.run-now button"))
    _wait(browser).until(lambda b: b.find_elements(By.CLASS_NAME, "notice"))
    notice = _read(browser, lambda b: b.find_element(By.CLASS_NAME, "notice").text)
    assert notice == "billing: run started"
    assert served.asked == ["billing"]


def test_a_form_on_another_site_cannot_start_a_run(browser: Any, served: Served) -> None:
    from aiohttp import web

    port = served.url.rsplit(":", 1)[1]
    target = f"http://127.0.0.1:{port}/sources/billing/run"

    async def evil(request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            text=(
                f'<form id="f" method="post" action="{target}">'
                '<input name="csrf" value="guess"></form>'
                "<script>document.getElementById('f').submit()</script>"
            ),
        )

    app = web.Application()
    app.router.add_get("/", evil)
    from mpconnect.emulator.background import BackgroundServer

    other = BackgroundServer(app).start()
    served.asked.clear()
    try:
        browser.get(f"http://localhost:{other.port}/")  # another site than 127.0.0.1
        _wait(browser).until(lambda b: "refused" in b.find_element(By.TAG_NAME, "body").text)
        assert "cross-site" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        other.stop()
    assert served.asked == []


def test_a_running_run_updates_without_a_reload(
    browser: Any, served: Served, ui_home: UiHome
) -> None:
    browser.get(served.url + "/sources/live")
    _wait(browser).until(
        lambda b: "running" in b.find_element(By.CSS_SELECTOR, "tr[data-run]").text
    )
    browser.execute_script("document.body.dataset.marker = 'same page'")
    # A keyboard user is on the run's link when the page updates: the focus stays there.
    link = browser.find_element(By.CSS_SELECTOR, "tr[data-run] a")
    href = link.get_attribute("href")
    browser.execute_script("arguments[0].focus()", link)
    ui_home.finish_running()
    _wait(browser).until(
        lambda b: "succeeded" in b.find_element(By.CSS_SELECTOR, "tr[data-run]").text
    )
    assert browser.execute_script("return document.body.dataset.marker") == "same page"
    focused = browser.switch_to.active_element
    assert focused.tag_name == "a" and focused.get_attribute("href") == href
