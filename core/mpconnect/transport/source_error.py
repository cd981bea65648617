"""The error a source's HTTP API gives a connector: the status, the request, the text."""

from __future__ import annotations

from mpconnect.errors import SourceError


class SourceHttpError(SourceError):
    """A source's HTTP API answered with an error, or could not be reached.

    :param status: the HTTP status, 0 when no response was received.
    :param method: the request method.
    :param url: the URL, with secret query parameters redacted.
    :param server_message: the server's own text (truncated), or what went wrong.
    """

    def __init__(
        self, message: str, *, status: int, method: str, url: str, server_message: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.server_message = server_message
