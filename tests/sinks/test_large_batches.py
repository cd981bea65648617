"""Large records into the local Datasets API: byte-bounded batches, 413 splits, resumes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from datasets_support import API_SECRET, datasets_mixpanel

import mpconnect
from mpconnect.config import Config, EngineConfig, SourceConfig
from mpconnect.engine import Engine, RunOptions
from mpconnect.engine.split import SPLIT_BASE
from mpconnect.errors import RunFailed
from mpconnect.plugins import load_plugins

pytestmark = pytest.mark.timeout(120)


class BlobConnector(mpconnect.Connector):
    """``events`` events each holding a ``size``-character property; event ``big_one``
    (if any) holds ``big_size`` characters instead."""

    name = "blobs"

    class Settings(mpconnect.ConnectorSettings):
        events: int = 10
        size: int = 1000
        big_one: int | None = None
        big_size: int = 0

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(self.settings.events):
            size = self.settings.big_size if index == self.settings.big_one else self.settings.size
            yield mpconnect.Event(
                "Blob",
                f"user-{index % 7}",
                1_700_000_000 + index,
                object_id=f"blob-{index}",
                properties={"blob": (f"{index:06d}" * (size // 6 + 1))[:size]},
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class BlobPlugin:
    """Registers :class:`BlobConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(BlobConnector)


def make_engine(
    server: Any, home: Path, settings: dict[str, Any], engine: dict[str, Any] | None = None
) -> Engine:
    """An engine loading the blob source into ``server``'s dataset DEMO."""
    config = Config(
        mixpanel=datasets_mixpanel(server),
        engine=EngineConfig(concurrency=1, max_retries=0, **(engine or {})),
        sources={
            "blobs": SourceConfig(
                name="blobs",
                connector="blobs",
                dataset_id="DEMO",
                max_quarantined="unlimited",
                settings=settings,
            )
        },
    )
    return Engine(config, load_plugins([BlobPlugin()]), home)


def live_contents(server: Any) -> Any:
    """What the live version of DEMO holds."""
    [live] = [v for v in server.store.list_versions("DEMO") if v.is_live]
    return server.store.contents("DEMO", live.version_id)


def test_large_records_go_in_batches_under_the_request_limit(
    start_server: Any, tmp_path: Path
) -> None:
    # 600 events of 20 KB: 12 MB of JSON, 16 MB as base64: one 1000-record batch would be
    # refused (413) by a server taking 10 MB, every run, for good.
    server = start_server()
    summary = make_engine(server, tmp_path, {"events": 600, "size": 20_000}).run("blobs")

    assert summary.status == "succeeded"
    assert (summary.imported, summary.quarantined) == (600, 0)
    assert live_contents(server).events_total == 600
    assert summary.batches == server.requests_to("/import-events") == 3
    assert server.faults_injected() == {}


def test_a_413_splits_the_batch_and_a_record_too_large_alone_is_quarantined(
    start_server: Any, tmp_path: Path
) -> None:
    # A server taking 200 KB bodies; 30 KB events in 4 MiB batches; one event of 400 KB,
    # under the 1 MB per record, that the server refuses even alone.
    server = start_server(max_body_bytes=200_000)
    summary = make_engine(
        server, tmp_path, {"events": 200, "size": 30_000, "big_one": 77, "big_size": 400_000}
    ).run("blobs")

    assert summary.status == "succeeded"
    assert (summary.read, summary.imported, summary.quarantined) == (200, 199, 1)
    contents = live_contents(server)
    assert contents.events_total == contents.events_received == 199  # none sent twice
    lines = Path(summary.quarantine_file or "").read_text().splitlines()
    assert len(lines) == 1
    assert "the destination refused it as too large (400,1" in lines[0]
    assert "request exceeds max limit of 200000 bytes" in lines[0]
    assert '"blob-77"' not in lines[0] and '"Blob"' in lines[0]  # the record itself is kept
    assert summary.quarantine_reasons[0][1] == 1
    # every record acknowledged once: the split batches are gone, their halves counted
    engine_ledger = make_engine(server, tmp_path, {}).ledger
    (row,) = engine_ledger.list_runs("blobs")
    assert row["batches"] == summary.batches and row["imported"] == 199


def test_a_resumed_run_sends_only_the_halves_not_yet_acknowledged(
    start_server: Any, tmp_path: Path
) -> None:
    server = start_server(max_body_bytes=200_000, fail_rate=0.25, paths=["/import-events"], seed=2)
    settings = {"events": 120, "size": 30_000}
    engine = make_engine(server, tmp_path, settings, {"max_batch_bytes": 400_000})
    with pytest.raises(RunFailed, match="HTTP 500"):
        engine.run("blobs")
    (failed,) = engine.ledger.list_runs("blobs")
    spool = failed["spool_id"]
    acked_halves = (
        engine.ledger._db()
        .execute(
            "SELECT COUNT(*) FROM batches WHERE spool_id = ? AND acked = 1 AND seq >= ?",
            (spool, SPLIT_BASE),
        )
        .fetchone()[0]
    )
    assert acked_halves >= 1  # the case this test is about: some halves are checkpointed
    pending = engine.ledger.unacked_batches(spool)
    sent_before = server.requests_to("/import-events")

    server.reset_faults()
    summary = make_engine(server, tmp_path, settings, {"max_batch_bytes": 400_000}).run(
        "blobs", RunOptions()
    )

    assert summary.status == "succeeded" and summary.resumed
    assert (summary.imported, summary.quarantined) == (120, 0)
    contents = live_contents(server)
    assert contents.events_total == contents.events_received == 120  # nothing re-sent
    assert server.requests_to("/import-events") - sent_before >= len(pending)
    acked = engine.ledger.acked_totals(spool)
    assert acked == (summary.batches, 120)


def test_the_local_server_answers_an_oversized_body_413_as_mixpanel_words_it(
    start_server: Any,
) -> None:
    server = start_server(max_body_bytes=50_000)
    answer = requests.post(
        f"{server.url}/import-events",
        data={"data": "A" * 60_000},
        auth=(API_SECRET, ""),
        verify=str(server.ca_path),
        timeout=10,
    )

    assert answer.status_code == 413
    assert answer.json() == {"error": "request exceeds max limit of 50000 bytes", "status": 0}
