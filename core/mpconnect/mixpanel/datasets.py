"""An HTTPS client for the Mixpanel Datasets API (``api-beta.mixpanel.com``).

It speaks the reference document exactly: Basic auth with the project or dataset secret
as the user name and an empty password, ``token`` on the version endpoints (form fields
for POST and PATCH, the query string for GET and DELETE, as the document's curl lines
send them), imports as form fields ``data`` (base64 of a JSON array of at most 1000
records), ``dataset_id``, ``dataset_version`` and ``verbose=1``.

Failures become exceptions carrying the HTTP status and the server's own error text:
:class:`~mpconnect.errors.RetryableApiError` for 429 (with ``retry_after``), 5xx,
timeouts and dropped connections (a TLS handshake cut off included; a refused connection
or a host name that does not resolve is marked unreachable and retried only a few times,
its message naming ``mixpanel.api_url``), :class:`~mpconnect.errors.ApiError` for the
rest (a 401 or 403 naming ``mixpanel.secret``). Redirects are refused, not followed
(see :mod:`mpconnect.transport.failures`).

The client is safe to call from several threads: each thread gets its own
``requests.Session``, so connections are reused without being shared.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import pybase64
import requests
from requests.adapters import HTTPAdapter

from mpconnect.errors import ApiError, ConfigError, RetryableApiError
from mpconnect.sink_types import RecordKind, VersionInfo
from mpconnect.transport.failures import (
    refuse_redirect,
    tls_error,
    unreachable_message,
    why_unreachable,
)
from mpconnect.transport.http import is_loopback
from mpconnect.transport.prepared import cached_post
from mpconnect.transport.responses import error_text, json_body
from mpconnect.transport.retry import mark_unreachable, parse_retry_after

DEFAULT_API_URL = "https://api-beta.mixpanel.com"
#: The most records one import request may hold, per the document.
MAX_IMPORT_RECORDS = 1000
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_IMPORT_PATHS: dict[str, str] = {"events": "/import-events", "people": "/import-people"}


def check_api_url(api_url: str, *, allow_http_loopback: bool = False) -> str:
    """Return ``api_url`` without a trailing slash, or refuse it before any request.

    :raises ConfigError: naming ``mixpanel.api_url``, for a URL that is not ``https://``
        (``http://`` is accepted only for a loopback host when ``allow_http_loopback``).
    """
    parts = urlsplit(api_url)
    if not parts.hostname:
        raise ConfigError(
            f"mixpanel.api_url: {api_url!r} is not a URL; "
            f"use https://HOST, such as {DEFAULT_API_URL}"
        )
    if parts.scheme == "https":
        return api_url.rstrip("/")
    if parts.scheme == "http":
        if allow_http_loopback and is_loopback(parts.hostname):
            return api_url.rstrip("/")
        loopback = (
            " (it is not a loopback address)"
            if allow_http_loopback
            else (
                "; for a local server on a loopback address, set allow_http_loopback = true "
                "in [mixpanel]"
            )
        )
        raise ConfigError(
            f"mixpanel.api_url: refusing {api_url}: plain http:// would send the secret in "
            f"clear text and the Datasets API rejects HTTP; use https://{loopback}"
        )
    raise ConfigError(
        f"mixpanel.api_url: {api_url!r}: unsupported scheme {parts.scheme!r}; use https://"
    )


def encode_import_form(payload: bytes, dataset_id: str, version_id: str) -> bytes:
    """Return the urlencoded import body for ``payload`` (a JSON array, UTF-8).

    Base64 goes as the document's curl lines send it, except that ``+`` (a space in a
    form body) is escaped; ``/`` and the ``=`` padding are left as they are, as every
    form parser reads them. The standard base64, by ``pybase64`` (SIMD): a 300 kB batch
    in 0.04 ms of CPU against 0.9 for the standard library's.
    """
    data = pybase64.b64encode(payload).replace(b"+", b"%2B")
    rest = f"&dataset_id={quote(dataset_id, safe='')}&dataset_version={quote(version_id, safe='')}"
    return b"".join((b"data=", data, rest.encode(), b"&verbose=1"))  # one copy, not three


class DatasetsClient:
    """The Datasets API over HTTPS.

    :param api_url: the API's base URL (default ``https://api-beta.mixpanel.com``).
    :param secret: the project secret or the dataset secret (Basic auth user name).
    :param project_token: the project token the version endpoints require.
    :param ca_bundle: a PEM file of certificate authorities to trust instead of the
        system's (for a local server).
    :param timeout: seconds to wait for a connection and for each read.
    :param allow_http_loopback: accept ``http://`` for a loopback host.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        secret: str,
        project_token: str | None = None,
        ca_bundle: Path | str | None = None,
        timeout: float = 60.0,
        allow_http_loopback: bool = False,
    ) -> None:
        self.api_url = check_api_url(api_url, allow_http_loopback=allow_http_loopback)
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            raise ConfigError(
                f"mixpanel.ca_bundle: {ca_bundle} does not exist or is not a "
                "file; give the PEM file of the certificate authority to trust"
            )
        self._auth = (secret, "")
        self.project_token = project_token
        self.verify: str | bool = (
            str(ca_bundle)
            if ca_bundle is not None
            else os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self.timeout = timeout
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<DatasetsClient {self.api_url}>"

    # -- transport -----------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # Read the proxy and CA settings of the environment once, not per request: on
            # 1000-record batches requests' per-call environment scan is a visible cost.
            session.trust_env = False
            session.proxies = requests.utils.get_environ_proxies(self.api_url)
            session.headers["Authorization"] = (
                "Basic " + base64.b64encode(f"{self._auth[0]}:".encode()).decode()
            )
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._local.session = session
            self._local.posts = {}
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> requests.Response:
        url = self.api_url + path
        what = f"{method} {path}"
        try:
            if body is not None and method == "POST" and params is None:
                session = self._session()  # first: it makes this thread's posts
                options = {"headers": _FORM, "verify": self.verify, "timeout": self.timeout}
                response = cached_post(self._local.posts, session, url, **options).post(body)
            else:
                response = self._session().request(
                    method,
                    url,
                    params=params,
                    data=form if body is None else body,
                    headers=_FORM if body is not None else None,
                    timeout=self.timeout,
                    verify=self.verify,  # per request: REQUESTS_CA_BUNDLE overrides a session's
                    allow_redirects=False,  # see mpconnect.transport.failures
                )
        except requests.exceptions.SSLError as exc:
            raise tls_error(exc, what, self.api_url, _reason(exc)) from None
        except requests.exceptions.Timeout:
            raise RetryableApiError(
                0, f"{what}: no answer from {self.api_url} within {self.timeout:g} s"
            ) from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            unreachable = why_unreachable(exc, self.api_url)
            if unreachable is not None:
                raise mark_unreachable(
                    RetryableApiError(
                        0, unreachable_message(what, self.api_url, unreachable, "mixpanel.api_url")
                    ),
                    unreachable,
                ) from None
            raise RetryableApiError(
                0, f"{what}: connection to {self.api_url} failed or was dropped ({_reason(exc)})"
            ) from None
        if response.status_code >= 400:
            raise _error_for(response, what)
        if response.status_code >= 300:
            raise refuse_redirect(response, what)
        return response

    def _token(self) -> dict[str, str]:
        if not self.project_token:
            raise ConfigError(
                "mixpanel.project_token: the Datasets API's version endpoints "
                'need the project token; add project_token = "..." to [mixpanel]'
            )
        return {"token": self.project_token}

    @staticmethod
    def _versions_path(dataset_id: str, version_id: str | None = None) -> str:
        path = f"/datasets/{quote(dataset_id, safe='')}/versions"
        return path if version_id is None else f"{path}/{quote(version_id, safe='')}"

    # -- operations ----------------------------------------------------------------------

    def create_version(self, dataset_id: str) -> VersionInfo:
        """Create a new version of ``dataset_id`` (``POST /datasets/<id>/versions``)."""
        response = self._request("POST", self._versions_path(dataset_id), form=self._token())
        return VersionInfo.from_api(_data(response, "POST versions"))

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        """Return the dataset's versions as the service lists them (``GET``)."""
        response = self._request("GET", self._versions_path(dataset_id), params=self._token())
        data = _data(response, "GET versions")
        if isinstance(data, dict):  # the document's last example shows a single object
            data = [data]
        if not isinstance(data, list):
            raise ApiError(response.status_code, f"GET versions: unexpected data {data!r:.200}")
        return [VersionInfo.from_api(item) for item in data]

    def update_state(
        self, dataset_id: str, version_id: str, *, readable: bool, writable: bool
    ) -> None:
        """Set a version's state; both ``readable`` and ``writable`` are always sent."""
        state = orjson.dumps({"readable": readable, "writable": writable}).decode()
        response = self._request(
            "PATCH",
            self._versions_path(dataset_id, version_id),
            form={**self._token(), "state": state},
        )
        _data(response, "PATCH version")

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Delete a version (token in the query string, as the document's example)."""
        response = self._request(
            "DELETE", self._versions_path(dataset_id, version_id), params=self._token()
        )
        _data(response, "DELETE version")

    def import_records(
        self, kind: RecordKind, dataset_id: str, version_id: str, payload: bytes
    ) -> None:
        """Import a JSON array of at most 1000 records (``payload``, UTF-8 bytes).

        :param kind: ``"events"`` (``/import-events``) or ``"people"`` (``/import-people``).
        """
        path = _IMPORT_PATHS[kind]
        body = encode_import_form(payload, dataset_id, version_id)
        response = self._request("POST", path, body=body)
        _check_import(response, f"POST {path}")

    def import_events(self, dataset_id: str, version_id: str, payload: bytes) -> None:
        """Import events: ``payload`` is a JSON array of Mixpanel events."""
        self.import_records("events", dataset_id, version_id, payload)

    def import_people(self, dataset_id: str, version_id: str, payload: bytes) -> None:
        """Import people records: ``payload`` is a JSON array of profile updates."""
        self.import_records("people", dataset_id, version_id, payload)

    def close(self) -> None:
        """Close every thread's session."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests exception, without the URL's repetition."""
    inner: BaseException = exc
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    if isinstance(reason, BaseException):
        inner = reason
    return f"{type(inner).__name__}: {inner}"[:300]


def _api_error(
    cls: type[ApiError], status: int, what: str, text: str, retry_after: float | None = None
) -> ApiError:
    """An error whose message names the call and whose ``server_message`` is ``text``."""
    error = cls(status, f"{what}: {text}", retry_after=retry_after)
    error.server_message = text
    return error


def _error_for(response: requests.Response, what: str) -> ApiError:
    status = response.status_code
    text = error_text(response)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return _api_error(RetryableApiError, status, what, text, retry_after)
    if status >= 500:
        return _api_error(RetryableApiError, status, what, text)
    if status in (401, 403):
        error = _api_error(
            ApiError,
            status,
            what,
            f"{text}; check mixpanel.secret: it must be "
            "the project secret or this dataset's secret (Project settings in "
            "Mixpanel)",
        )
        error.server_message = text
        return error
    return _api_error(ApiError, status, what, text)


def _data(response: requests.Response, what: str) -> Any:
    body = json_body(response)
    if not isinstance(body, dict) or "data" not in body:
        if isinstance(body, dict) and body.get("error"):
            raise _api_error(ApiError, response.status_code, what, str(body["error"]))
        raise ApiError(
            response.status_code, f'{what}: expected {{"data": ...}}, got {response.text[:200]!r}'
        )
    return body["data"]


def _check_import(response: requests.Response, what: str) -> None:
    body = json_body(response)
    if body == 1 or (isinstance(body, dict) and body.get("status") == 1):
        return
    if isinstance(body, dict) and body.get("error"):
        raise _api_error(ApiError, response.status_code, what, str(body["error"]))
    if body == 0 or isinstance(body, dict):
        raise ApiError(
            response.status_code,
            f"{what}: the server refused the import (answered {response.text[:100]!r})",
        )
    raise ApiError(
        response.status_code, f'{what}: expected 1 or {{"status": 1}}, got {response.text[:200]!r}'
    )
