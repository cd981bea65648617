"""Mixpanel's ingestion endpoints, ``POST /import`` and ``POST /engage``, for the local server.

:func:`add_ingestion_routes` adds them to an aiohttp application, so the ``ingestion`` sink
can be tried and tested offline. They check what Mixpanel checks and answer as it answers:

- ``/import`` takes a JSON array (or newline-delimited JSON) of at most 2000 events and
  10 MB uncompressed, gzip or not, authenticated by a service account (Basic
  ``user:secret`` with ``project_id``), the project token (Basic user name, empty
  password) or the project secret (Basic user name). With ``strict=1`` every event is
  validated: event name, ``time`` (seconds or milliseconds, after 1971-01-01 and at most
  an hour ahead), ``distinct_id`` (not a placeholder), ``$insert_id`` (at most 36 letters,
  digits or ``-``), ``token`` (the project's). Valid events are stored; when any failed
  the answer is Mixpanel's 400 listing ``failed_records``.
- ``/engage`` takes at most 2000 profile updates; it answers 200 even when updates fail
  validation, with ``{"status": 0, "error": ..., "failed_records": [...]}`` under
  ``strict=1`` (the body says what happened, as Mixpanel's does with ``verbose=1``).

What is accepted goes into a :class:`~mpconnect.datasets.store.DatasetStore`, in the dataset
``PROJECT<project_id>`` (``mpconnect inspect PROJECT<project_id>``), in one version that stays
readable and writable for ever. Events are unique by ``$insert_id`` there, so a re-sent
snapshot does not count twice; identical profile updates are kept once.

:class:`IngestionFaults` scripts failures (429 with Mixpanel's body, 5xx, any 4xx, dropped
connections, answers lost after the work is done) or makes 429s and 503s happen at random
rates; :class:`IngestionStats` counts what arrived, for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
import re
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from mpconnect.datasets.store import DatasetStore

__all__ = [
    "IngestionEndpoints",
    "IngestionFaults",
    "IngestionProject",
    "IngestionStats",
    "add_ingestion_routes",
]

MAX_RECORDS = 2000
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PROPERTIES = 255
#: 1971-01-01T00:00:00Z: Mixpanel rejects events before it.
MIN_EVENT_TIME = 31_536_000
FUTURE_LEEWAY = 3600
#: Above this an event time is read as milliseconds.
MILLISECONDS_FROM = 100_000_000_000
#: Placeholder ids Mixpanel refuses as ``distinct_id`` and ``$insert_id`` (its documented list).
DENIED_IDS = frozenset({
    "00000000-0000-0000-0000-000000000000", "anon", "anonymous", "nil", "none", "null", "n/a",
    "na", "undefined", "unknown", "<nil>", "0", "-1", "true", "false", "[]", "{}",
})
PROFILE_OPERATIONS = ("$set", "$set_once", "$add", "$union", "$append", "$remove", "$unset",
                      "$delete")
PROFILE_OPTIONS = frozenset({"$ip", "$time", "$ignore_time", "$ignore_alias", "$latitude",
                             "$longitude"})
_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_READ_CHUNK = 256 * 1024
_RATE_LIMITED = {
    "code": 429,
    "error": "Project exceeded rate limits. Please retry the request with exponential backoff.",
    "status": "Too Many Requests",
}
_SERVER_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                  504: "Gateway Timeout"}
#: A scripted fault that closes the connection without an answer, doing nothing.
DROP = -1
#: A scripted fault that does the work, then closes the connection without an answer
#: (the acknowledgement is lost: a client re-sends what was already stored).
LOST_ACK = -2


@dataclass
class IngestionProject:
    """The Mixpanel project the local endpoints stand in for.

    :param project_id: the project id service accounts name with ``project_id``.
    :param token: the project token events and profile updates must carry; ``None``
        accepts any token.
    :param service_accounts: service account user names and their secrets.
    :param api_secret: the (legacy) project secret, accepted as Basic user name.

    A project with no token, no service account and no secret accepts any credentials.
    """

    project_id: str = "1"
    token: str | None = None
    service_accounts: Mapping[str, str] = field(default_factory=dict)
    api_secret: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        accounts = ", ".join(sorted(self.service_accounts))
        return f"IngestionProject(project_id={self.project_id!r}, service_accounts=[{accounts}])"

    @property
    def dataset_id(self) -> str:
        """The store dataset that holds what the endpoints accepted."""
        return f"PROJECT{self.project_id}"

    @property
    def is_open(self) -> bool:
        """True when no credential is configured, so any is accepted."""
        return not (self.token or self.service_accounts or self.api_secret)


@dataclass
class IngestionFaults:
    """Failures the endpoints answer instead of doing the work.

    Scripted faults (:meth:`fail_next`) come first, in order; then each request fails with
    ``rate_limit_rate`` probability as a 429 and ``error_rate`` as a 503.

    :param rate_limit_rate: share of requests answered 429.
    :param error_rate: share of requests answered 503.
    :param retry_after: a ``Retry-After`` header (seconds) on 429s; Mixpanel sends none.
    :param latency: seconds each request waits before it is answered.
    :param seed: seed of the random choices, for repeatable runs.
    """

    rate_limit_rate: float = 0.0
    error_rate: float = 0.0
    retry_after: float | None = None
    latency: float = 0.0
    seed: int | None = None
    _script: deque[tuple[str | None, int]] = field(default_factory=deque, init=False,
                                                   repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def fail_next(self, *statuses: int, path: str | None = None) -> None:
        """Answer the next requests with these statuses (429, 5xx, 4xx), or :data:`DROP`
        or :data:`LOST_ACK` them.

        :param path: only requests to this path (``"/import"`` or ``"/engage"``).
        """
        with self._lock:
            self._script.extend((path, status) for status in statuses)

    def pick(self, path: str) -> int | None:
        """Return the fault for a request to ``path``, or None to serve it."""
        with self._lock:
            for item in self._script:
                if item[0] in (None, path):
                    self._script.remove(item)
                    return item[1]
        draw = self._random.random()
        if draw < self.rate_limit_rate:
            return 429
        if draw < self.rate_limit_rate + self.error_rate:
            return 503
        return None


@dataclass
class IngestionStats:
    """What the endpoints received: requests per path and status, records, gzip use."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    gzip_requests: Counter[str] = field(default_factory=Counter)
    batch_sizes: dict[str, list[int]] = field(
        default_factory=lambda: {"/import": [], "/engage": []})
    largest_body: dict[str, int] = field(default_factory=lambda: {"/import": 0, "/engage": 0})
    records_stored: Counter[str] = field(default_factory=Counter)
    records_failed: Counter[str] = field(default_factory=Counter)
    #: How ``/import`` requests authenticated: service account, project token or secret.
    auth: Counter[str] = field(default_factory=Counter)
    #: The query parameters of the last request to each path.
    last_params: dict[str, dict[str, str]] = field(default_factory=dict)

    def count(self, path: str, status: int | None = None) -> int:
        """Requests to ``path`` (answered ``status``, if given)."""
        return sum(n for (p, s), n in self.requests.items()
                   if p == path and (status is None or s == status))


