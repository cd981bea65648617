"""``/metrics`` read by prometheus-client's own parser, ``/healthz`` following the
scheduler loop, and the commands that serve them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Served, serve_app
from prometheus_client.parser import text_string_to_metric_families
from ui_support import BILLING_RUNS, UiHome

from mpconnect.config import Config, SourceConfig
from mpconnect.scheduler import Scheduler, make_plan
from mpconnect.scheduler.heartbeat import Heartbeat
from mpconnect.testing import load_test_plugins
from mpconnect.ui.wiring import beside_scheduler


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_parse_and_hold_each_sources_counts(served: Served, ui_home: UiHome) -> None:
    answer = requests.get(served.url + "/metrics", timeout=30)
    assert answer.headers["Content-Type"].startswith("text/plain")
    values = _samples(answer.text)

    def value(name: str, **labels: str) -> float:
        return values[(name, tuple(sorted(labels.items())))]

    assert value("mpconnect_records_read_total", source="billing") == 400 * BILLING_RUNS
    assert value("mpconnect_records_imported_total", source="billing") == 400 * BILLING_RUNS
    assert value("mpconnect_records_read_total", source="orders") == 300
    assert value("mpconnect_records_imported_total", source="orders") == 270
    assert value("mpconnect_records_quarantined_total", source="orders") == 30
    assert value("mpconnect_runs_total", source="billing", status="succeeded") == BILLING_RUNS
    assert value("mpconnect_runs_total", source="crm", status="failed") == 1
    assert value("mpconnect_runs_total", source="live", status="running") == 1
    assert value("mpconnect_retries_total", source="billing") == 0
    billing = ui_home.runs["billing"]
    assert value("mpconnect_last_success_timestamp_seconds", source="billing") == pytest.approx(
        billing.ended_at
    )
    assert value("mpconnect_last_run_duration_seconds", source="billing") == pytest.approx(
        billing.duration, abs=0.01
    )
    assert ("mpconnect_last_success_timestamp_seconds", (("source", "crm"),)) not in values
    assert value("mpconnect_source_stale", source="crm") == 1
    assert value("mpconnect_source_stale", source="billing") == 0
    assert value("mpconnect_source_schedule_period_seconds", source="orders") == 3600


class _GateClock:
    """The system's time, short sleeps, and a ``now()`` that blocks while ``blocked`` is
    set: the scheduler loop stuck in a step."""

    def __init__(self) -> None:
        self.blocked = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()

    def now(self) -> datetime:
        if self.blocked.is_set():
            self.entered.set()
            self.release.wait(60)
        return datetime.now(UTC)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(min(max(timeout, 0.0), 0.02))


class _Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def _wait_for(predicate: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(2400):  # 120 s: a safety net for a hang
        if predicate():
            return
        event.wait(0.05)
    raise AssertionError("condition not reached")


def test_healthz_turns_503_when_the_scheduler_loop_is_blocked(tmp_path: Path) -> None:
    plugins = load_test_plugins()
    config = Config(
        sources={
            "demo": SourceConfig(
                name="demo", connector="demo", dataset_id="DEMO", schedule="0 0 1 1 *"
            )
        }
    )
    clock = _GateClock()
    scheduler = Scheduler(
        make_plan(config, plugins),
        plugins,
        home=tmp_path,
        clock=clock,
        reload_interval=None,
        stop_timeout=5,
    )
    monotonic = _Monotonic()
    scheduler.heartbeat = Heartbeat(stuck_after=90, monotonic=monotonic)
    server = serve_app(*beside_scheduler(scheduler, plugins, tmp_path, None))
    loop = threading.Thread(target=scheduler.serve, daemon=True)

    def health() -> requests.Response:
        return requests.get(server.url + "/healthz", timeout=30)

    try:
        assert health().status_code == 503  # the loop has not started
        loop.start()
        _wait_for(lambda: health().status_code == 200)
        assert health().json()["status"] == "ok"
        clock.blocked.set()
        assert clock.entered.wait(30)
        monotonic.value += 60
        assert health().status_code == 200  # slow, not yet stuck
        monotonic.value += 60
        stuck = health()
        assert stuck.status_code == 503
        assert stuck.json()["status"] == "stuck"
        assert "120 s ago" in stuck.json()["scheduler"]
        metrics = _samples(requests.get(server.url + "/metrics", timeout=30).text)
        assert metrics[("mpconnect_scheduler_heartbeat_age_seconds", ())] == 120
        clock.blocked.clear()
        clock.release.set()
        _wait_for(lambda: health().status_code == 200)
    finally:
        clock.blocked.clear()
        clock.release.set()
        scheduler.request_stop(force=True)
        loop.join(120)
        server.stop()


def test_run_now_beside_the_scheduler_queues_a_run(tmp_path: Path) -> None:
    plugins = load_test_plugins()
    config = Config(
        sources={
            "demo": SourceConfig(
                name="demo", connector="demo", dataset_id="DEMO", schedule="0 0 1 1 *"
            )
        }
    )
    scheduler = Scheduler(
        make_plan(config, plugins), plugins, home=tmp_path, reload_interval=None, stop_timeout=30
    )
    loop = threading.Thread(target=scheduler.serve, daemon=True)
    loop.start()
    try:
        _wait_for(lambda: scheduler.heartbeat.age() is not None)
        assert scheduler.request_run("nope") == "nope: not started: it has no schedule here"
        assert scheduler.request_run("demo") == "demo: run queued"
        _wait_for(
            lambda: bool(scheduler.running) or bool(scheduler._engine.ledger.list_runs("demo"))
        )
        assert scheduler.wait_idle(60)
        assert scheduler._engine.ledger.list_runs("demo")[0]["status"] == "succeeded"
    finally:
        scheduler.request_stop()
        loop.join(120)


def test_ui_refuses_a_public_address_without_a_token(cli: Any) -> None:
    result = cli("ui", "--host", "0.0.0.0")
    assert result.exit_code == 1
    assert (
        "mpconnect: error: --host 0.0.0.0: serving the status page beyond this machine "
        "needs a token; give --token TOKEN or set MPCONNECT_UI_TOKEN"
    ) in result.output
    short = cli("ui", "--host", "0.0.0.0", "--token", "short")
    assert short.exit_code == 1 and "too short" in short.output


def test_schedule_serves_the_status_page_on_http_port(tmp_path: Path, write_config: Any) -> None:
    config = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        schedule = "0 0 1 1 *"
        """)
    env = {**os.environ, "MPCONNECT_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mpconnect",
            "--config",
            str(config),
            "schedule",
            "--http-port",
            "0",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        assert process.stderr is not None
        for line in process.stderr:
            match = re.search(r"status page at (http://127\.0\.0\.1:\d+)/", line)
            if match:
                url = match.group(1)
                break
        assert url, "no status page line"
        _wait_for(lambda: requests.get(url + "/healthz", timeout=30).status_code == 200)
        page = requests.get(url + "/", timeout=30)
        assert 'href="/sources/demo"' in page.text
        assert (
            "mpconnect_source_schedule_period_seconds"
            in requests.get(url + "/metrics", timeout=30).text
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0
