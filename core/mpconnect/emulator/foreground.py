"""Serving an application in the foreground until SIGINT or SIGTERM (``mpconnect serve``)."""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mpconnect.emulator.background import HEADER_TIMEOUT


async def serve_forever(
    app: web.Application,
    http_app_factory: Callable[[str], web.Application],
    host: str,
    port: int,
    http_port: int | None,
    context: ssl.SSLContext,
    banner: Callable[[str, str | None], None],
) -> None:
    """Serve ``app`` over HTTPS until SIGINT or SIGTERM; ``banner(url, http_url)`` once bound.

    :param http_app_factory: builds, from the HTTPS URL, the app served on ``http_port``.
    :param http_port: also listen on plain HTTP here (None: not at all; 0: a free port).
    """
    runners = []
    try:
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=HEADER_TIMEOUT
        )
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, host, port, ssl_context=context, backlog=512)
        await site.start()
        shown_host = f"[{host}]" if ":" in host else host
        url = f"https://{shown_host}:{_bound_port(site) or port}"
        http_url = None
        if http_port is not None:
            http_runner = web.AppRunner(
                http_app_factory(url),
                access_log=None,
                handle_signals=False,
                keepalive_timeout=HEADER_TIMEOUT,
            )
            await http_runner.setup()
            runners.append(http_runner)
            http_site = web.TCPSite(http_runner, host, http_port)
            await http_site.start()
            http_url = f"http://{shown_host}:{_bound_port(http_site) or http_port}"
        banner(url, http_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        for each in reversed(runners):
            await each.cleanup()


def _bound_port(site: Any) -> int | None:
    """The port ``site`` bound (it may have been given 0), if it can be read."""
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    return sockets[0].getsockname()[1] if sockets else None