class _Refused(Exception):
    """A request refused as a whole: answered ``status`` with ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body


def _failure(index: int, record: Any, field_name: str, message: str) -> dict[str, Any]:
    insert_id = None
    if isinstance(record, dict):
        props = record.get("properties")
        if isinstance(props, dict):
            insert_id = props.get("$insert_id")
    return {"index": index, "$insert_id": insert_id, "field": field_name, "message": message}


def _id_problem(value: Any, name: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"'{name}' is invalid: must be a string"
    if str(value).strip().lower() in DENIED_IDS:
        return f"'{name}' is invalid: {value!r} is a placeholder value Mixpanel does not allow"
    return None


def check_event(record: Any, token: str | None, now: float, *,
                check_size: bool = True) -> tuple[str, str] | None:
    """Validate one event as Mixpanel's strict mode does.

    :param token: the project token ``properties.token`` must equal, if any.
    :param now: the server's clock, epoch seconds.
    :param check_size: check the 1 MB limit (needless when the whole body is smaller).
    :returns: ``(field, message)`` for the first problem, or None when the event is valid.
    """
    if not isinstance(record, dict):
        return "", "each event must be a JSON object"
    name = record.get("event")
    if not isinstance(name, str) or not name.strip():
        return "event", "'event' is required and must be a non-empty string"
    props = record.get("properties")
    if not isinstance(props, dict):
        return "properties", "'properties' is required and must be an object"
    if len(props) > MAX_PROPERTIES:
        return "properties", f"'properties' has {len(props)} properties; the limit is 255"
    when = props.get("time")
    if when is None:
        return "properties.time", "'properties.time' is required"
    if isinstance(when, bool) or not isinstance(when, int | float):
        return ("properties.time",
                "'properties.time' is invalid: must be specified as seconds since epoch")
    seconds = when / 1000 if when >= MILLISECONDS_FROM else when
    if seconds < MIN_EVENT_TIME:
        return "properties.time", "'properties.time' is invalid: must be after 1971-01-01"
    if seconds > now + FUTURE_LEEWAY:
        return ("properties.time",
                "'properties.time' is invalid: must not be more than 1 hour in the future")
    if "distinct_id" not in props:
        return "properties.distinct_id", "'properties.distinct_id' is required"
    problem = _id_problem(props["distinct_id"], "properties.distinct_id")
    if problem:
        return "properties.distinct_id", problem
    insert_id = props.get("$insert_id")
    if insert_id is None:
        return "properties.$insert_id", "'properties.$insert_id' is required"
    if (not isinstance(insert_id, str) or not _INSERT_ID.fullmatch(insert_id)
            or insert_id.lower() in DENIED_IDS):
        return ("properties.$insert_id", "'properties.$insert_id' is invalid: must be at most "
                "36 bytes of letters, digits and '-'")
    if token is not None and "token" in props and props["token"] != token:
        return "properties.token", "'properties.token' is not this project's token"
    if check_size and len(orjson.dumps(record)) > MAX_RECORD_BYTES:
        return "", "event is larger than 1 MB of JSON"
    return None


def check_profile_update(record: Any, token: str | None, *,
                         check_size: bool = True) -> tuple[str, str] | None:
    """Validate one ``/engage`` profile update.

    :param token: the project token ``$token`` must equal, if any.
    :param check_size: check the 1 MB limit (needless when the whole body is smaller).
    :returns: ``(field, message)`` for the first problem, or None when it is valid.
    """
    if not isinstance(record, dict):
        return "", "each profile update must be a JSON object"
    if "$token" not in record:
        return "$token", "'$token' is required"
    if token is not None and record["$token"] != token:
        return "$token", "'$token' is not this project's token"
    if "$distinct_id" not in record:
        return "$distinct_id", "'$distinct_id' is required"
    problem = _id_problem(record["$distinct_id"], "$distinct_id")
    if problem:
        return "$distinct_id", problem
    operations = [key for key in record if key in PROFILE_OPERATIONS]
    if not operations:
        return "", f"a profile update needs one of {', '.join(PROFILE_OPERATIONS)}"
    for key in record:
        if key not in PROFILE_OPERATIONS and key not in PROFILE_OPTIONS and key not in (
                "$token", "$distinct_id"):
            return key, f"'{key}' is not a profile update key"
    for key in operations:
        value = record[key]
        if key == "$delete":
            continue
        if key == "$unset":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return key, "'$unset' must be a list of property names"
            continue
        if not isinstance(value, dict):
            return key, f"'{key}' must be an object"
        if len(value) > MAX_PROPERTIES:
            return key, f"'{key}' has {len(value)} properties; the limit is 255"
        for name, item in value.items():
            if key == "$add" and (isinstance(item, bool) or not isinstance(item, int | float)):
                return f"{key}.{name}", f"'{key}.{name}' must be a number"
            if key == "$union" and not isinstance(item, list):
                return f"{key}.{name}", f"'{key}.{name}' must be a list"
    if check_size and len(orjson.dumps(record)) > MAX_RECORD_BYTES:
        return "", "profile update is larger than 1 MB of JSON"
    return None


class IngestionEndpoints:
    """The request handlers; one instance per application.

    :param store: where accepted records go.
    :param project: the project and its credentials.
    :param faults: failures to inject.
    """

    def __init__(self, store: DatasetStore, project: IngestionProject,
                 faults: IngestionFaults) -> None:
        self.store = store
        self.project = project
        self.faults = faults
        self.stats = IngestionStats()
        self._version_id: str | None = None
        self._version_lock = threading.Lock()

    @property
    def dataset_id(self) -> str:
        """The store dataset holding what was accepted."""
        return self.project.dataset_id

    def version_id(self) -> str:
        """The always-writable version of :attr:`dataset_id`, created on first use."""
        with self._version_lock:
            if self._version_id is None:
                dataset = self.dataset_id
                versions = self.store.list_versions(dataset) if self.store.has_dataset(
                    dataset) else []
                version_id = (versions[0].version_id if versions else
                              self.store.create_version(dataset, create_dataset=True).version_id)
                self.store.update_state(dataset, version_id, readable=True, writable=True)
                self._version_id = version_id
            return self._version_id

    # -- request plumbing --------------------------------------------------------------

    async def _read_body(self, request: web.Request, path: str) -> bytes:
        """Read at most 10 MB of uncompressed body (aiohttp usually inflates gzip itself)."""
        self.stats.last_params[path] = dict(request.query)
        compressed = request.headers.get("Content-Encoding", "").lower() == "gzip"
        if compressed:
            self.stats.gzip_requests[path] += 1
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = await request.content.read(_READ_CHUNK)
            except RequestPayloadError:
                raise _Refused(400, _bad_request("request body is not valid gzip")) from None
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
        body = b"".join(chunks)
        if compressed and body[:2] == b"\x1f\x8b":  # not inflated by the server
            try:
                inflater = zlib.decompressobj(wbits=31)
                body = inflater.decompress(body, MAX_BODY_BYTES + 1)
            except zlib.error:
                raise _Refused(400, _bad_request("request body is not valid gzip")) from None
            if len(body) > MAX_BODY_BYTES:
                raise _too_large()
        self.stats.largest_body[path] = max(self.stats.largest_body[path], len(body))
        return body

    def _parse(self, body: bytes, content_type: str, *, one_object: bool = False) -> list[Any]:
        try:
            if "ndjson" in content_type:
                records = [orjson.loads(line) for line in body.splitlines() if line.strip()]
            else:
                records = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Refused(400, _bad_request(f"request body is not valid JSON: {exc}")) from None
        if one_object and isinstance(records, dict):
            records = [records]
        if not isinstance(records, list) or not records:
            raise _Refused(400, _bad_request("request body must be a non-empty JSON array"))
        if len(records) > MAX_RECORDS:
            raise _Refused(400, _bad_request(
                f"request has {len(records)} records; the limit is {MAX_RECORDS} per request"))
        return records

    def _authenticate(self, request: web.Request) -> str:
        """Check Basic credentials as ``/import`` does; return how, or raise 401."""
        project = self.project
        header = request.headers.get("Authorization", "")
        user = password = None
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = None
        if not user:
            raise _Refused(401, _unauthorized("missing Basic credentials"))
        if project.is_open:
            return "any credentials"
        project_id = request.query.get("project_id")
        if project_id is not None:
            if project_id != project.project_id:
                raise _Refused(401, _unauthorized(f"project {project_id} is not this project"))
            if project.service_accounts.get(user) != password or password == "":
                raise _Refused(401, _unauthorized("Invalid credentials"))
            return "service account"
        if user == project.token and not password:
            return "project token"
        if project.api_secret is not None and user == project.api_secret:
            return "project secret"
        raise _Refused(401, _unauthorized("Invalid credentials"))

    async def _fault(self, request: web.Request, path: str) -> tuple[web.StreamResponse | None,
                                                                      bool]:
        """Return the fault's answer (None: do the work) and whether to lose the answer."""
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        status = self.faults.pick(path)
        if status is None:
            return None, False
        self.stats.requests[path, status] += 1
        if status == LOST_ACK:
            return None, True
        if status == DROP:
            return _drop(request), False
        if status == 429:
            headers = {}
            if self.faults.retry_after is not None:
                headers["Retry-After"] = f"{self.faults.retry_after:g}"
            return web.json_response(_RATE_LIMITED, status=429, headers=headers), False
        if status < 500:
            return web.json_response({"code": status, "error": "injected fault",
                                      "status": "Bad Request"}, status=status), False
        reason = _SERVER_ERRORS.get(status, "Server Error")
        return web.json_response({"code": status, "error": reason, "status": reason},
                                 status=status), False

    async def _store(self, kind: str, records: list[Any]) -> None:
        if not records:
            return
        loop = asyncio.get_running_loop()

        def write() -> None:
            version_id = self.version_id()
            if kind == "events":
                self.store.import_events(self.dataset_id, version_id, records)
            else:
                self.store.import_people(self.dataset_id, version_id, records)

        await loop.run_in_executor(None, write)

    # -- handlers ----------------------------------------------------------------------

    async def import_events(self, request: web.Request) -> web.StreamResponse:
        """``POST /import``: validate, store the valid events, answer as Mixpanel does."""
        path = "/import"
        try:
            body = await self._read_body(request, path)
            fault, lost_ack = await self._fault(request, path)
            if fault is not None:
                return fault
            self.stats.auth[self._authenticate(request)] += 1
            records = self._parse(body, request.headers.get("Content-Type", ""))
        except _Refused as refused:
            self.stats.requests[path, refused.status] += 1
            return web.json_response(refused.body, status=refused.status)
        self.stats.batch_sizes[path].append(len(records))
        token = self.project.token
        now = time.time()
        valid: list[Any] = []
        failed: list[dict[str, Any]] = []
        check_size = len(body) > MAX_RECORD_BYTES
        for index, record in enumerate(records):
            problem = check_event(record, token, now, check_size=check_size)
            if problem is None:
                valid.append(_normalise_time(record))
            else:
                failed.append(_failure(index, record, *problem))
        await self._store("events", valid)
        self.stats.records_stored[path] += len(valid)
        self.stats.records_failed[path] += len(failed)
        if lost_ack:
            return _drop(request)
        strict = request.query.get("strict") == "1"
        if failed and strict:
            self.stats.requests[path, 400] += 1
            return web.json_response({
                "code": 400,
                "error": "some data points in the request failed validation",
                "failed_records": failed,
                "num_records_imported": len(valid),
                "status": "Bad Request",
            }, status=400)
        self.stats.requests[path, 200] += 1
        return web.json_response({"code": 200, "num_records_imported": len(valid),
                                  "status": "OK"})

    async def engage(self, request: web.Request) -> web.StreamResponse:
        """``POST /engage``: validate and store profile updates; 200 with the verdict."""
        path = "/engage"
        verbose = request.query.get("verbose") == "1" or request.query.get("strict") == "1"
        try:
            body = await self._read_body(request, path)
            fault, lost_ack = await self._fault(request, path)
            if fault is not None:
                return fault
            records = self._parse_engage(body, request.headers.get("Content-Type", ""))
        except _Refused as refused:
            if refused.status == 413:
                self.stats.requests[path, 413] += 1
                return web.json_response(refused.body, status=413)
            self.stats.requests[path, 200] += 1
            return _engage_answer(verbose, {"status": 0, "error": refused.body["error"]})
        self.stats.batch_sizes[path].append(len(records))
        valid: list[Any] = []
        failed: list[dict[str, Any]] = []
        check_size = len(body) > MAX_RECORD_BYTES
        for index, record in enumerate(records):
            problem = check_profile_update(record, self.project.token, check_size=check_size)
            if problem is None:
                valid.append(record)
            else:
                field_name, message = problem
                failed.append({"index": index, "field": field_name, "message": message})
        await self._store("people", valid)
        self.stats.records_stored[path] += len(valid)
        self.stats.records_failed[path] += len(failed)
        if lost_ack:
            return _drop(request)
        self.stats.requests[path, 200] += 1
        if not failed:
            return _engage_answer(verbose, {"status": 1, "error": None})
        answer: dict[str, Any] = {"status": 0,
                                  "error": "some data points in the request failed validation"}
        if request.query.get("strict") == "1":
            answer["num_records_imported"] = len(valid)
            answer["failed_records"] = failed
        return _engage_answer(verbose, answer)

    def _parse_engage(self, body: bytes, content_type: str) -> list[Any]:
        if "form-urlencoded" in content_type:
            from urllib.parse import parse_qs

            data = parse_qs(body.decode("utf-8", "replace")).get("data", [""])[0]
            body = data.encode()
        return self._parse(body, content_type, one_object=True)


