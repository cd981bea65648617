"""Local servers: a public module for plugins (see docs/plugins.md, "Local servers").

- :class:`BackgroundServer` runs an aiohttp application on 127.0.0.1 in a background
  thread, optionally over TLS; :class:`LocalCA` makes the certificates (with ``trustme``,
  the ``server`` extra). Used by ``mpconnect serve``, :mod:`mpconnect.testing` and the
  connectors' local API servers.
- The contract of a plugin's local server (:class:`LocalServer`) is :mod:`mpconnect.served`.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path
from typing import Any

from mpconnect.served import LocalServer, ServedSource, ServeOptions

__all__ = [
    "HEADER_TIMEOUT",
    "BackgroundServer",
    "LocalCA",
    "LocalServer",
    "ServeOptions",
    "ServedSource",
    "server_context_from_files",
]

#: Seconds a connection may take to send a complete request's headers (from its start, or
#: from the end of the previous response), and may stay idle between requests: after it
#: the server closes the connection. (aiohttp's ``keepalive_timeout``, which covers a
#: connection's first request from aiohttp 3.14.4 on.)
HEADER_TIMEOUT = 10.0


class LocalCA:
    """A local certificate authority and a certificate for 127.0.0.1 and localhost.

    :param directory: where the CA certificate is written (``ca.pem``), for clients'
        ``verify=`` / ``ca_bundle``.
    """

    def __init__(self, directory: Path) -> None:
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name="mpconnect local CA")
        self.ca_path = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        self._cert = self._ca.issue_cert("127.0.0.1", "localhost", "::1")

    def server_context(self) -> ssl.SSLContext:
        """Return an SSL context serving the 127.0.0.1/localhost certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        return context


def server_context_from_files(cert: Path, key: Path) -> ssl.SSLContext:
    """Return an SSL context serving a certificate and key given as PEM files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


class BackgroundServer:
    """An aiohttp app served from its own thread and event loop until :meth:`stop`.

    :param app: the ``aiohttp.web.Application``.
    :param host: the address to bind (127.0.0.1 by default).
    :param port: the port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    :param ssl_context: serve HTTPS with this context, else plain HTTP.
    :param header_timeout: close a connection whose request headers have not arrived
        within this many seconds (see :data:`HEADER_TIMEOUT`).

    Use as a context manager::

        with BackgroundServer(app) as server:
            requests.get(server.url + "/path")
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        header_timeout: float = HEADER_TIMEOUT,
    ) -> None:
        self.app = app
        self.header_timeout = header_timeout
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The server's base URL, such as ``https://127.0.0.1:54321``."""
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Start serving; returns once the port is bound."""
        self._thread = threading.Thread(target=self._serve, name="mpconnect-server", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _serve(self) -> None:
        from aiohttp import web

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def setup() -> None:
            self._runner = web.AppRunner(
                self.app,
                access_log=None,
                handle_signals=False,
                keepalive_timeout=self.header_timeout,
            )
            await self._runner.setup()
            site = web.TCPSite(
                self._runner, self.host, self.port, ssl_context=self.ssl_context, backlog=512
            )
            await site.start()
            server = site._server
            sockets = server.sockets if isinstance(server, asyncio.Server) else ()
            if sockets:
                self.port = sockets[0].getsockname()[1]

        try:
            loop.run_until_complete(setup())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
