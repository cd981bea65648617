"""The client of Mixpanel's ingestion API: events to ``/import``, people to ``/engage``.

The ``ingestion`` sink (:mod:`mpconnect.sinks.ingestion`) adapts it to the engine's
``Sink`` interface.

For Mixpanel projects without the Datasets beta: the same run (extract, spool, upload with
retries, ledger, resume, summary) without versions: nothing to create or publish. A re-run
re-sends the snapshot; the deterministic ``$insert_id`` makes Mixpanel keep each event once.

``[mixpanel]`` settings it reads::

    sink = "ingestion"
    project_token = "${MIXPANEL_PROJECT_TOKEN}"   # records carry it; required
    project_id = "12345"                          # required with a service account
    region = "us"                                 # "us", "eu" or "in"; or api_url
    service_account_user = "mpconnect.abc.mp-service-account"
    service_account_secret = "${MIXPANEL_SERVICE_ACCOUNT_SECRET}"
    secret = "${MIXPANEL_SECRET}"                 # or the (legacy) project secret
    api_url = "https://127.0.0.1:8765"            # instead of region (the local server)
    ca_bundle = "ca.pem"                          # a private certificate authority
    allow_http_loopback = true                    # plain http:// to 127.0.0.1 only
    timeout = 60

Authentication: a service account (Basic ``user:secret`` and ``project_id``), else the
project secret (Basic user name), else the project token (Basic user name, empty
password). Secrets must be ``${NAME}`` references, never written in clear.

Every request body is a gzipped JSON array of at most 2000 records and 10 MB
uncompressed. ``/import`` is called with ``strict=1``: a 400 listing ``failed_records``
keeps the valid events and sends the failed ones to the run's quarantine file with
Mixpanel's reason. ``/engage`` is called with ``strict=1&verbose=1&ip=0`` and its body is
read, since it answers 200 even when updates fail. 429 and 5xx (and dropped connections
and timeouts) are retried by the engine with backoff; any other 4xx is not.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

import orjson
import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

import mpconnect
from mpconnect.errors import ApiError, ConfigError, RetryableApiError
from mpconnect.mixpanel.gzip_body import GZIP_LEVEL, gzip_body
from mpconnect.mixpanel.refusals import request_refusal
from mpconnect.sink_types import ImportResult, RecordKind
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

log = logging.getLogger("mpconnect.mixpanel.ingestion")

REGION_URLS = {
    "us": "https://api.mixpanel.com",
    "eu": "https://api-eu.mixpanel.com",
    "in": "https://api-in.mixpanel.com",
}
MAX_RECORDS = 2000
MAX_BYTES = 10 * 1024 * 1024
_ERROR_TEXT_LIMIT = 500


class IngestionSettings(BaseModel):
    """The ``[mixpanel]`` keys only the ingestion sink reads (besides the common ones)."""

    model_config = ConfigDict(extra="ignore")

    region: Literal["us", "eu", "in"] = "us"
    project_id: str | None = None
    service_account_user: str | None = None
    service_account_secret: SecretStr | None = None
    allow_http_loopback: bool = False
    gzip_level: int = Field(default=GZIP_LEVEL, ge=0, le=9)

    @field_validator("project_id", mode="before")
    @classmethod
    def _project_id_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("project_id")
    @classmethod
    def _project_id_is_digits(cls, value: str | None) -> str | None:
        if value is not None and not value.isdigit():
            raise ValueError('must be the project\'s numeric id, such as "12345"')
        return value


def _format_problems(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        problems.append(f"mixpanel.{key}: {err['msg']}")
    return "; ".join(problems)


class IngestionClient:
    """Sends batches to Mixpanel's ingestion API; thread-safe (a session per thread).

    :param settings: the ``[mixpanel]`` table (:class:`~mpconnect.sink.SinkSettings`).
    :raises ConfigError: naming the key, when a setting or the credentials are wrong.
    """

    def __init__(self, settings: Any) -> None:
        extra = settings.model_extra or {}
        if "service_account_secret" in extra and "service_account_secret" not in getattr(
            settings, "_references", ()
        ):
            raise ConfigError(
                "mixpanel.service_account_secret: secrets must not be written in clear; write "
                'service_account_secret = "${MIXPANEL_SERVICE_ACCOUNT_SECRET}" and export '
                "MIXPANEL_SERVICE_ACCOUNT_SECRET"
            )
        try:
            options = IngestionSettings.model_validate(extra)
        except ValidationError as exc:
            raise ConfigError(_format_problems(exc)) from None
        self.options = options
        self.base_url = self._base_url(settings.api_url, options)
        #: The key that sets the address, named when the server cannot be reached.
        self.url_key = "mixpanel.api_url" if settings.api_url else "mixpanel.region"
        self.timeout = float(settings.timeout)
        self.verify: bool | str = (
            str(Path(settings.ca_bundle).expanduser()) if (settings.ca_bundle) else True
        )
        self._auth, self._auth_name, self._project_id = self._credentials(settings, options)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------

    @staticmethod
    def _base_url(api_url: str | None, options: IngestionSettings) -> str:
        if not api_url:
            return REGION_URLS[options.region]
        parts = urlsplit(api_url)
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host:
            raise ConfigError(f"mixpanel.api_url: {api_url!r} is not an https:// URL")
        if parts.scheme == "http":
            if not is_loopback(host):
                raise ConfigError(
                    f"mixpanel.api_url: {api_url!r} is plain http; Mixpanel credentials are "
                    "only sent over https:// (plain http is allowed to a loopback address "
                    "with allow_http_loopback = true)"
                )
            if not options.allow_http_loopback:
                raise ConfigError(
                    f"mixpanel.api_url: {api_url!r} is plain http; add allow_http_loopback = "
                    "true to [mixpanel] to allow it for this loopback address"
                )
        return api_url.rstrip("/")

    @staticmethod
    def _credentials(
        settings: Any, options: IngestionSettings
    ) -> tuple[tuple[str, str], str, str | None]:
        """Return the Basic credentials, how to name them, and the project id to send."""
        user = options.service_account_user
        account_secret = options.service_account_secret
        if account_secret is not None and not user:
            raise ConfigError(
                "mixpanel.service_account_user: service_account_secret is set but not the "
                'service account\'s user name; add service_account_user = "..." to [mixpanel]'
            )
        if user:
            if account_secret is None or not account_secret.get_secret_value():
                raise ConfigError(
                    f"mixpanel.service_account_secret: the service account {user!r} needs its "
                    'secret; add service_account_secret = "${MIXPANEL_SERVICE_ACCOUNT_SECRET}" '
                    "to [mixpanel] and export MIXPANEL_SERVICE_ACCOUNT_SECRET"
                )
            if not options.project_id:
                raise ConfigError(
                    "mixpanel.project_id: a service account needs the project id; add "
                    'project_id = "12345" (Project Settings in Mixpanel) to [mixpanel]'
                )
            return (
                (user, account_secret.get_secret_value()),
                f"service account {user}",
                options.project_id,
            )
        secret = settings.secret.get_secret_value() if settings.secret else None
        if secret:
            return (secret, ""), "project secret", None
        if settings.project_token:
            return (settings.project_token, ""), "project token", None
        raise ConfigError(
            "mixpanel: the ingestion sink needs credentials: service_account_user and "
            'service_account_secret = "${MIXPANEL_SERVICE_ACCOUNT_SECRET}" with project_id, '
            'or the project token as project_token = "${MIXPANEL_PROJECT_TOKEN}"'
        )

    def describe(self) -> str:
        """Name the API and how it is authenticated (no secrets)."""
        project = f"project {self._project_id}, " if self._project_id else ""
        return f"Mixpanel ingestion API {self.base_url} ({project}{self._auth_name})"

    # -- HTTP ----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self._auth
            session.headers.update(
                {
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                    "Accept": "application/json",
                    "User-Agent": f"mpconnect/{mpconnect.__version__}",
                }
            )
            self._local.session = session
            self._local.posts = {}
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _post(self, path: str, params: dict[str, str], body: bytes, what: str) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            session = self._session()  # first: it makes this thread's posts
            # verify given per post: a session's own is overridden by $REQUESTS_CA_BUNDLE
            options = {"params": params, "verify": self.verify, "timeout": self.timeout}
            response = cached_post(self._local.posts, session, url, **options).post(body)
        except requests.exceptions.SSLError as exc:
            raise tls_error(exc, what, self.base_url, _reason(exc)) from None
        except requests.exceptions.Timeout:
            raise RetryableApiError(
                0, f"{what}: no answer from {url} within {self.timeout:g} s"
            ) from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            unreachable = why_unreachable(exc, url)
            if unreachable is not None:
                raise mark_unreachable(
                    RetryableApiError(0, unreachable_message(what, url, unreachable, self.url_key)),
                    unreachable,
                ) from None
            raise RetryableApiError(
                0, f"{what}: connection to {url} failed: {_reason(exc)}"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ApiError(0, f"{what}: request to {url} failed: {_reason(exc)}") from None
        if 300 <= response.status_code < 400:
            raise refuse_redirect(response, what)
        return response

    def _raise_for_status(self, response: requests.Response, what: str) -> NoReturn:
        status = response.status_code
        text = error_text(response, _ERROR_TEXT_LIMIT)
        if status == 429 or status >= 500:
            raise RetryableApiError(
                status,
                f"{what}: {text}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status in (401, 403):
            raise ApiError(
                status,
                f"{what}: Mixpanel refused the credentials "
                f"({self._auth_name}): {text}; {self._credentials_fix(status)}",
            )
        if status == 413:
            raise ApiError(status, f"{what}: the request is over Mixpanel's size limit: {text}")
        raise ApiError(status, f"{what}: {text}")

    def _credentials_fix(self, status: int) -> str:
        """Which keys hold the refused credentials, and what they must be."""
        if status == 403:
            return (
                "check mixpanel.project_token: Mixpanel refused the request with the "
                "project token the records carry"
            )
        if self._project_id:
            return (
                "check mixpanel.service_account_user, mixpanel.service_account_secret and "
                "mixpanel.project_id: the service account must belong to that project"
            )
        if self._auth_name == "project secret":
            return "check mixpanel.secret: it must be the project secret of this project"
        return (
            "check mixpanel.project_token, or set mixpanel.secret (the project secret) or "
            "a service account"
        )

    # -- sending -------------------------------------------------------------------------

    def send(self, kind: RecordKind, payload: bytes, count: int) -> ImportResult:
        """Send one batch: events to ``/import``, people records to ``/engage``."""
        body = gzip_body(payload, self.options.gzip_level)
        try:
            if kind == "events":
                return self._import_events(body, payload, count)
            return self._engage(body, payload, count)
        except ApiError as exc:
            if exc.status == 413 and count == 1:  # a record too big alone: quarantine it
                return ImportResult(
                    imported=0,
                    rejected=[(0, f"Mixpanel refused it as too large: {exc.server_message}")],
                )
            raise

    def _import_events(self, body: bytes, payload: bytes, count: int) -> ImportResult:
        what = f"/import of {count} events"
        params = {"strict": "1"}
        if self._project_id:
            params["project_id"] = self._project_id
        response = self._post("/import", params, body, what)
        if response.status_code == 200:
            data = json_body(response)
            imported = data.get("num_records_imported") if isinstance(data, dict) else None
            return ImportResult(imported=imported if isinstance(imported, int) else count)
        if response.status_code == 400:
            data = json_body(response)
            failed = data.get("failed_records") if isinstance(data, dict) else None
            if isinstance(failed, list) and failed:
                return _partial_result(data, failed, payload, count, what)
        self._raise_for_status(response, what)

    def _engage(self, body: bytes, payload: bytes, count: int) -> ImportResult:
        what = f"/engage of {count} profile updates"
        response = self._post("/engage", {"strict": "1", "verbose": "1", "ip": "0"}, body, what)
        if response.status_code != 200:
            self._raise_for_status(response, what)
        data = json_body(response)
        if data == 1 or (isinstance(data, dict) and data.get("status") == 1):
            return ImportResult(imported=count)
        if isinstance(data, dict):
            failed = data.get("failed_records")
            if isinstance(failed, list) and failed:
                return _partial_result(data, failed, payload, count, what)
            error = data.get("error") or "no reason given"
        else:
            error = error_text(response, _ERROR_TEXT_LIMIT)
        hint = (
            "; check mixpanel.project_token (the records carry it)"
            if "token" in str(error).lower()
            else ""
        )
        raise ApiError(200, f"{what}: Mixpanel refused the batch: {error}{hint}")

    def close(self) -> None:
        """Close every thread's HTTP session."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, such as ``[Errno 111] Connection refused``."""
    inner: Any = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    text = str(getattr(inner, "reason", None) or inner)
    if text.startswith("<") and ">: " in text:  # urllib3 prefixes the connection's repr
        text = text.split(">: ", 1)[1]
    return text