#: Where :func:`add_ingestion_routes` leaves its handlers in the application.
INGESTION_ENDPOINTS = web.AppKey("mpconnect_ingestion", IngestionEndpoints)


def _normalise_time(record: dict[str, Any]) -> dict[str, Any]:
    """Store event times as whole seconds, as Mixpanel reports them."""
    props = record["properties"]
    when = props["time"]
    if when >= MILLISECONDS_FROM:
        props["time"] = int(when // 1000)
    return record


def _drop(request: web.Request) -> web.Response:
    """Close the connection; the response returned is never written."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


def _bad_request(message: str) -> dict[str, Any]:
    return {"code": 400, "error": message, "status": "Bad Request"}


def _unauthorized(message: str) -> dict[str, Any]:
    return {"code": 401, "error": message, "status": "Unauthorized"}


def _too_large() -> _Refused:
    return _Refused(413, {"code": 413, "error": f"request exceeds max limit of {MAX_BODY_BYTES} "
                          "bytes", "status": "Request Entity Too Large"})


def _engage_answer(verbose: bool, answer: dict[str, Any]) -> web.Response:
    if verbose:
        return web.json_response(answer)
    return web.Response(text="1" if answer["status"] else "0")


def add_ingestion_routes(
    app: web.Application,
    store: DatasetStore,
    project: IngestionProject | None = None,
    faults: IngestionFaults | None = None,
) -> IngestionEndpoints:
    """Add ``POST /import`` and ``POST /engage`` to ``app``; return their handlers' object.

    :param app: the local server's aiohttp application (before it starts).
    :param store: the store accepted records go to (dataset ``PROJECT<project_id>``).
    :param project: the project id, token and credentials to check (default: project
        ``1``, any credentials).
    :param faults: failures to inject (default: none).

    Example::

        app = web.Application()
        endpoints = add_ingestion_routes(app, DatasetStore(path),
                                         IngestionProject("12345", token="abc"))
        with BackgroundServer(app, ssl_context=ca.server_context()) as server:
            ...
        endpoints.stats.count("/import", 200)
    """
    endpoints = IngestionEndpoints(store, project or IngestionProject(),
                                   faults or IngestionFaults())
    app.router.add_post("/import", endpoints.import_events)
    app.router.add_post("/engage", endpoints.engage)
    app[INGESTION_ENDPOINTS] = endpoints
    return endpoints
