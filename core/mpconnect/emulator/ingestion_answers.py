"""The answers of Mixpanel's ingestion endpoints, shaped as Mixpanel's are."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mpconnect.emulator.ingestion_checks import MAX_BODY_BYTES

#: Mixpanel's 429 body.
RATE_LIMITED = {
    "code": 429,
    "error": "Project exceeded rate limits. Please retry the request with exponential backoff.",
    "status": "Too Many Requests",
}
_SERVER_ERRORS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class IngestionRefused(Exception):
    """A request refused as a whole: answered ``status`` with ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body


def bad_request(message: str) -> dict[str, Any]:
    """Mixpanel's 400 body."""
    return {"code": 400, "error": message, "status": "Bad Request"}


def unauthorized(message: str) -> dict[str, Any]:
    """Mixpanel's 401 body."""
    return {"code": 401, "error": message, "status": "Unauthorized"}


def too_large() -> IngestionRefused:
    """The 413 refusal of a body over :data:`MAX_BODY_BYTES`."""
    return IngestionRefused(
        413,
        {
            "code": 413,
            "error": f"request exceeds max limit of {MAX_BODY_BYTES} bytes",
            "status": "Request Entity Too Large",
        },
    )


def server_error(status: int) -> dict[str, Any]:
    """Mixpanel's 5xx body for ``status``."""
    reason = _SERVER_ERRORS.get(status, "Server Error")
    return {"code": status, "error": reason, "status": reason}


def engage_answer(verbose: bool, answer: dict[str, Any]) -> web.Response:
    """``/engage``'s answer: the JSON ``answer`` when verbose, else ``1`` or ``0``."""
    if verbose:
        return web.json_response(answer)
    return web.Response(text="1" if answer["status"] else "0")
