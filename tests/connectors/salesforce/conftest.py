"""Fixtures: a local certificate authority and the local Salesforce API serving a seeded org."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("simple_salesforce")
pytest.importorskip("aiohttp")

from mpconnect.emulator.background import BackgroundServer, LocalCA
from mpconnect_salesforce.localserver.api import (
    PASSWORD,
    SECURITY_TOKEN,
    USERNAME,
    ApiState,
    SalesforceApi,
)
from mpconnect_salesforce.localserver.org import Org


@dataclass
class LocalSalesforce:
    """A running local Salesforce API: its state (data, knobs, request log) and URL."""

    state: ApiState
    url: str
    ca_path: Path

    @property
    def org(self) -> Org:
        """The org it serves."""
        return self.state.org

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Connector settings that log in with username + password + token, fast retries."""
        settings: dict[str, Any] = {
            "username": USERNAME,
            "password": PASSWORD,
            "security_token": SECURITY_TOKEN,
            "login_url": self.url,
            "ca_bundle": str(self.ca_path),
            "retry_wait": 0.01,
            "bulk_poll_interval": 0.01,
            "timeout": 10,
        }
        settings.update(overrides)
        return settings


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """A certificate authority trusted through ``ca_bundle``."""
    return LocalCA(tmp_path_factory.mktemp("salesforce-ca"))


def start_salesforce(
    ca: LocalCA, org: Org, **knobs: Any
) -> tuple[BackgroundServer, LocalSalesforce]:
    """Start a local Salesforce API serving ``org`` over TLS."""
    state = ApiState(org, **knobs)
    server = BackgroundServer(SalesforceApi(state).app, ssl_context=ca.server_context()).start()
    return server, LocalSalesforce(state, server.url, ca.ca_path)


@pytest.fixture
def salesforce(local_ca: LocalCA) -> Iterator[LocalSalesforce]:
    """The local Salesforce API serving the default seeded org."""
    server, api = start_salesforce(local_ca, Org(seed=7))
    try:
        yield api
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_salesforce(local_ca: LocalCA) -> Iterator[LocalSalesforce]:
    """One local Salesforce API per test module, for tests that only read."""
    server, api = start_salesforce(local_ca, Org(seed=7))
    try:
        yield api
    finally:
        server.stop()
