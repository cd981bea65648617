"""A small JSON-over-HTTP client for connectors: retries, rate limiting, clear errors.

Most new sources are JSON HTTP APIs read page by page. :class:`JsonHttpClient` does what
every such connector needs and should not write again::

    client = JsonHttpClient(
        settings.base_url,
        headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
        max_retries=5,
        rate_limit=10,          # requests per second, shared by every thread
        name="acme_crm",        # prefixes error messages
    )
    for contact in client.paginate("/contacts", {"limit": 100}, next_page=next_cursor):
        ...

- 429, 408 and 5xx answers, timeouts and dropped connections (before or in the middle of
  a response) are retried with exponential backoff and jitter, honouring ``Retry-After``
  up to ``max_wait`` (built on :func:`mpconnect.transport.retry.call_with_retries`). A server that
  cannot be reached (connection refused, a host name that does not resolve) is retried
  only twice, within seconds, and the error names ``url_key``, the setting that holds the
  address (``url_key=ctx.setting_key("base_url")``). When the
  retries run out, or for any other error status, :class:`SourceHttpError` (a
  :class:`mpconnect.SourceError`) is raised with the method, the URL, the status and the
  server's own text.
- Secrets never reach a message: header values (other than ``Accept``,
  ``Content-Type`` and ``User-Agent``) and query parameters whose names look secret
  (``api_key``, ``token``, ...) are replaced by ``***`` in every error and log line, and
  ``repr(client)`` shows only the base URL. (The redaction is :func:`mpconnect.redact.redact`,
  which also removes the configured secrets and the known shapes of credentials.)
- Plain ``http://`` is refused except to a loopback address (127.0.0.1, localhost, ::1),
  so a credential is never sent in clear by mistake; ``allow_http=True`` overrides.
  Requests go only to the base URL's scheme, host and port: a ``next`` link elsewhere is
  a :class:`mpconnect.SourceError`, so the headers never reach another host.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from mpconnect.errors import ConfigError, RetryableApiError, SourceError
from mpconnect.redact import redact
from mpconnect.transport.failures import unreachable_message, why_unreachable
from mpconnect.transport.pages import NextPage, walk_pages
from mpconnect.transport.retry import (
    RateLimiter,
    attempts_of,
    call_with_retries,
    log_retry,
    mark_unreachable,
    parse_retry_after,
    retry_budget,
)
from mpconnect.transport.source_error import SourceHttpError
from mpconnect.transport.urls import is_loopback, masked_url, origin, secret_query_values

__all__ = ["JsonHttpClient", "NextPage", "SourceHttpError", "is_loopback"]

log = logging.getLogger("mpconnect.transport.http")

#: Statuses worth retrying besides every 5xx.
RETRY_STATUSES = frozenset({408, 429})
#: Headers whose values are not secret and may appear in messages.
PUBLIC_HEADERS = frozenset({"accept", "content-type", "user-agent"})
_SERVER_TEXT_LIMIT = 500


#: Redirects followed for one request (each to the base URL's host only).
MAX_REDIRECTS = 5


class JsonHttpClient:
    """Call a JSON HTTP API with retries, an optional rate limit, and clear errors.

    :param base_url: the API's root, such as ``https://api.acme.example/v1``; request
        paths are joined to it.
    :param headers: headers sent with every request (authentication goes here).
    :param max_retries: retries after the first attempt for 429/408/5xx answers,
        timeouts and dropped connections.
    :param rate_limit: at most this many requests per second (None: unlimited).
    :param timeout: seconds to wait for a response before retrying.
    :param initial_wait: the first backoff in seconds (it doubles, with jitter).
    :param max_wait: the longest wait between attempts, ``Retry-After`` included.
    :param name: what error messages and log lines start with (the connector's name).
    :param verify: TLS verification: a CA bundle path (local test servers) or False;
        None keeps the session's own (verifying) setting.
    :param allow_http: allow plain ``http://`` to hosts other than loopback.
    :param session: a ``requests.Session`` to use (default: a new one, closed by
        :meth:`close`).
    :param on_retry: called as ``on_retry(error, attempt, wait_seconds)`` before each wait
        (pass the run context's ``count_retry`` so ``mpconnect runs`` counts them).
    :param url_key: the configuration key that sets ``base_url``, named when the server
        cannot be reached (``ctx.setting_key("base_url")``).
    :param stop: a retry wait ends at once when it is set (pass the run context's
        ``stop``; in the engine's extraction thread that is the default), raising
        :class:`mpconnect.transport.retry.RetryWaitStopped`.
    :raises ConfigError: for a base URL that is not http(s), or plain http to a remote host.
    """

    #: Errors of a connection dropped while the response was read: retried like a refused
    #: connection.
    _BROKEN_RESPONSE = (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_retries: int = 5,
        rate_limit: float | None = None,
        timeout: float = 30.0,
        initial_wait: float = 0.5,
        max_wait: float = 60.0,
        name: str = "source",
        verify: bool | str | None = None,
        allow_http: bool = False,
        session: requests.Session | None = None,
        on_retry: Callable[[BaseException, int, float], None] | None = None,
        stop: threading.Event | None = None,
        url_key: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"base_url: {base_url!r} is not an http(s) URL")
        if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
            raise ConfigError(
                f"base_url: {base_url} is plain http; use https:// (plain http is allowed "
                "only to 127.0.0.1, localhost and ::1)"
            )
        self.base_url = base_url.rstrip("/") + "/"
        self.allow_http = allow_http
        self._origin = origin(self.base_url)
        self.name = name
        self.max_retries = max_retries
        self.timeout = timeout
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        self.limiter = RateLimiter(rate_limit)
        self.on_retry = on_retry
        self.stop = stop
        self.url_key = url_key
        self._owns_session = session is None
        self.session = session or requests.Session()
        if verify is not None:
            self.session.verify = verify
        from mpconnect import __version__

        self.session.headers.update(
            {"Accept": "application/json", "User-Agent": f"mpconnect/{__version__}"}
        )
        self.session.headers.update(dict(headers or {}))
        self._secrets = sorted(
            (v for k, v in (headers or {}).items() if k.lower() not in PUBLIC_HEADERS and v),
            key=len,
            reverse=True,
        )
        self._count_lock = threading.Lock()
        #: Requests made (attempts, retries included) and retries, for logs and tests.
        self.requests = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"<JsonHttpClient {self.base_url}>"

    # -- messages without secrets --------------------------------------------------------

    def _redact(
        self, text: str, params: Mapping[str, Any] | None = None, url: str | None = None
    ) -> str:
        return redact(text, [*self._secrets, *secret_query_values(params, url)])

    def display_url(self, url: str, params: Mapping[str, Any] | None) -> str:
        """``url`` with ``params`` as it may be shown: secret values replaced by ``***``."""
        return self._redact(masked_url(url, params))

    # -- requests ------------------------------------------------------------------------

    def url_for(self, path: str) -> str:
        """Return the absolute URL of ``path`` (a path below the base URL, or a full URL).

        :raises SourceError: for a URL on another scheme, host or port than the base URL
            (the client's headers, credentials included, go to the base URL's host only),
            or a plain ``http://`` URL where the base URL's rule refuses it.
        """
        url = path if "://" in path else urljoin(self.base_url, path.lstrip("/"))
        parts = urlsplit(url)
        if parts.scheme == "http" and not self.allow_http and not is_loopback(parts.hostname):
            raise SourceError(
                f"{self.name}: {self.display_url(url, None)} is plain http; it is not "
                "fetched (plain http is allowed only to 127.0.0.1, localhost and ::1)"
            )
        if origin(url) != self._origin:
            raise SourceError(
                f"{self.name}: {self.display_url(url, None)} is not on "
                f"{self.display_url(self.base_url, None)}; it is not fetched, so the "
                "client's headers and credentials are never sent to another host"
            )
        return url

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and return its JSON body, retrying transient failures.

        :raises SourceHttpError: for an error status (after retries for 429/408/5xx), an
            unreachable server once retries are exhausted, or a body that is not JSON.
        :raises SourceError: for a URL on another host than the base URL's (see
            :meth:`url_for`).
        """
        return self.request_json("GET", path, params=params)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one request and return the JSON body; see :meth:`get_json`.

        Only use it for requests that are safe to repeat: a retried POST is sent again.
        """
        url = self.url_for(path)
        shown = self.display_url(url, params)

        def attempt() -> Any:
            self.limiter.acquire()
            with self._count_lock:
                self.requests += 1
            return self._send(method, url, shown, params, json)

        def retried(error: BaseException, number: int, wait: float) -> None:
            with self._count_lock:
                self.retries += 1
            log_retry(
                log,
                f"{self.name}: {method} {shown}",
                error,
                number,
                retry_budget(error, self.max_retries),
                wait,
            )
            if self.on_retry is not None:
                self.on_retry(error, number, wait)

        try:
            return call_with_retries(
                attempt,
                max_retries=self.max_retries,
                initial_wait=self.initial_wait,
                max_wait=self.max_wait,
                on_retry=retried,
                stop=self.stop,
            )
        except RetryableApiError as exc:
            attempts = attempts_of(exc) or retry_budget(exc, self.max_retries) + 1
            raise SourceHttpError(
                f"{self.name}: {method} {shown}: {exc} (gave up after {attempts} "
                f"attempt{'s' if attempts != 1 else ''})",
                status=exc.status,
                method=method,
                url=shown,
                server_message=exc.server_message,
            ) from None

    def _send(
        self, method: str, url: str, shown: str, params: Mapping[str, Any] | None, body: Any
    ) -> Any:
        try:
            response = self.session.request(
                method, url, params=params, json=body, timeout=self.timeout, allow_redirects=False
            )
            for _ in range(MAX_REDIRECTS):
                if not response.is_redirect:
                    break
                # Followed here, not by requests: a redirect to another host would carry
                # the client's headers (an X-Api-Key, say) there.
                target = self.url_for(urljoin(response.url, response.headers["Location"]))
                response = self.session.request(
                    "GET" if response.status_code == 303 else method,
                    target,
                    json=None if response.status_code == 303 else body,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
        except requests.Timeout:
            raise RetryableApiError(0, f"no response within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            unreachable = why_unreachable(exc, url)
            if unreachable is not None:
                raise mark_unreachable(
                    RetryableApiError(0, unreachable_message("", url, unreachable, self.url_key)),
                    unreachable,
                ) from None
            raise RetryableApiError(
                0, f"connection failed: {self._redact(str(exc), params, url)}"
            ) from None
        except self._BROKEN_RESPONSE as exc:
            raise RetryableApiError(
                0,
                f"connection broken while reading the response: "
                f"{self._redact(str(exc), params, url)}",
            ) from None
        except requests.RequestException as exc:
            message = self._redact(f"{type(exc).__name__}: {exc}", params, url)
            raise SourceHttpError(
                f"{self.name}: {method} {shown}: {message}",
                status=0,
                method=method,
                url=shown,
                server_message=message,
            ) from None
        status = response.status_code
        if status >= 400:
            text = (
                self._redact(response.text.strip()[:_SERVER_TEXT_LIMIT], params, url)
                or response.reason
            )
            if status >= 500 or status in RETRY_STATUSES:
                raise RetryableApiError(
                    status, text, retry_after=parse_retry_after(response.headers.get("Retry-After"))
                )
            raise SourceHttpError(
                f"{self.name}: {method} {shown}: HTTP {status}: {text}",
                status=status,
                method=method,
                url=shown,
                server_message=text,
            )
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            start = self._redact(response.text[:200], params, url)
            raise SourceHttpError(
                f"{self.name}: {method} {shown}: HTTP {status} but the body is not JSON: {start!r}",
                status=status,
                method=method,
                url=shown,
                server_message=start,
            ) from None

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        next_page: NextPage,
        items: str | Callable[[Any], list[Any]] = "data",
    ) -> Iterator[Any]:
        """Yield every item of a paginated list, fetching one page at a time.

        :param path: the list's path.
        :param params: query parameters of the first request.
        :param next_page: given a page's JSON body, returns the next request: parameters
            merged into ``params`` (``{"cursor": body["next_cursor"]}``), a URL or path to
            fetch as is (``body["next"]``), or None after the last page.
        :param items: the key of the list in each page's body, or a function returning it.
        :raises SourceHttpError: as :meth:`get_json`, when a page holds no list, or when the
            next page is one already fetched (the pagination would never end).
        :raises SourceError: for a next link to another host (see :meth:`url_for`).

        Example (cursor pagination)::

            def next_cursor(body):
                cursor = body.get("next_cursor")
                return {"cursor": cursor} if cursor else None

            for contact in client.paginate("/contacts", {"limit": 100}, next_page=next_cursor):
                ...
        """
        return walk_pages(self, path, params, next_page=next_page, items=items)

    def close(self) -> None:
        """Close the session (when the client made it)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> JsonHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
