"""Fixtures for the Datasets API tests: the local server over HTTPS with its own CA.

The credentials are the placeholders of the reference document's curl lines, so its
examples run as written: ``-u API_SECRET:`` and ``token=PROJECT_TOKEN``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from datasets_support import (
    API_SECRET,
    DATASET_SECRET,
    DATASETS,
    LIVE_DELAY,
    PROJECT_TOKEN,
    Api,
)

from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.mixpanel.datasets import DatasetsClient

StartServer = Callable[..., LocalDatasetsServer]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Return ``start(**options)``: a started :class:`LocalDatasetsServer`, stopped after.

    Defaults: the document's datasets and placeholders, ``SKYTRAX`` with its own dataset
    secret, a live delay of 0.2 s; keywords override them (faults, ``http=True``...).
    """
    servers: list[LocalDatasetsServer] = []

    def start(**options: Any) -> LocalDatasetsServer:
        settings: dict[str, Any] = {
            "datasets": DATASETS,
            "project_token": PROJECT_TOKEN,
            "project_secret": API_SECRET,
            "dataset_secrets": {"SKYTRAX": DATASET_SECRET},
            "live_delay": LIVE_DELAY,
        }
        settings.update(options)
        server = LocalDatasetsServer(tmp_path / f"server{len(servers)}", **settings).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def datasets_server(start_server: StartServer) -> LocalDatasetsServer:
    """The local Datasets API on 127.0.0.1 over HTTPS, with a local CA in a tmp dir."""
    return start_server()


@pytest.fixture
def api(datasets_server: LocalDatasetsServer) -> Iterator[Api]:
    """Raw calls to :func:`datasets_server` with the project secret."""
    caller = Api(datasets_server)
    yield caller
    caller.close()


@pytest.fixture
def client(datasets_server: LocalDatasetsServer) -> Iterator[DatasetsClient]:
    """mpconnect's client, pointed at :func:`datasets_server` through its CA."""
    made = DatasetsClient(
        datasets_server.url,
        secret=API_SECRET,
        project_token=PROJECT_TOKEN,
        ca_bundle=datasets_server.ca_path,
        timeout=10,
    )
    yield made
    made.close()
