"""How a command serves the status application: the status source and options for
``mpconnect ui`` alone, or beside a running scheduler."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpconnect.config import Config
from mpconnect.plugins import Plugins
from mpconnect.ui.app import UiOptions
from mpconnect.ui.status import LocalStatusSource


def standalone(
    config: Callable[[], Config],
    plugins: Plugins,
    home: Path,
    token: str | None,
    run_now: Callable[[str], str] | None,
) -> tuple[LocalStatusSource, UiOptions]:
    """The status of ``home`` without a scheduler: ``/healthz`` always answers 200."""
    return (LocalStatusSource(config, plugins, home), UiOptions(token=token, run_now=run_now))


def beside_scheduler(
    scheduler: Any, plugins: Plugins, home: Path, token: str | None
) -> tuple[LocalStatusSource, UiOptions]:
    """The status served by ``mpconnect schedule --http-port``: the scheduler's own
    configuration and next times, "run now" queues a run, ``/healthz`` follows the
    scheduler loop's heartbeat."""
    heartbeat = scheduler.heartbeat

    def healthy() -> tuple[bool, str]:
        age = heartbeat.age()
        if age is None:
            return False, "the scheduler loop has not started"
        word = "alive" if heartbeat.alive() else "stuck"
        return heartbeat.alive(), (
            f"{word}: the loop went round {age:.0f} s ago "
            f"(stuck after {heartbeat.stuck_after:.0f} s)"
        )

    status = LocalStatusSource(
        lambda: scheduler.plan.config, plugins, home, next_run=scheduler.next_run
    )
    return status, UiOptions(
        token=token, run_now=scheduler.request_run, healthy=healthy, heartbeat_age=heartbeat.age
    )
