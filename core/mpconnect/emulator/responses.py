"""How the local Datasets API server answers: JSON bodies, refusals, dropped connections."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

#: Paths whose error bodies also carry ``"status": 0``, as the import endpoints' do.
_IMPORT_PATHS = ("/import-events", "/import-people")


class Refused(Exception):
    """A request the API refuses: ``status`` and the error text it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``data`` as an ``application/json`` answer (with ``headers``, if given)."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def json_error(
    request: web.Request, status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The error answer: ``{"error": message}``, plus ``"status": 0`` on the imports."""
    body: dict[str, Any] = {"error": message}
    if request.path in _IMPORT_PATHS:
        body["status"] = 0
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Mixpanel Datasets API"'
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection; the response returned is never written."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)
