"""How a command serves the status application: the status source and options for
``mpconnect ui`` alone, or beside a running scheduler."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
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
    database: str | None = None,
) -> tuple[LocalStatusSource, UiOptions]:
    """The status of ``home`` without a scheduler, or of every worker's runs in the
    shared ``database`` (``[distributed]``): ``/healthz`` always answers 200."""
    status = (
        shared_source(config, plugins, home, database)
        if database
        else LocalStatusSource(config, plugins, home)
    )
    return status, UiOptions(token=token, run_now=run_now)


def shared_source(
    config: Callable[[], Config],
    plugins: Plugins,
    home: Path,
    database: str,
    next_run: Callable[[str], datetime | None] | None = None,
) -> LocalStatusSource:
    """The status source over the shared database (imports psycopg only when used)."""
    from mpconnect.ui.shared_status import SharedStatusSource

    return SharedStatusSource(config, plugins, home, database, next_run=next_run)


def beside_scheduler(
    scheduler: Any, plugins: Plugins, home: Path, token: str | None, database: str | None = None
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

    status = (
        shared_source(
            lambda: scheduler.plan.config, plugins, home, database, next_run=scheduler.next_run
        )
        if database
        else LocalStatusSource(
            lambda: scheduler.plan.config, plugins, home, next_run=scheduler.next_run
        )
    )
    return status, UiOptions(
        token=token, run_now=scheduler.request_run, healthy=healthy, heartbeat_age=heartbeat.age
    )
