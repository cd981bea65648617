"""The sinks' transport: a TLS handshake cut off is retried, an untrusted certificate is
not (and says what to set), and a redirect is never followed.

Both HTTPS sinks run ``mpconnect run`` against the local server (Datasets API and
``/import``), through a TCP relay that drops the first connections mid-handshake, or
against a server answering 307 to plain ``http://`` on another host.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mpconnect.emulator.background import BackgroundServer, LocalCA
from mpconnect.emulator.ingestion_api import IngestionProject
from mpconnect.emulator.server import LocalDatasetsServer

pytestmark = pytest.mark.timeout(60)

TOKEN = "transport-token-51c2"
SECRET = "transport-secret-0b7d"
PROJECT_ID = "12345"
SA_USER = "transport.mp-service-account"
SA_SECRET = "transport-sa-secret-77aa"
SINKS = ("datasets", "ingestion")


class DroppingRelay:
    """A TCP relay to ``upstream`` that first drops connections, one way per entry of
    ``drops``: ``"eof"`` (closed at once), ``"eof-after-hello"`` (closed once the TLS
    ClientHello arrived) or ``"reset-after-hello"`` (reset then). Later connections are
    relayed both ways, so TLS runs end to end with the server's own certificate.
    """

    def __init__(self, upstream_port: int, drops: list[str]) -> None:
        self.upstream_port = upstream_port
        self.drops = list(drops)
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> DroppingRelay:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        _shut(self._listener)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
                sock.close()
        for thread in self._threads:
            thread.join(10)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self.drops.pop(0) if self.drops else None
                self._sockets.append(client)
            if mode is None:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                with self._lock:
                    self._sockets.append(upstream)
                self._spawn(_pump, client, upstream)
                self._spawn(_pump, upstream, client)
                continue
            if mode.endswith("after-hello"):
                client.recv(65536)
            if mode.startswith("reset"):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            self.dropped += 1


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        _shut(source)
        _shut(target)


def _shut(sock: socket.socket) -> None:
    """Shut a socket down both ways: a thread blocked reading it wakes up."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalDatasetsServer]:
    """The local Datasets API and ingestion endpoints, over HTTPS."""
    project = IngestionProject(
        PROJECT_ID, token=TOKEN, service_accounts={SA_USER: SA_SECRET}, api_secret=SECRET
    )
    with LocalDatasetsServer(
        tmp_path / "server",
        datasets=["DEMO"],
        project_token=TOKEN,
        project_secret=SECRET,
        ingestion=project,
    ) as running:
        yield running


def _config(write_config: Callable[..., Path], sink: str, url: str, ca_path: Path) -> Path:
    credentials = (
        'secret = "${MIXPANEL_SECRET}"'
        if sink == "datasets"
        else f'project_id = "{PROJECT_ID}"\nservice_account_user = "{SA_USER}"\n'
        'service_account_secret = "${MP_SA_SECRET}"'
    )
    return write_config(f"""
[mixpanel]
sink = "{sink}"
api_url = "{url}"
project_token = "{TOKEN}"
ca_bundle = "{ca_path}"
{credentials}

[engine]
concurrency = 1
retry_initial_wait = 0.01
retry_max_wait = 0.05

[sources.demo]
connector = "demo"
dataset_id = "DEMO"

[sources.demo.settings]
events = 30
""")


ENV = {"MIXPANEL_SECRET": SECRET, "MP_SA_SECRET": SA_SECRET}


def _last_run(cli: Callable[..., Any], config: Path) -> dict[str, Any]:
    listed = cli("--config", config, "runs", "--json", env=ENV)
    return json.loads(listed.stdout)[0]


@pytest.mark.parametrize("sink", SINKS)
def test_a_tls_handshake_cut_off_is_retried(
    sink: str,
    server: LocalDatasetsServer,
    cli: Callable[..., Any],
    write_config: Callable[..., Path],
) -> None:
    drops = ["eof", "eof-after-hello", "reset-after-hello"]
    with DroppingRelay(server._server.port, drops) as relay:
        config = _config(write_config, sink, relay.url, server.ca_path)
        result = cli("--config", config, "-v", "run", "demo", env=ENV)

    assert result.exit_code == 0, result.output
    assert relay.dropped == 3
    assert "the TLS handshake with https://127.0.0.1:" in result.stderr
    assert "was cut off (" in result.stderr
    assert "[SSL: UNEXPECTED_EOF_WHILE_READING]" in result.stderr
    assert "ca_bundle" not in result.stderr  # a dropped connection is no certificate problem
    row = _last_run(cli, config)
    assert row["status"] == "succeeded"
    assert row["retries"] >= 3
    assert row["imported"] == 30 + 3  # the demo's 30 events and its 3 reviewers


@pytest.mark.parametrize("sink", SINKS)
def test_an_untrusted_certificate_fails_at_once_and_names_ca_bundle(
    sink: str,
    server: LocalDatasetsServer,
    cli: Callable[..., Any],
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    other = LocalCA(tmp_path / "other-ca")
    config = _config(write_config, sink, server.url, other.ca_path)

    result = cli("--config", config, "run", "demo", env=ENV)

    assert result.exit_code == 1
    assert "TLS certificate verification failed for https://127.0.0.1:" in result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert "set mixpanel.ca_bundle to the authority's PEM file" in result.stderr
    assert _last_run(cli, config)["retries"] == 0
    assert server.request_counts() == {}


@pytest.fixture
def catcher() -> Iterator[list[str]]:
    """A plain-HTTP server on another loopback address, recording every request."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path} {await request.read()!r}")
        return web.json_response({"data": {"version_id": "1"}, "status": 1})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    with BackgroundServer(app, host="127.0.0.2") as running:
        seen.append(running.url)
        yield seen


@pytest.fixture
def redirecting(tmp_path: Path, catcher: list[str]) -> Iterator[tuple[str, Path]]:
    """An HTTPS server answering every request with 307 to the catcher, path kept."""
    target = catcher[0]

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": f"{target}{request.path_qs}"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    ca = LocalCA(tmp_path / "redirect-ca")
    with BackgroundServer(app, ssl_context=ca.server_context()) as running:
        yield running.url, ca.ca_path


@pytest.mark.parametrize("sink", SINKS)
def test_a_redirect_to_plain_http_on_another_host_is_not_followed(
    sink: str,
    redirecting: tuple[str, Path],
    catcher: list[str],
    cli: Callable[..., Any],
    write_config: Callable[..., Path],
) -> None:
    url, ca_path = redirecting
    config = _config(write_config, sink, url, ca_path)

    result = cli("--config", config, "run", "demo", env=ENV)

    assert result.exit_code == 1
    path = "/datasets/DEMO/versions" if sink == "datasets" else "/import"
    assert "mpconnect: error: demo: HTTP 307: " in result.stderr
    assert f"redirected to {catcher[0]}{path}" in result.stderr
    assert (
        "not followed (it would re-send the request and its credentials over plain "
        "http:// and to another host (127.0.0.2:"
    ) in result.stderr
    assert "set mixpanel.api_url to the API's own address" in result.stderr
    assert catcher[1:] == []  # nothing reached the other host
    assert "redirected to http://127.0.0.2:" in _last_run(cli, config)["error"]
