"""``mpconnect run`` with ``sink = "ingestion"`` into the local server's /import and /engage."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from ingestion_support import (
    PROJECT_ID,
    ingestion_mixpanel_toml,
)

import mpconnect
from mpconnect.emulator import ingestion_checks
from mpconnect.emulator.ingestion_api import (
    DROP,
    LOST_ACK,
    MAX_BODY_BYTES,
    IngestionEndpoints,
)
from mpconnect.emulator.server import LocalDatasetsServer

pytestmark = pytest.mark.timeout(300)

DEMO_EVENTS = 4500
DEMO_PROFILES = 450


@pytest.fixture
def config(mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path]) -> Path:
    """A configuration loading the demo source (4500 events) through the ingestion sink."""
    return write_config(f"""{ingestion_mixpanel_toml(mixpanel_server)}

        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"

        [sources.demo.settings]
        events = {DEMO_EVENTS}

        [sources.small]
        connector = "demo"
        dataset_id = "SMALL"

        [sources.small.settings]
        events = 1500

        [sources.bulky]
        connector = "bulky"
        dataset_id = "BULKY"

        [sources.paced]
        connector = "paced"
        dataset_id = "PACED"
        """)


def contents(mixpanel_server: LocalDatasetsServer) -> Any:
    """What the project holds."""
    endpoints = mixpanel_server.ingestion
    return mixpanel_server.store.contents(endpoints.dataset_id, endpoints.version_id())


def runs(cli: Any, config: Path) -> list[dict[str, Any]]:
    """The run ledger, newest first."""
    result = cli("--config", config, "runs", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def import_sizes(endpoints: IngestionEndpoints) -> list[int]:
    """Records per /import request, largest first."""
    return sorted(endpoints.stats.batch_sizes["/import"], reverse=True)


def test_run_demo_loads_exact_counts_and_a_rerun_adds_no_duplicates(
    mixpanel_server: LocalDatasetsServer, config: Path, cli: Any
) -> None:
    first = cli("--config", config, "run", "demo")
    assert first.exit_code == 0, first.output
    assert "demo: succeeded" in first.stdout
    assert f"imported {DEMO_EVENTS + DEMO_PROFILES:,}, quarantined 0" in first.stdout
    assert "via the ingestion sink (no versions)" in first.stdout
    held = contents(mixpanel_server)
    assert (held.events_total, held.events_received) == (DEMO_EVENTS, DEMO_EVENTS)
    assert (held.people_total, held.profiles) == (DEMO_PROFILES, DEMO_PROFILES)
    stats = mixpanel_server.ingestion.stats
    assert import_sizes(mixpanel_server.ingestion) == [2000, 2000, 500]
    assert stats.batch_sizes["/engage"] == [DEMO_PROFILES]
    assert stats.gzip_requests == {"/import": 3, "/engage": 1}
    assert stats.auth == {"service account": 3}

    second = cli("--config", config, "run", "demo", "--full-refresh")  # sends everything
    assert second.exit_code == 0, second.output
    assert "full run (--full-refresh given)" in second.stdout
    held = contents(mixpanel_server)
    assert (held.events_total, held.events_received) == (DEMO_EVENTS, 2 * DEMO_EVENTS)
    assert (held.people_total, held.profiles) == (DEMO_PROFILES, DEMO_PROFILES)
    ledger = runs(cli, config)
    assert [(r["status"], r["imported"], r["sink"]) for r in ledger] == [
        ("succeeded", DEMO_EVENTS + DEMO_PROFILES, "ingestion")
    ] * 2
    assert all(r["version_id"] == r["run_id"] for r in ledger)

    shown = cli("inspect", f"PROJECT{PROJECT_ID}", "--store", mixpanel_server.store.path, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["events_by_name"] == {"Airline Review": DEMO_EVENTS}

    third = cli("--config", config, "run", "demo")  # incremental: nothing changed, nothing sent
    assert third.exit_code == 0, third.output
    assert "incremental run: read 0 objects (0 changed, 0 deleted)" in third.stdout
    held = contents(mixpanel_server)
    assert (held.events_total, held.events_received) == (DEMO_EVENTS, 2 * DEMO_EVENTS)


class BulkyConnector(mpconnect.Connector):
    """2500 events of about 6 KB each: 2000 of them are over 10 MB."""

    name = "bulky"

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(2500):
            yield mpconnect.Event(
                "Note",
                f"user-{index % 9}",
                1_700_000_000 + index,
                object_id=f"note-{index}",
                properties={"text": f"{index:06d}" * 1000},
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class BulkyPlugin:
    """Registers :class:`BulkyConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(BulkyConnector)


def test_batches_are_split_by_bytes_under_10_mb(
    mixpanel_server: LocalDatasetsServer, config: Path, cli: Any
) -> None:
    result = cli("--config", config, "run", "bulky", plugins=[BulkyPlugin()])
    assert result.exit_code == 0, result.output
    # filled record by record up to 10 MB of JSON: 1701 records of ~6 KB, then the rest
    assert sorted(import_sizes(mixpanel_server.ingestion), reverse=True) == [1701, 799]
    assert 9_000_000 < mixpanel_server.ingestion.stats.largest_body["/import"] <= MAX_BODY_BYTES
    assert contents(mixpanel_server).events_total == 2500


class SpoilIds:
    """Gives three demo reviews a distinct id the server below refuses and mpconnect does
    not know to (as when Mixpanel's placeholder list grows)."""

    spoiled = frozenset({"review-7", "review-2500", "review-4499"})

    @mpconnect.hookimpl
    def transform_record(self, record: Any, source: str) -> None:
        if isinstance(record, mpconnect.Event) and record.object_id in self.spoiled:
            record.distinct_id = "not-a-user"


def test_strict_mode_failures_are_quarantined_with_mixpanels_reason(
    mixpanel_server: LocalDatasetsServer,
    config: Path,
    cli: Any,
    mpconnect_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        ingestion_checks, "DENIED_IDS", ingestion_checks.DENIED_IDS | {"not-a-user"}
    )
    result = cli("--config", config, "run", "demo", plugins=[SpoilIds()])
    assert result.exit_code == 0, result.output
    assert f"imported {DEMO_EVENTS - 3 + DEMO_PROFILES:,}, quarantined 3" in result.stdout
    assert contents(mixpanel_server).events_total == DEMO_EVENTS - 3
    (quarantine,) = (mpconnect_home / "quarantine" / "demo").glob("*.jsonl")
    lines = [orjson.loads(line) for line in quarantine.read_bytes().splitlines()]
    assert len(lines) == 3
    for line in lines:
        assert line["reason"].startswith("Mixpanel rejected properties.distinct_id: ")
        assert "placeholder" in line["reason"]
        assert line["record"]["properties"]["distinct_id"] == "not-a-user"
    stored_ids = {
        e["properties"]["$insert_id"]
        for e in mixpanel_server.store.iter_events(
            mixpanel_server.ingestion.dataset_id, mixpanel_server.ingestion.version_id()
        )
    }
    assert not stored_ids & {line["record"]["properties"]["$insert_id"] for line in lines}
    assert mixpanel_server.ingestion.stats.count("/import", 400) == 3


def test_429_5xx_and_lost_answers_are_retried_without_duplicates(
    mixpanel_server: LocalDatasetsServer, config: Path, cli: Any
) -> None:
    mixpanel_server.ingestion.faults.retry_after = 0.01
    mixpanel_server.ingestion.faults.fail_next(429, 503, LOST_ACK, path="/import")
    mixpanel_server.ingestion.faults.fail_next(429, DROP, path="/engage")
    result = cli("--config", config, "run", "demo")
    assert result.exit_code == 0, result.output
    assert "retries 5" in result.stdout
    held = contents(mixpanel_server)
    assert held.events_total == DEMO_EVENTS
    assert held.events_received > DEMO_EVENTS  # the batch whose answer was lost came twice
    assert held.profiles == DEMO_PROFILES
    assert runs(cli, config)[0]["retries"] == 5


def test_a_400_is_not_retried_and_the_next_run_resumes(
    mixpanel_server: LocalDatasetsServer, config: Path, cli: Any
) -> None:
    # 1500 events and 150 profiles: two batches, both spooled when extraction has ended
    mixpanel_server.ingestion.faults.fail_next(400, path="/import")
    failed = cli("--config", config, "run", "small", "--concurrency", "1")
    assert failed.exit_code == 1
    assert "HTTP 400: /import of 1500 events: injected fault" in failed.stderr
    assert mixpanel_server.ingestion.stats.count("/import") == 1
    assert mixpanel_server.ingestion.stats.count("/engage") == 0
    assert runs(cli, config)[0]["status"] == "failed"

    resumed = cli("--config", config, "run", "small")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed" in resumed.stdout
    held = contents(mixpanel_server)
    assert (held.events_total, held.profiles) == (1500, 150)


class PacedConnector(mpconnect.Connector):
    """8000 events and 10 profiles; after the first 2000 events it waits until the local
    server has answered the first /import, so an upload fails while extraction goes on."""

    name = "paced"
    mixpanel_server: LocalDatasetsServer | None = None

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(8000):
            if index == 2001 and self.server is not None:
                stats = self.server.ingestion.stats
                deadline = time.monotonic() + 10
                while stats.count("/import") == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.3)  # the answer reaches the upload worker, which stops the pool
            yield mpconnect.Event(
                "Tick", f"user-{index % 10}", 1_700_000_000 + index, object_id=f"tick-{index}"
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        for index in range(10):
            yield mpconnect.Profile(f"user-{index}", set={"n": index})


class PacedPlugin:
    """Registers :class:`PacedConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(PacedConnector)


def test_a_run_that_failed_mid_extraction_is_not_resumed_as_complete(
    mixpanel_server: LocalDatasetsServer, config: Path, cli: Any
) -> None:
    PacedConnector.server = mixpanel_server
    mixpanel_server.ingestion.faults.fail_next(400, path="/import")
    failed = cli("--config", config, "run", "paced", "--concurrency", "1", plugins=[PacedPlugin()])
    assert failed.exit_code == 1
    again = cli("--config", config, "run", "paced", plugins=[PacedPlugin()])
    assert again.exit_code == 0, again.output
    held = contents(mixpanel_server)
    assert (held.events_total, held.profiles) == (8000, 10)
