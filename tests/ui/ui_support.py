"""A home with real runs for the status page's tests: a succeeded, a failed, a
quarantining and a running one, made by the engine with small connectors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

import mpconnect
from mpconnect.config import Config, MixpanelConfig, SchedulerConfig, SourceConfig
from mpconnect.engine import Engine, RunOptions
from mpconnect.errors import RunFailed
from mpconnect.plugins import Plugins
from mpconnect.testing import connector_plugin, load_test_plugins

#: The failing connector's key: it must never reach a page, the API or a download.
SECRET = "hunter2-secret-api-key-0042"
#: A property name and a reason that would run as script if a page did not escape them.
XSS_NAME = "<script>alert('xss-name')</script>"
#: Runs of the fresh source, for a history chart with several points.
BILLING_RUNS = 3
XSS_REASON = "<img src=x onerror=alert('xss-reason')> is not an amount"


class Ticks(mpconnect.Connector):
    """``events`` Tick events; with ``bad``, every tenth object is quarantined."""

    name = "ticks"

    class Settings(mpconnect.ConnectorSettings):
        events: int = 300
        bad: bool = False

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(self.settings.events):
            if self.settings.bad and index % 10 == 0:
                ctx.quarantine(
                    f"charge ch_{index}", XSS_REASON, {XSS_NAME: index, "amount": "<b>12</b>"}
                )
                continue
            yield mpconnect.Event(
                "Tick", f"user-{index % 7}", 1_700_000_000 + index, object_id=f"tick-{index}"
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class Broken(mpconnect.Connector):
    """Fails after a few records with an error that quotes its API key."""

    name = "broken"

    class Settings(mpconnect.ConnectorSettings):
        api_key: SecretStr

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        yield mpconnect.Event("Tick", "user-1", 1_700_000_000, object_id="only")
        raise ValueError(
            f"401 from https://api.example.test/v1?api_key="
            f"{self.settings.api_key.get_secret_value()} <b>denied</b>"
        )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class Gated(mpconnect.Connector):
    """Yields 50 events, then waits until ``gate`` is set: a run that is still going."""

    name = "gated"
    started = threading.Event()
    gate = threading.Event()

    class Settings(mpconnect.ConnectorSettings):
        pass

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(100):
            if index == 50:
                type(self).started.set()
                type(self).gate.wait(120)
            yield mpconnect.Event(
                "Tick", "user-1", 1_700_000_000 + index, object_id=f"gated-{index}"
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


@dataclass
class UiHome:
    """The home, its configuration and plugins, and the runs made in it."""

    home: Path
    config: Config
    plugins: Plugins
    runs: dict[str, Any] = field(default_factory=dict)
    running: threading.Thread | None = None

    def finish_running(self) -> None:
        """Let the running run end."""
        Gated.gate.set()
        if self.running is not None:
            self.running.join(60)


def make_config() -> Config:
    """Four sources: fresh, failing (stale), quarantining and running."""

    def source(
        name: str, connector: str, schedule: str | None, settings: dict[str, Any] | None = None
    ) -> SourceConfig:
        return SourceConfig(
            name=name,
            connector=connector,
            dataset_id=name.upper(),
            schedule=schedule,
            max_quarantined="unlimited",
            settings=settings or {},
        )

    return Config(
        mixpanel=MixpanelConfig(sink="embedded"),
        scheduler=SchedulerConfig(timezone="UTC"),
        sources={
            "billing": source("billing", "ticks", "0 3 * * *", {"events": 400}),
            "crm": source("crm", "broken", "*/5 * * * *", {"api_key": SECRET}),
            "orders": source("orders", "ticks", "0 * * * *", {"events": 300, "bad": True}),
            "live": source("live", "gated", None),
        },
    )


def build_home(home: Path) -> UiHome:
    """Run each source once (the gated one stays running) and return the home."""
    Gated.started.clear()
    Gated.gate.clear()
    plugins = load_test_plugins(connector_plugin(Ticks, Broken, Gated), entry_points=False)
    config = make_config()
    engine = Engine(config, plugins, home)
    made = UiHome(home=home, config=config, plugins=plugins)
    for _ in range(BILLING_RUNS):
        made.runs["billing"] = engine.run("billing", RunOptions())
    try:
        engine.run("crm", RunOptions())
    except RunFailed as exc:
        made.runs["crm"] = exc.summary  # type: ignore[attr-defined]
    made.runs["orders"] = engine.run("orders", RunOptions())
    made.running = threading.Thread(
        target=lambda: Engine(config, plugins, home).run("live"), daemon=True
    )
    made.running.start()
    if not Gated.started.wait(60):
        raise RuntimeError("the gated run did not start")
    return made
