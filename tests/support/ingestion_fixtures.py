"""Fixtures of the ingestion sink's tests: the local ingestion endpoints over HTTPS, sinks.

``ingestion_server`` serves ``/import`` and ``/engage`` (:mod:`mpconnect.emulator.ingestion_api`)
on 127.0.0.1 with a local certificate authority, for project ``12345`` with a token, a
service account and a project secret. ``mixpanel_server`` is the whole local server
(``mpconnect serve``'s: the Datasets API and the ingestion endpoints) for that project.
``make_sink(table)`` builds an
:class:`~mpconnect.sinks.ingestion.IngestionSink` from a ``[mixpanel]`` table exactly as a
configuration file would (secrets as ``${NAME}`` references).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ingestion_support import (
    PROJECT_SECRET,
    SA_SECRET,
    TOKEN,
    LocalIngestion,
    ingestion_project,
)

from mpconnect.config import parse_config
from mpconnect.emulator.background import BackgroundServer, LocalCA
from mpconnect.emulator.ingestion_api import IngestionFaults, add_ingestion_routes
from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.sinks.ingestion import IngestionSink
from mpconnect.store.datasets import DatasetStore


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """One local certificate authority for the whole session."""
    return LocalCA(tmp_path_factory.mktemp("ingestion-ca"))


@pytest.fixture
def ingestion_server(tmp_path: Path, local_ca: LocalCA) -> Iterator[LocalIngestion]:
    """The local ``/import`` and ``/engage`` over HTTPS, for project 12345."""
    app = web.Application()
    store_path = tmp_path / "ingestion-server.sqlite3"
    store = DatasetStore(store_path)
    endpoints = add_ingestion_routes(app, store, ingestion_project(), IngestionFaults(seed=7))
    with BackgroundServer(app, ssl_context=local_ca.server_context()) as server:
        yield LocalIngestion(server.url, local_ca.ca_path, store_path, endpoints)
    store.close()


@pytest.fixture
def mixpanel_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalDatasetsServer]:
    """The local server (Datasets API and ingestion endpoints) for project 12345, with
    ``MP_SA_SECRET`` exported for :func:`ingestion_support.ingestion_mixpanel_toml`."""
    monkeypatch.setenv("MP_SA_SECRET", SA_SECRET)
    with LocalDatasetsServer(
        tmp_path / "server",
        project_token=TOKEN,
        project_secret=PROJECT_SECRET,
        ingestion=ingestion_project(),
    ) as running:
        yield running


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Export the secrets the ``${NAME}`` references of :func:`mixpanel_table` name."""
    monkeypatch.setenv("MP_SA_SECRET", SA_SECRET)
    monkeypatch.setenv("MP_PROJECT_SECRET", PROJECT_SECRET)


@pytest.fixture
def make_sink(tmp_path: Path, secrets_env: None) -> Iterator[Callable[..., IngestionSink]]:
    """Return ``make(mixpanel_table)``: an ingestion sink as a configuration file makes it."""
    made: list[IngestionSink] = []

    def make(table: dict[str, Any]) -> IngestionSink:
        config = parse_config({"mixpanel": table}, tmp_path / "mpconnect.toml")
        sink = IngestionSink(config.mixpanel, tmp_path / "home")
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()
