"""Helpers of the engine's tests: configs, engines, a gated connector, polling.

Tests wait on states and events; :data:`SAFETY_TIMEOUT` only ends a test that would
otherwise hang, never one that is merely slow (CI machines under load).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mpconnect
from mpconnect.config import Config, parse_config
from mpconnect.engine import Engine
from mpconnect.plugins import load_plugins

#: Seconds after which a wait on a state or event gives up and fails the test.
SAFETY_TIMEOUT = 120.0


class GatedConnector(mpconnect.Connector):
    """Yields ``events`` events, pausing after ``pause_after`` until ``gate`` is set (the
    source fails if the test never sets it)."""

    name = "gated"
    started = threading.Event()
    gate = threading.Event()

    class Settings(mpconnect.ConnectorSettings):
        events: int = 100
        pause_after: int = 10
        fail_after: int | None = None

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(self.settings.events):
            if index == self.settings.pause_after:
                type(self).started.set()
                if not type(self).gate.wait(SAFETY_TIMEOUT):
                    raise ValueError("the test never opened the gate")
            if self.settings.fail_after is not None and index == self.settings.fail_after:
                raise ValueError("the source went away")
            yield mpconnect.Event(
                "Tick", f"user-{index % 7}", 1_700_000_000 + index, object_id=f"tick-{index}"
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class GatedPlugin:
    """Registers :class:`GatedConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(GatedConnector)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MPCONNECT_HOME for the test."""
    path = tmp_path / "home"
    monkeypatch.setenv("MPCONNECT_HOME", str(path))
    return path


@pytest.fixture
def gated() -> Iterator[type[GatedConnector]]:
    """The gated connector with fresh events."""
    GatedConnector.started = threading.Event()
    GatedConnector.gate = threading.Event()
    yield GatedConnector
    GatedConnector.gate.set()


def make_config(
    tmp_path: Path,
    sources: dict[str, Any],
    mixpanel: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
) -> Config:
    """Build a configuration as if read from ``tmp_path/mpconnect.toml``."""
    raw: dict[str, Any] = {"sources": sources}
    if mixpanel:
        raw["mixpanel"] = mixpanel
    if engine:
        raw["engine"] = engine
    return parse_config(raw, tmp_path / "mpconnect.toml")


def make_engine(config: Config, home: Path, *plugins: object) -> Engine:
    """An engine over the built-in plugins plus ``plugins``."""
    return Engine(config, load_plugins(plugins), home)


def wait_until(predicate: Callable[[], bool], timeout: float = SAFETY_TIMEOUT) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
