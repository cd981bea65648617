"""The status pages in a real headless Chromium: what a person sees, the click-through
from a source to a run to its quarantine, escaping, local times, a phone's width, the
keyboard, and a cross-site form refused. Screenshots are saved as test artefacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _wait(browser: Any) -> WebDriverWait:
    # A live page replaces its rows while a condition reads them: a row found a moment
    # ago may be gone, so the condition is asked again instead of failing.
    return WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))


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
    billing, crm = _row(browser, "billing"), _row(browser, "crm")
    assert billing.find_element(By.CLASS_NAME, "badge").text == "fresh"
    assert crm.find_element(By.CLASS_NAME, "badge").text == "stale"
    assert "succeeded" in billing.text and "400" in billing.text
    assert "failed" in crm.text
    assert "running" in _row(browser, "live").text
    red = crm.find_element(By.CLASS_NAME, "badge").value_of_css_property("color")
    green = billing.find_element(By.CLASS_NAME, "badge").value_of_css_property("color")
    assert red != green and red.startswith("rgba(180, 35, 24")  # --bad
    screenshot(browser, "ui-sources")


def test_source_page_draws_records_and_duration_of_each_run(
    browser: Any, served: Served, screenshot: Shot
) -> None:
    browser.get(served.url + "/sources/billing")
    chart = browser.find_element(By.ID, "history-chart")
    _wait(browser).until(lambda b: chart.get_attribute("data-drawn") == "true")
    assert chart.find_elements(By.TAG_NAME, "canvas")
    legend = chart.find_element(By.CLASS_NAME, "u-legend").text
    assert "records" in legend and "duration (s)" in legend
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-run]")
    assert len(rows) == BILLING_RUNS
    assert all("succeeded" in row.text and "400" in row.text for row in rows)
    screenshot(browser, "ui-source")


def test_times_are_in_the_viewers_zone_with_utc_on_hover(browser: Any, served: Served) -> None:
    browser.get(served.url + "/sources/billing")
    first = browser.find_element(By.CSS_SELECTOR, "tr[data-run] time")
    assert first.get_attribute("title").endswith(" UTC")
    assert "GMT+9" in first.text  # the browser runs in Asia/Tokyo
    assert first.text != first.get_attribute("title")


def test_click_from_a_source_to_a_run_to_its_quarantine(
    browser: Any, served: Served, ui_home: UiHome, screenshot: Shot
) -> None:
    browser.set_window_size(1280, 900)
    browser.get(served.url + "/")
    _row(browser, "orders").find_element(By.LINK_TEXT, "orders").click()
    _wait(browser).until(expected_conditions.title_is("orders · mpconnect"))
    chart = browser.find_element(By.ID, "history-chart")
    _wait(browser).until(lambda b: chart.get_attribute("data-drawn") == "true")
    assert chart.find_elements(By.TAG_NAME, "canvas")
    assert chart.size["height"] > 100

    run_id = ui_home.runs["orders"].run_id
    browser.find_element(By.CSS_SELECTOR, f'tr[data-run="{run_id}"] td a').click()
    _wait(browser).until(expected_conditions.title_contains(run_id))
    phases = [e.text for e in browser.find_elements(By.CLASS_NAME, "phase-name")]
    assert phases == ["create", "import", "extract", "publish", "live", "prune"]
    bars = browser.find_elements(By.CLASS_NAME, "phase-bar")
    assert all(bar.size["width"] > 0 for bar in bars)
    throughput = browser.find_element(By.ID, "throughput-chart")
    _wait(browser).until(lambda b: throughput.get_attribute("data-drawn") == "true")
    assert "270" in browser.find_element(By.CLASS_NAME, "facts-grid").text
    screenshot(browser, "ui-run")

    browser.find_element(By.LINK_TEXT, "30 records").click()
    _wait(browser).until(expected_conditions.title_contains("Quarantine"))
    reasons = browser.find_element(By.CSS_SELECTOR, "table.reasons tbody").text
    assert XSS_REASON in reasons and reasons.startswith("30")
    sample = browser.find_element(By.CSS_SELECTOR, "details.sample pre").text
    assert XSS_NAME in sample  # shown as text, never run
    _no_alert(browser)
    link = browser.find_element(By.PARTIAL_LINK_TEXT, "Download the quarantine file")
    assert link.get_attribute("href").endswith(f"/runs/{run_id}/quarantine.jsonl")
    screenshot(browser, "ui-quarantine")


def test_failed_run_shows_its_redacted_error(
    browser: Any, served: Served, ui_home: UiHome, screenshot: Shot
) -> None:
    browser.get(served.url + f"/runs/{ui_home.runs['crm'].run_id}")
    error = browser.find_element(By.CLASS_NAME, "error-text").text
    assert "api_key=***" in error and "<b>denied</b>" in error
    _no_alert(browser)
    screenshot(browser, "ui-run-failed")


def test_datasets_page_shows_versions(
    browser: Any, served: Served, ui_home: UiHome, screenshot: Shot
) -> None:
    browser.get(served.url + "/datasets")
    section = next(
        s
        for s in browser.find_elements(By.CSS_SELECTOR, "section.dataset")
        if s.find_element(By.TAG_NAME, "h2").text.startswith("BILLING")
    )
    live = [
        row.text
        for row in section.find_elements(By.CSS_SELECTOR, "tbody tr")
        if " live " in f" {row.text} "
    ]
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
        assert _row(browser, "crm").find_element(By.CLASS_NAME, "badge").is_displayed()
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
    browser.find_element(By.CSS_SELECTOR, "form.run-now button").click()
    _wait(browser).until(lambda b: b.find_elements(By.CLASS_NAME, "notice"))
    assert browser.find_element(By.CLASS_NAME, "notice").text == "billing: run started"
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
    ui_home.finish_running()
    _wait(browser).until(
        lambda b: "succeeded" in b.find_element(By.CSS_SELECTOR, "tr[data-run]").text
    )
    assert browser.execute_script("return document.body.dataset.marker") == "same page"
