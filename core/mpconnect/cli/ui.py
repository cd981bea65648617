"""``mpconnect ui``: the status page, its JSON API, ``/metrics`` and ``/healthz``.

aiohttp, jinja2 and prometheus-client (the ``ui`` extra) are imported only when the
command runs, so ``mpconnect --help`` stays light.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from mpconnect.cli.context import CliState
from mpconnect.errors import ConfigError, MpconnectError, RunLocked

log = logging.getLogger("mpconnect.ui")
TOKEN_ENV = "MPCONNECT_UI_TOKEN"
_EXTRA_HINT = 'the status page needs the ui extra: pip install "mpconnect[ui]"'


def register(cli: click.Group) -> None:
    """Add ``ui``."""
    cli.add_command(ui)


def require_ui() -> None:
    """Raise a clear error when the ``ui`` extra is not installed."""
    import importlib.util

    missing = [
        name
        for name in ("aiohttp", "jinja2", "prometheus_client")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise MpconnectError(f"{_EXTRA_HINT} (missing: {', '.join(missing)})")


def checked_token(host: str, token: str | None, option: str) -> str | None:
    """The token to require: ``token``, else ``$MPCONNECT_UI_TOKEN``; an address other
    than loopback without one is refused, naming the option."""
    from mpconnect.ui.guard import is_loopback

    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"{option} {host}: serving the status page beyond this machine needs a token; "
            f"give --token TOKEN or set {TOKEN_ENV} (a long random value, such as the "
            'output of: python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    if token is not None and len(token) < 16:
        raise ConfigError(
            f"--token / {TOKEN_ENV}: the token is too short to guard the page; "
            "use at least 16 characters"
        )
    return token


def start_status_server(
    state: CliState,
    host: str,
    port: int,
    token: str | None,
    *,
    run_now: Callable[[str], str] | None,
    scheduler: Any = None,
) -> Any:
    """Start the status application on ``host:port`` in a background thread and return
    the running :class:`~mpconnect.emulator.background.BackgroundServer`."""
    from mpconnect.emulator.background import BackgroundServer
    from mpconnect.paths import home_dir
    from mpconnect.ui.app import make_app
    from mpconnect.ui.wiring import beside_scheduler, standalone

    database = state.shared_database_url()  # [distributed]: every worker's runs
    if scheduler is not None:
        status, options = beside_scheduler(scheduler, state.plugins, home_dir(), token, database)
    else:
        status, options = standalone(
            lambda: state.config, state.plugins, home_dir(), token, run_now, database
        )
    server = BackgroundServer(make_app(status, options), host=host, port=port)
    try:
        server.start()
    except OSError as exc:
        raise MpconnectError(
            f"cannot serve the status page on {host}:{port}: "
            f"{exc.strerror or exc}; choose another --port"
        ) from None
    return server


class _BackgroundRuns:
    """ "Run now" without a scheduler: each run in its own thread, one per source."""

    def __init__(self, state: CliState) -> None:
        self.state = state
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def __call__(self, source: str) -> str:
        from mpconnect.engine import RunOptions
        from mpconnect.engine.progress import LogProgress

        if source not in self.state.config.sources:
            return f"{source}: not started: no such source in the configuration"
        with self._lock:
            running = self._threads.get(source)
            if running is not None and running.is_alive():
                return f"{source}: not started: a run started here is still going"

            def run() -> None:
                try:
                    summary = self.state.engine.run(source, RunOptions(progress=LogProgress()))
                    log.info("%s: run %s", source, summary.status)
                except RunLocked as exc:
                    log.warning("%s: not started: %s", source, exc)
                except MpconnectError as exc:
                    log.warning("%s: run failed: %s", source, exc)

            thread = threading.Thread(target=run, name=f"mpconnect-ui-run-{source}", daemon=True)
            self._threads[source] = thread
            thread.start()
        return f"{source}: run started"


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; any other than loopback needs --token.",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind (0: a free one).",
)
@click.option(
    "--token",
    default=None,
    help=f"Require this token on every page and API call (also ${TOKEN_ENV}).",
)
@click.option("--read-only", is_flag=True, help='No "run now" button.')
@click.pass_obj
def ui(state: CliState, host: str, port: int, token: str | None, read_only: bool) -> None:
    """Serve the status page: sources, runs, quarantine and datasets, a JSON API under
    /api/, Prometheus metrics at /metrics and a health check at /healthz.
    """
    require_ui()
    token = checked_token(host, token, "--host")
    state.config  # noqa: B018  (a bad configuration is reported before serving)
    server = start_status_server(
        state, host, port, token, run_now=None if read_only else _BackgroundRuns(state)
    )
    click.echo(
        f"mpconnect: status page at http://{host}:{server.port}/ "
        f"(metrics at /metrics, health at /healthz); Ctrl-C stops it",
        err=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