def _partial_result(
    data: dict[str, Any], failed: list[Any], payload: bytes, count: int, what: str
) -> ImportResult:
    """Turn Mixpanel's ``failed_records`` into rejected indexes with its reasons.

    A failed record is found by its ``index``, else by its ``$insert_id`` in the batch.

    :raises ApiError: when a failed record cannot be told apart, so nothing is lost unseen,
        and when every record was refused for the same reason (a wrong project token):
        that fails the run, naming the key to fix.
    """
    refusal = request_refusal(failed, count, _imported(data), what)
    if refusal is not None:
        raise ApiError(400, refusal)
    reasons: dict[int, list[str]] = {}
    by_insert_id: dict[str, int] | None = None
    for item in failed:
        item = item if isinstance(item, dict) else {}
        index = item.get("index")
        if not isinstance(index, int) or not 0 <= index < count:
            insert_id = item.get("$insert_id") or item.get("insert_id")
            if by_insert_id is None:
                by_insert_id = _insert_ids(payload)
            index = by_insert_id.get(insert_id) if isinstance(insert_id, str) else None
        if index is None:
            raise ApiError(
                400,
                f"{what}: Mixpanel refused a record it does not identify: "
                f"{str(item)[:_ERROR_TEXT_LIMIT]}",
            )
        message = str(item.get("message") or "failed validation")
        field_name = item.get("field")
        reason = (
            f"Mixpanel rejected {field_name}: {message}"
            if field_name
            else (f"Mixpanel rejected it: {message}")
        )
        reasons.setdefault(index, []).append(reason)
    rejected = [(index, "; ".join(texts)) for index, texts in sorted(reasons.items())]
    imported = data.get("num_records_imported")
    if not isinstance(imported, int):
        imported = count - len(rejected)
    if imported + len(rejected) != count:
        log.warning(
            "%s: Mixpanel imported %d and refused %d of %d records",
            what,
            imported,
            len(rejected),
            count,
        )
    return ImportResult(imported=imported, rejected=rejected)


def _imported(data: dict[str, Any]) -> int:
    """``num_records_imported`` of an answer (0 when absent: nothing was reported taken)."""
    imported = data.get("num_records_imported")
    return imported if isinstance(imported, int) else 0


def _insert_ids(payload: bytes) -> dict[str, int]:
    """Map each event's ``$insert_id`` in a batch to its index."""
    found: dict[str, int] = {}
    for index, record in enumerate(orjson.loads(payload)):
        props = record.get("properties") if isinstance(record, dict) else None
        if isinstance(props, dict) and isinstance(props.get("$insert_id"), str):
            found.setdefault(props["$insert_id"], index)
    return found
