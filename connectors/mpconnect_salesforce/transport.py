"""The HTTP session every Salesforce call of a run goes through.

simple-salesforce takes a ``requests.Session``; this one adds what the library lacks:
a default timeout, retries with backoff on 5xx, 429, ``UNABLE_TO_LOCK_ROW``, timeouts and
dropped connections, one re-authentication when the session expired
(``INVALID_SESSION_ID``), a clear stop on ``REQUEST_LIMIT_EXCEEDED``, and the count of API
calls the quota guard needs. Because it sits under the library, ``query_all_iter``
paging, ``describe`` and Bulk 2.0 requests all get the same treatment. A server that
cannot be reached (connection refused, a name that does not resolve) is retried only
twice, quickly, and the error names the setting that holds its address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from mpconnect import (
    SourceError,
    attempts_of,
    call_with_retries,
    log_retry,
    mark_unreachable,
    parse_retry_after,
    retry_budget,
    unreachable_message,
    unreachable_reason,
    why_unreachable,
)
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
    :param url_keys: the configuration key of each server address (``scheme://host:port``)
        the settings give, named when that server cannot be reached.
    :param count_retry: called for each retry, so the run's summary counts it.
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
        url_keys: dict[str, str] | None = None,
        count_retry: Callable[..., None] | None = None,
    ) -> None:
        super().__init__()
        self.url_keys = dict(url_keys or {})
        self.count_retry = count_retry
        self.guard = guard
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_wait = retry_wait
        self.log = log
        #: Called to log in again when the session expired; returns the new session id.
        self.renew: Callable[[], str] | None = None
        self.renewals = 0
        #: The `Date` header of the latest answer: the server's clock.
        self.server_date: str | None = None
        self.ca_bundle = str(ca_bundle) if ca_bundle is not None else None

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send one request as ``requests.Session.request`` does, with the additions above."""
        url = url.decode() if isinstance(url, bytes) else url
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if self.ca_bundle is not None and kwargs.get("verify") is None:
            kwargs["verify"] = self.ca_bundle  # per request, so REQUESTS_CA_BUNDLE cannot override
        response = self._send(method, url, args, kwargs)
        if (
            self.renew is not None
            and response.status_code == 401
            and (error_code(response) == "INVALID_SESSION_ID")
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
                unreachable = why_unreachable(exc, url)
                if unreachable is not None:
                    key = self.url_keys.get(_origin(url))
                    raise mark_unreachable(
                        _Transient(unreachable_message("", url, unreachable, key)), unreachable
                    ) from exc
                raise _Transient(f"{type(exc).__name__}: {exc}") from exc
            self.server_date = response.headers.get("Date") or self.server_date
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
            if self.count_retry is not None:
                self.count_retry(exc, number, wait)
            log_retry(
                self.log,
                f"Salesforce {method} {path}",
                exc,
                number,
                retry_budget(exc, self.max_retries),
                wait,
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
            if unreachable_reason(exc) is not None:
                attempts = attempts_of(exc) or retry_budget(exc, self.max_retries) + 1
                raise SourceError(
                    f"Salesforce {method} {path}: {exc} (gave up after {attempts} attempts)"
                ) from None
            raise SourceError(
                f"Salesforce {method} {path} kept failing after {self.max_retries} retries: {exc}"
            ) from exc


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, the port written out."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def url_keys(settings: Any, setting_key: Callable[[str], str]) -> dict[str, str]:
    """The configuration key of each server address the settings give, by
    :func:`_origin`: ``instance_url``, and ``login_url`` (else ``domain``) for logins."""
    keys = {}
    if getattr(settings, "instance_url", None):
        keys[_origin(settings.instance_url)] = setting_key("instance_url")
    login_key = "login_url" if getattr(settings, "login_url", None) else "domain"
    keys.setdefault(_origin(settings.base_login_url()), setting_key(login_key))
    return keys


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
