"""``mpconnect schedule``: run each source on its schedule, or print crontab lines."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from mpconnect.cli.context import CliState
from mpconnect.errors import MpconnectError
from mpconnect.paths import home_dir

if TYPE_CHECKING:  # imported when `schedule` runs: other commands start without them
    from mpconnect.scheduler import Scheduler

log = logging.getLogger("mpconnect.scheduler")


def register(cli: click.Group) -> None:
    """Add ``schedule``."""
    cli.add_command(schedule)


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Configuration file (same as the top-level --config).",
)
@click.option(
    "--print-crontab",
    is_flag=True,
    help="Print crontab lines running `mpconnect run SOURCE` instead of scheduling.",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait on SIGTERM/SIGINT for running runs to reach a checkpoint.",
)
@click.option(
    "--reload-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between checks of the configuration file for changes (0: only on SIGHUP).",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve the status page, /metrics and /healthz on this port.",
)
@click.option(
    "--http-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of the status page; any other than loopback needs --token.",
)
@click.option(
    "--token",
    default=None,
    help="Require this token on the status page (also $MPCONNECT_UI_TOKEN).",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Enqueue due runs for the workers instead of running them ([distributed]); "
    "one scheduler leads however many are started.",
)
@click.pass_obj
def schedule(
    state: CliState,
    config_path: str | None,
    print_crontab: bool,
    distributed: bool,
    stop_timeout: float,
    reload_interval: float,
    http_port: int | None,
    http_host: str,
    token: str | None,
) -> None:
    """Run each configured source on its `schedule` until SIGTERM or Ctrl-C.

    Logs each source's next run at start and after each run. SIGHUP reloads the
    configuration (so does a change to the file); an invalid file is reported and the
    previous configuration kept.
    """
    from mpconnect.engine.progress import LogProgress
    from mpconnect.scheduler import Scheduler, crontab_lines, make_plan

    if config_path:
        state.config_path = config_path
        for cached in ("config", "engine"):
            state.__dict__.pop(cached, None)
    plan = make_plan(state.config, state.plugins)
    if not plan.crons:
        where = plan.config.path or "the built-in configuration"
        raise MpconnectError(
            f"{where}: no source has a schedule; add one to a [sources.NAME] table, such as "
            'schedule = "0 2 * * *" (02:00 every day)'
        )
    if distributed and not print_crontab:
        from mpconnect.cli.distributed_schedule import serve_distributed

        serve_distributed(plan)
        return
    if print_crontab:
        for line in crontab_lines(plan):
            click.echo(line)
        for name, cron in plan.crons.items():
            if cron.has_seconds:
                click.echo(
                    f"mpconnect: warning: sources.{name}.schedule has a seconds field; "
                    "cron cannot run it (left as a comment)",
                    err=True,
                )
        return
    scheduler = Scheduler(
        plan,
        state.plugins,
        home=home_dir(),
        engine_factory=_shared_engine_factory(state),
        progress_factory=lambda: LogProgress(30.0),
        reload_interval=reload_interval or None,
        stop_timeout=stop_timeout,
    )
    if http_port is None:
        _serve_with_signals(scheduler)
        return
    from mpconnect.cli.ui import checked_token, require_ui, start_status_server

    require_ui()
    server = start_status_server(
        state,
        http_host,
        http_port,
        checked_token(http_host, token, "--http-host"),
        run_now=None,
        scheduler=scheduler,
    )
    log.info(
        "status page at http://%s:%d/ (metrics at /metrics, health at /healthz)",
        http_host,
        server.port,
    )
    try:
        _serve_with_signals(scheduler)
    finally:
        server.stop()


def _shared_engine_factory(state: CliState) -> Any:
    """With ``[distributed]`` configured, runs here use the shared ledger, locks, state and
    caches (as `mpconnect run` does), so they never overlap a worker's and continue from
    its state; else None (the default)."""
    url = state.shared_database_url()
    if url is None:
        return None
    from mpconnect.distributed.ledger import PostgresRunLedger
    from mpconnect.distributed.locks import PostgresSourceLock
    from mpconnect.distributed.state import shared_incremental
    from mpconnect.engine import Engine

    plugins, home = state.plugins, home_dir()
    return lambda config: Engine(
        config,
        plugins,
        home,
        ledger=PostgresRunLedger(url),
        lock_factory=lambda source, run_id: PostgresSourceLock(url, source, run_id),
        **shared_incremental(url),
    )


def _serve_with_signals(scheduler: Scheduler) -> None:
    """Serve in a thread while the main thread turns signals into requests."""
    stops = 0

    def on_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stops
        stops += 1
        name = signal.Signals(signum).name
        if stops == 1:
            log.info(
                "%s received: starting no more runs; running runs stop at their next "
                "checkpoint (send it again to stop waiting)",
                name,
            )
        else:
            log.warning("%s received again: not waiting for running runs", name)
        scheduler.request_stop(force=stops > 1)

    def on_reload(signum: int, frame: FrameType | None) -> None:
        log.info("SIGHUP received: reloading the configuration")
        scheduler.request_reload()

    outcome: dict[str, Any] = {}

    def serve() -> None:
        try:
            outcome["ended"] = scheduler.serve()
        except BaseException as exc:
            outcome["error"] = exc

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_reload}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        thread = threading.Thread(target=serve, name="mpconnect-scheduler", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if "error" in outcome:
        raise outcome["error"]
