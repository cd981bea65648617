"""Local servers: a public module for plugins (see docs/plugins.md, "Local servers").

- :class:`BackgroundServer` runs an aiohttp application on 127.0.0.1 in a background
  thread, optionally over TLS; :class:`LocalCA` makes the certificates (with ``trustme``,
  the ``server`` extra). Used by ``mpconnect serve``, :mod:`mpconnect.testing` and the
  connectors' local API servers.
- :class:`LocalServer` is what a plugin registers with the ``register_local_servers``
  hook to get ``mpconnect serve NAME``; :meth:`LocalServer.start` gets
  :class:`ServeOptions` and returns a :class:`ServedSource`.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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
            self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                         keepalive_timeout=self.header_timeout)
            await self._runner.setup()
            site = web.TCPSite(
                self._runner, self.host, self.port, ssl_context=self.ssl_context, backlog=512
            )
            await site.start()
            sockets = site._server.sockets if site._server else []
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


# -- local stand-ins for sources, started by ``mpconnect serve NAME`` ----------------------


@dataclass(frozen=True)
class ServeOptions:
    """What ``mpconnect serve NAME`` was asked for.

    :param host: the address to bind.
    :param port: the port (0 picks a free one).
    :param size: how much data to seed (the server's ``size_option``).
    :param seed: the seed of the generated data; the same seed serves the same data.
    :param directory: a directory the server may write to, such as for its CA file.
    """

    host: str
    port: int
    size: int
    seed: int
    directory: Path


@dataclass
class ServedSource:
    """A running local server and the source settings that point a connector at it.

    :param url: where it listens.
    :param settings: the source's ``settings`` table; secrets as ``${NAME}`` references.
    :param environment: the value of each ``${NAME}`` the settings refer to.
    :param contents: what it serves, for people, such as ``"200 customers, 512 charges"``.
    :param stop: stops serving.
    :param source_options: further keys of the ``[sources.SOURCE]`` table, such as
        ``{"max_quarantined": 0.05}`` for seeded data that holds bad rows on purpose.
    """

    url: str
    settings: dict[str, Any]
    environment: dict[str, str]
    contents: str
    stop: Callable[[], None]
    source_options: dict[str, Any] = field(default_factory=dict)


class LocalServer:
    """A local stand-in for a source's API that ``mpconnect serve NAME`` starts.

    Subclass it, set the class attributes, implement :meth:`start`, and register the
    class with the ``register_local_servers`` hook. ``mpconnect serve NAME`` then takes
    ``--host``, ``--port``, ``--seed``, ``--dir`` and ``--SIZE_OPTION N``, starts the
    server, prints the ``[sources.SOURCE]`` table and ``export`` lines to paste, and
    serves until Ctrl-C or SIGTERM.
    """

    #: The server's name: ``mpconnect serve NAME``.
    name: ClassVar[str] = ""
    #: The connector the printed source uses.
    connector: ClassVar[str] = ""
    #: One line for ``mpconnect serve --help``.
    summary: ClassVar[str] = ""
    #: The source's name and dataset in the printed table.
    source_name: ClassVar[str] = ""
    dataset_id: ClassVar[str] = ""
    #: The option that sizes the seeded data (``--customers N``) and its default.
    size_option: ClassVar[str] = "size"
    size_help: ClassVar[str] = "How much data to seed."
    default_size: ClassVar[int] = 100
    #: The default port (0: a free one).
    default_port: ClassVar[int] = 0
    #: Import names the server needs, and the command that installs them.
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str | None] = None

    def start(self, options: ServeOptions) -> ServedSource:
        """Start serving in the background and return how to reach it."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement start()")

    @classmethod
    def command(cls) -> Any:
        """A ``click.Command`` of the server's own, instead of the standard one (None).

        For a server whose options differ from the standard ones, such as
        ``mpconnect serve mixpanel``; its name must be :attr:`name`.
        """
        return None

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """The import names in ``requires`` that cannot be imported."""
        import importlib.util

        missing = []
        for module in cls.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(module)
        return missing
