"""What the HTTP clients share about the transport: unreachable servers, TLS failures and
redirects.

- A server that cannot be reached at all (the connection is refused, the host name does
  not resolve) is told apart from a slow or failing one by :func:`why_unreachable`;
  :func:`unreachable_message` words it with the setting to fix, and the error is marked
  (:func:`mpconnect.transport.retry.mark_unreachable`) so it is retried only a few times, quickly.

- A TLS handshake the server (or a middlebox) drops, with an EOF or a reset, is a dropped
  connection: :func:`tls_error` makes it a :class:`~mpconnect.errors.RetryableApiError`.
  Only a certificate that fails verification is permanent, and only it gets the
  ``mixpanel.ca_bundle`` hint.
- Redirects are never followed (the clients send ``allow_redirects=False``): following
  one re-sends the body and the credentials, possibly to another host or over plain
  ``http://``. :func:`refuse_redirect` turns the answer into an error naming where it
  pointed.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urljoin, urlsplit

import requests

from mpconnect.errors import ApiError, RetryableApiError
from mpconnect.redact import redact

__all__ = [
    "is_certificate_failure",
    "refuse_redirect",
    "tls_error",
    "unreachable_message",
    "why_unreachable",
]


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (``args``, urllib3's ``reason``, causes)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        inner: list[object] = [
            *current.args,
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
        ]
        todo += [each for each in inner if isinstance(each, BaseException)]
    return seen


def why_unreachable(exc: BaseException, url: str) -> str | None:
    """Why ``url``'s server cannot be reached, from ``exc`` (an error of ``requests`` or of
    a client built on it): ``"connection refused"``, ``"the name HOST does not resolve"``,
    or None for any other failure (a timeout, a dropped connection, TLS)."""
    chain = _chain(exc)
    if any(isinstance(each, ConnectionRefusedError) for each in chain):
        return "connection refused"
    if any(
        isinstance(each, socket.gaierror) or type(each).__name__ == "NameResolutionError"
        for each in chain
    ):
        return f"the name {urlsplit(url).hostname or url} does not resolve"
    return None


def unreachable_message(what: str, url: str, reason: str, key: str | None) -> str:
    """One line for a server that cannot be reached: the call, where, why, and the fix.

    :param what: the call, such as ``"POST /import"`` (empty: no prefix).
    :param url: the server's address (its scheme, host and port are shown).
    :param reason: from :func:`why_unreachable`.
    :param key: the configuration key that sets the address, such as ``mixpanel.api_url``.
    """
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}" if parts.netloc else url
    fix = f" Check that {key} is its address" if key else ""
    prefix = f"{what}: " if what else ""
    return f"{prefix}cannot connect to {where} ({reason}); is the server running?{fix}"


def is_certificate_failure(exc: BaseException) -> bool:
    """True when ``exc`` (a ``requests`` error) is a certificate that failed verification."""
    return any(isinstance(each, ssl.SSLCertVerificationError) for each in _chain(exc))


def tls_error(exc: requests.exceptions.SSLError, what: str, url: str, reason: str) -> ApiError:
    """The error for a failed TLS handshake with ``url``.

    :param what: the call, such as ``"POST /import"``.
    :param reason: the innermost cause, as the client words it.
    :returns: a permanent :class:`ApiError` with the ``mixpanel.ca_bundle`` hint for a
        certificate that failed verification; else a :class:`RetryableApiError` (the
        handshake was cut off: an EOF or a reset).
    """
    if is_certificate_failure(exc):
        return ApiError(
            0,
            f"{what}: TLS certificate verification failed for {url} "
            f"({reason}); if it is a local server or a private certificate "
            "authority, set mixpanel.ca_bundle to the authority's PEM file",
        )
    return RetryableApiError(0, f"{what}: the TLS handshake with {url} was cut off ({reason})")


def refuse_redirect(response: requests.Response, what: str) -> ApiError:
    """The error for an answer that redirects (never followed), naming where it pointed."""
    location = response.headers.get("Location")
    status = response.status_code
    if not location:
        return ApiError(
            status, f"{what}: unexpected HTTP {status} without a Location; check mixpanel.api_url"
        )
    target = urljoin(response.url, location)
    origin, there = urlsplit(response.url), urlsplit(target)
    why = []
    if there.scheme != "https":
        why.append(f"over plain {there.scheme}://" if there.scheme else "without https")
    if _host_and_port(there.geturl()) != _host_and_port(origin.geturl()):
        why.append(f"to another host ({there.netloc})")
    risk = (" " + " and ".join(why)) if why else ""
    return ApiError(
        status,
        f"{what}: redirected to {redact(target)}; not followed (it "
        f"would re-send the request and its credentials{risk}); set "
        "mixpanel.api_url to the API's own address",
    )


def _host_and_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or {"http": 80, "https": 443}.get(parts.scheme))
