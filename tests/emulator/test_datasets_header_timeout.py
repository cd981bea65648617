"""The local server closes a connection whose request headers do not arrive in time."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

from mpconnect.emulator.server import LocalDatasetsServer

#: How long the test waits for the server to close the connection, at most: far above the
#: timeout it sets, so only a server that never closes fails the test.
GENEROUS_CAP = 30.0


def _half_a_request(url: str, ca_path: str) -> bytes | str:
    """Connect over TLS, send half a request line, and return what the server sends
    until it closes the connection, or ``"still open"`` when the cap is reached."""
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=ca_path)
    with (
        socket.create_connection((host, int(port)), timeout=GENEROUS_CAP) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(b"GET /datasets/TESTDATA/vers")
        received = b""
        try:
            while chunk := tls.recv(4096):
                received += chunk
        except TimeoutError:
            return "still open"
        except (ssl.SSLEOFError, ConnectionResetError):
            pass  # closed without a TLS close_notify: closed all the same
        return received


def test_a_connection_whose_headers_stall_is_closed(
    start_server: Callable[..., LocalDatasetsServer],
) -> None:
    server = start_server(header_timeout=0.5)

    assert _half_a_request(server.url, str(server.ca_path)) == b""
