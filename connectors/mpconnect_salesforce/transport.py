"""The HTTP session every Salesforce call of a run goes through.

simple-salesforce takes a ``requests.Session``; this one adds what the library lacks:
a default timeout, retries with backoff on 5xx, 429, ``UNABLE_TO_LOCK_ROW``, timeouts and
dropped connections, one re-authentication when the session expired
(``INVALID_SESSION_ID``), a clear stop on ``REQUEST_LIMIT_EXCEEDED``, and the count of API
calls the quota guard needs. Because it sits under the library, ``query_all_iter``
paging, ``describe`` and Bulk 2.0 requests all get the same treatment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from mpconnect import SourceError
from mpconnect.retry import call_with_retries, parse_retry_after
from mpconnect_salesforce.errors import QuotaExceeded, error_code, error_text
from mpconnect_salesforce.quota import QuotaGuard

__all__ = ["SalesforceTransport"]

#: Error codes worth retrying although Salesforce answers them with a 4xx status.
RETRYABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class _Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's wish, if it said one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _is_soap_fault(response: requests.Response) -> bool:
    kind = response.headers.get("Content-Type", "")
    return "xml" in kind and b"Fault" in response.content


class SalesforceTransport(requests.Session):
    """A ``requests.Session`` with timeouts, retries, re-authentication and quota counting.

    :param guard: counts API calls and stops the run before it passes its share.
    :param timeout: seconds to wait for a connection or a read, unless a call says otherwise.
    :param max_retries: retries of one request before giving up.
    :param retry_wait: the first backoff wait in seconds; it doubles per retry (with jitter).
    :param ca_bundle: a CA certificate file to verify the server with (a local test server).
    :param log: where retries and re-authentications are logged (never with secrets).
    """

    def __init__(
        self,
        guard: QuotaGuard,
        *,
        timeout: float,
        max_retries: int,
        retry_wait: float,
        ca_bundle: Path | None,
        log: logging.Logger,
    ) -> None:
        super().__init__()
        self.guard = guard
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_wait = retry_wait
        self.log = log
        #: Called to log in again when the session expired; returns the new session id.
        self.renew: Callable[[], str] | None = None
        self.renewals = 0
        self.ca_bundle = str(ca_bundle) if ca_bundle is not None else None

    def request(  # type: ignore[override]
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send one request as ``requests.Session.request`` does, with the additions above."""
        url = url.decode() if isinstance(url, bytes) else url
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if self.ca_bundle is not None and kwargs.get("verify") is None:
            kwargs["verify"] = self.ca_bundle  # per request, so REQUESTS_CA_BUNDLE cannot override
        response = self._send(method, url, args, kwargs)
        if self.renew is not None and response.status_code == 401 and (
            error_code(response) == "INVALID_SESSION_ID"
        ):
            self.log.warning("Salesforce session expired; logging in again")
            token = self.renew()
            self.renewals += 1
            headers = dict(kwargs.get("headers") or {})
            headers["Authorization"] = f"Bearer {token}"
            kwargs["headers"] = headers
            response = self._send(method, url, args, kwargs)
        if error_code(response) == "REQUEST_LIMIT_EXCEEDED":
            raise QuotaExceeded(
                f"Salesforce refused {method} {urlsplit(url).path}: "
                f"{error_text(response.json())} - the org's API request limit is used up "
                f"(usage {self.guard.describe()}); stopping rather than calling again. "
                "Run later, when the quota has recovered"
            )
        return response

    def _send(
        self, method: str, url: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> requests.Response:
        counted = "/services/data/" in url
        path = urlsplit(url).path

        def attempt() -> requests.Response:
            if counted:
                self.guard.before_call()
            try:
                response = super(SalesforceTransport, self).request(method, url, *args, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise SourceError(
                    f"Salesforce {method} {path}: TLS verification failed ({exc}); for a "
                    "server with a private certificate authority set ca_bundle"
                ) from None
            except _NETWORK_ERRORS as exc:
                raise _Transient(f"{type(exc).__name__}: {exc}") from exc
            if counted:
                self.guard.after_call(response.headers.get("Sforce-Limit-Info"))
            status = response.status_code
            transient = status == 429 or (status >= 500 and not _is_soap_fault(response))
            code = error_code(response)
            if transient or code in RETRYABLE_CODES:
                text = error_text(_body(response))
                response.close()
                raise _Transient(
                    f"HTTP {status} {text}",
                    parse_retry_after(response.headers.get("Retry-After")),
                )
            return response

        def on_retry(exc: BaseException, number: int, wait: float) -> None:
            self.log.warning(
                "Salesforce %s %s failed (%s); retry %d of %d in %.1fs",
                method, path, exc, number, self.max_retries, wait,
            )

        try:
            return call_with_retries(
                attempt,
                max_retries=self.max_retries,
                initial_wait=self.retry_wait,
                max_wait=60.0,
                retry_on=(_Transient,),
                on_retry=on_retry,
            )
        except _Transient as exc:
            raise SourceError(
                f"Salesforce {method} {path} kept failing after {self.max_retries} "
                f"retries: {exc}"
            ) from exc


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
