"""``mpconnect schedule --distributed``: stand by or lead, dispatching due runs."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

from mpconnect.cli.distributed import require_distributed

if TYPE_CHECKING:
    from mpconnect.scheduler import Plan


def serve_distributed(plan: Plan) -> None:
    """Serve as a distributed scheduler until SIGTERM/SIGINT; exit 1 when leadership is
    lost (a supervisor restarts the process, which then stands by)."""
    require_distributed()
    from mpconnect.distributed.dispatch import Dispatcher
    from mpconnect.distributed.scheduler import DistributedScheduler

    dispatcher = Dispatcher(plan.config)
    scheduler = DistributedScheduler(plan, dispatcher)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        scheduler.request_stop()

    outcome: dict[str, object] = {}

    def serve() -> None:
        try:
            outcome["ok"] = scheduler.serve()
        except BaseException as exc:
            outcome["error"] = exc

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        thread = threading.Thread(target=serve, name="mpconnect-scheduler", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        dispatcher.close()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    if outcome.get("ok") is False:
        raise click.exceptions.Exit(1)
