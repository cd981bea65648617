"""Incremental runs into the ingestion sink: only new or changed records are sent, and a
run killed after its batches were acknowledged but before its state was committed is
finished by the next run without sending anything twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingestion_support import PROJECT_ID, PROJECT_SECRET, SA_SECRET, SA_USER, TOKEN

from mpconnect.config import parse_config
from mpconnect.emulator.ingestion_api import IngestionProject
from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.engine import Engine
from mpconnect.engine.incremental import state_file
from mpconnect.engine.state import SqliteStateStore
from mpconnect.errors import RunFailed
from mpconnect.plugins import load_plugins

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalDatasetsServer]:
    """The local server's ingestion endpoints for project 12345."""
    monkeypatch.setenv("MP_SA_SECRET", SA_SECRET)
    project = IngestionProject(
        PROJECT_ID, token=TOKEN, service_accounts={SA_USER: SA_SECRET}, api_secret=PROJECT_SECRET
    )
    with LocalDatasetsServer(
        tmp_path / "server", project_token=TOKEN, project_secret=PROJECT_SECRET, ingestion=project
    ) as running:
        yield running


class KilledAtCommit(SqliteStateStore):
    """The real state store, whose first commit is interrupted as by a kill."""

    kill = True

    def commit(self, source: str, spool_id: str, run_id: str) -> bool:
        if type(self).kill:
            type(self).kill = False
            raise KeyboardInterrupt
        return super().commit(source, spool_id, run_id)


def engine(tmp_path: Path, server: LocalDatasetsServer, home: Path, **kwargs: Any) -> Engine:
    raw = {
        "mixpanel": {
            "sink": "ingestion",
            "project_token": TOKEN,
            "project_id": PROJECT_ID,
            "service_account_user": SA_USER,
            "service_account_secret": "${MP_SA_SECRET}",
            "api_url": server.url,
            "ca_bundle": str(server.ca_path),
        },
        "sources": {
            "reviews": {
                "connector": "demo",
                "dataset_id": "REVIEWS",
                "settings": {"events": 600, "reviewers": 40, "changes": 0.05},
            }
        },
    }
    config = parse_config(raw, tmp_path / "mpconnect.toml")
    return Engine(config, load_plugins(()), home, **kwargs)


def received(server: LocalDatasetsServer) -> tuple[int, int]:
    """Events received, and distinct events held (an updated review differs in time or
    reviewer, so it is an event of its own: /import has no update), by the project."""
    endpoints = server.ingestion
    held = server.store.contents(endpoints.dataset_id, endpoints.version_id())
    return held.events_received, held.events_total


def test_only_changes_are_sent_and_a_kill_before_the_state_commit_sends_nothing_twice(
    tmp_path: Path, server: LocalDatasetsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MPCONNECT_HOME", str(home))
    first = engine(tmp_path, server, home).run("reviews")
    assert first.sync == "full" and first.imported == 600 + 40
    assert received(server) == (600, 600)

    KilledAtCommit.kill = True
    killed = engine(tmp_path, server, home, state_store=KilledAtCommit(state_file(home)))
    with pytest.raises(RunFailed, match="interrupted at once"):
        killed.run("reviews")  # generation 1: 10 updated + 10 new reviews sent, then killed
    assert received(server) == (620, 620)

    finishing = engine(tmp_path, server, home).run("reviews")
    assert finishing.resumed and finishing.status == "succeeded"
    assert received(server) == (620, 620)  # nothing sent again

    after = engine(tmp_path, server, home).run("reviews")  # generation 2
    assert after.sync == "incremental" and after.status == "succeeded"
    assert (after.objects or {})["deleted"] == 10
    assert received(server) == (640, 640)
    assert after.imported < 60  # 20 reviews and the reviewers whose figures changed
