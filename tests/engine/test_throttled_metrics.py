"""The sink's 429s and the bytes uploaded, per run: in the ledger, ``runs --json``, the run
summary and ``/metrics`` (read by prometheus-client's own parser)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from datasets_support import datasets_mixpanel
from prometheus_client.parser import text_string_to_metric_families

import mpconnect
from mpconnect.config import Config, EngineConfig, SourceConfig
from mpconnect.emulator.background import BackgroundServer
from mpconnect.engine import Engine
from mpconnect.engine.ledger import SqliteRunLedger
from mpconnect.plugins import load_plugins
from mpconnect.ui.app import make_app
from mpconnect.ui.wiring import standalone

pytestmark = pytest.mark.timeout(120)

EVENTS = 2500  # three batches of at most 1000


class Clicks(mpconnect.Connector):
    """``EVENTS`` Click events."""

    name = "clicks"

    class Settings(mpconnect.ConnectorSettings):
        pass

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(EVENTS):
            yield mpconnect.Event(
                "Click",
                f"user-{index % 11}",
                1_700_000_000 + index,
                object_id=f"click-{index}",
                properties={"n": index},
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class ClicksPlugin:
    """Registers :class:`Clicks` and, when the version is published (its spool still on
    disk), adds up the sizes of the spooled batch files."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.spooled_bytes: list[int] = []

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(Clicks)

    @mpconnect.hookimpl
    def version_published(self, source: str) -> None:
        self.spooled_bytes.append(
            sum(path.stat().st_size for path in (self.home / "spool").glob("*/*.json"))
        )


def _metrics(config: Config, plugins: Any, home: Path) -> dict[tuple[str, str], float]:
    status, options = standalone(lambda: config, plugins, home, None, None)
    server = BackgroundServer(make_app(status, options)).start()
    try:
        text = requests.get(server.url + "/metrics", timeout=30).text
    finally:
        server.stop()
    return {
        (sample.name, sample.labels.get("source", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_sinks_429s_and_the_bytes_uploaded_are_counted_and_exported(
    start_server: Any, mpconnect_home: Path, cli: Any
) -> None:
    server = start_server(throttle_rate=0.4, retry_after=0.01, seed=3)
    config = Config(
        mixpanel=datasets_mixpanel(server),
        engine=EngineConfig(
            concurrency=2, max_retries=30, retry_initial_wait=0.01, retry_max_wait=0.05
        ),
        sources={"clicks": SourceConfig(name="clicks", connector="clicks", dataset_id="DEMO")},
    )
    plugin = ClicksPlugin(mpconnect_home)
    plugins = load_plugins([plugin])

    summary = Engine(config, plugins, mpconnect_home).run("clicks")

    assert summary.status == "succeeded" and summary.imported == EVENTS
    sent_429 = server.faults_injected()["429"]
    assert sent_429 > 0
    assert summary.throttled == sent_429
    [spooled] = plugin.spooled_bytes
    assert spooled > EVENTS * 50
    assert summary.uploaded_bytes == spooled
    assert summary.to_dict()["throttled"] == sent_429
    assert summary.to_dict()["uploaded_bytes"] == spooled

    listed = cli("runs", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["throttled"], row["uploaded_bytes"]) == (sent_429, spooled)

    metrics = _metrics(config, plugins, mpconnect_home)
    assert metrics[("mpconnect_throttled_requests_total", "clicks")] == sent_429
    assert metrics[("mpconnect_upload_bytes_total", "clicks")] == spooled

    # A second run adds to the counters.
    server.reset_faults()
    again = Engine(config, plugins, mpconnect_home).run("clicks")
    assert again.throttled == 0 and again.uploaded_bytes == plugin.spooled_bytes[1]
    metrics = _metrics(config, plugins, mpconnect_home)
    assert metrics[("mpconnect_throttled_requests_total", "clicks")] == sent_429
    assert metrics[("mpconnect_upload_bytes_total", "clicks")] == spooled + plugin.spooled_bytes[1]


def test_a_ledger_older_than_the_columns_shows_zero(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, source TEXT NOT NULL, "
            "dataset_id TEXT NOT NULL, sink TEXT NOT NULL, version_id TEXT, "
            "spool_id TEXT, spool_dir TEXT, host TEXT, pid INTEGER, "
            "status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, "
            "read INTEGER NOT NULL DEFAULT 0, imported INTEGER NOT NULL DEFAULT 0, "
            "quarantined INTEGER NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0, "
            "batches INTEGER NOT NULL DEFAULT 0, resumed INTEGER NOT NULL DEFAULT 0, "
            "extraction_done INTEGER NOT NULL DEFAULT 0, "
            "published INTEGER NOT NULL DEFAULT 0, error TEXT, quarantine_file TEXT)"
        )
        db.execute(
            "INSERT INTO runs (run_id, source, dataset_id, sink, status, started_at, "
            "ended_at, read, imported) VALUES ('r1', 'old', 'DS', 'datasets', "
            "'succeeded', 1.0, 2.0, 5, 5)"
        )
    db.close()

    [row] = SqliteRunLedger(path).list_runs()

    assert (row["run_id"], row["throttled"], row["uploaded_bytes"]) == ("r1", 0, 0)
