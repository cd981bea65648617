"""The local Datasets API server: the embedded store behind HTTPS, faithful to the document.

Paths, methods, form fields, Basic auth, response bodies, the 1000-record cap, five
versions retained and ``is_live`` after a delay are those of
``reference/mixpanel-datasets-api.txt``. Parameters are read from form fields or the
query string, as the document's curl lines send them.

Fault injection (seeded, so tests are repeatable) answers some requests with 5xx, 429
with ``Retry-After``, added latency, or a connection closed without a response (before
or after the request took effect).

:func:`make_app` builds the aiohttp application; :class:`LocalDatasetsServer` runs it
over HTTPS with a local certificate authority for tests and plugin authors;
``mpconnect serve`` runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import orjson
from aiohttp import web

from mpconnect.datasets.ingestion_api import (
    INGESTION_ENDPOINTS,
    IngestionEndpoints,
    IngestionProject,
    add_ingestion_routes,
)
from mpconnect.datasets.store import DatasetStore, StoreError
from mpconnect.localserver import BackgroundServer, LocalCA

MAX_RECORDS = 1000
_DATASET_ID = re.compile(r"^[A-Za-z0-9]{1,255}$")
_READ_WRITE = ("readable", "writable")
_READ_ONLY = ("ready", "ready_at", "readable_at")
HTTPS_REQUIRED = ("HTTPS is required: the Datasets API rejects requests made over HTTP, "
                  "since they would send your secret in plain text")


# -- options and faults ------------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    """What the server accepts.

    :param project_token: the project's token (``token`` parameter and in every record).
    :param project_secret: the project secret, accepted for every dataset.
    :param dataset_secrets: dataset id → that dataset's own secret.
    :param max_records: the most records one import may hold.
    """

    project_token: str
    project_secret: str
    dataset_secrets: dict[str, str] = field(default_factory=dict)
    max_records: int = MAX_RECORDS

    def __repr__(self) -> str:
        return (f"ServerOptions(project_token={self.project_token!r}, project_secret='**', "
                f"dataset_secrets={sorted(self.dataset_secrets)})")


@dataclass(frozen=True)
class Faults:
    """Faults to inject; all off by default. Rates are probabilities per request.

    :param fail_rate: answer 500 without doing anything (1.0: a fault that never clears).
    :param throttle_rate: answer 429 with ``Retry-After``, at random.
    :param rate_limit: answer 429 with ``Retry-After`` past this many requests per second
        (0: no limit).
    :param retry_after: the ``Retry-After`` seconds to send (default: until the next
        one-second window of the rate limit, at least 1).
    :param latency_ms: delay every answer by this many milliseconds.
    :param drop_rate: close the connection without a response, before doing anything.
    :param lost_ack_rate: do the work, then close the connection without a response
        (the acknowledgement is lost; a client re-sends what was already stored).
    :param paths: inject only into requests whose path starts with one of these
        (empty: every request).
    """

    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    rate_limit: int = 0
    retry_after: float | None = None
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    lost_ack_rate: float = 0.0
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(self.paths))
        for name in ("fail_rate", "throttle_rate", "drop_rate", "lost_ack_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in ("rate_limit", "latency_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")


@dataclass
class _Decision:
    drop: bool = False
    throttle: float | None = None
    fail: bool = False
    lost_ack: bool = False
    latency: float = 0.0


class FaultInjector:
    """Decides, with a seeded random generator, which requests get which fault.

    Also counts requests received (``"METHOD /path"``) and faults injected, by kind.
    Thread-safe: tests change faults and read counters while the server runs.
    """

    def __init__(self, faults: Faults | None = None, seed: int = 0) -> None:
        self._faults = faults or Faults()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()
        self._peers: set[Any] = set()
        self._window = 0
        self._window_count = 0

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self._faults

    def set(self, **changes: Any) -> Faults:
        """Change some fault settings (names as in :class:`Faults`); returns the new ones."""
        with self._lock:
            self._faults = replace(self._faults, **changes)
            return self._faults

    def reset(self) -> None:
        """Turn every fault off."""
        with self._lock:
            self._faults = Faults()

    def decide(self, method: str, path: str, peer: Any = None) -> _Decision:
        """Count a request (and the client connection ``peer``) and decide its fault."""
        with self._lock:
            self._requests[f"{method} {path}"] += 1
            self._peers.add(peer)
            faults = self._faults
            draws = [self._random.random() for _ in range(4)]
            if faults.paths and not path.startswith(faults.paths):
                return _Decision()
            decision = _Decision(latency=faults.latency_ms / 1000)
            if draws[0] < faults.drop_rate:
                decision.drop = True
            elif (throttle := self._throttle(faults, draws[1])) is not None:
                decision.throttle = throttle
            elif draws[2] < faults.fail_rate:
                decision.fail = True
            elif draws[3] < faults.lost_ack_rate:
                decision.lost_ack = True
            for kind, hit in (("latency", decision.latency > 0), ("drop", decision.drop),
                              ("429", decision.throttle is not None), ("5xx", decision.fail),
                              ("lost_ack", decision.lost_ack)):
                if hit:
                    self._injected[kind] += 1
            return decision

    def _throttle(self, faults: Faults, draw: float) -> float | None:
        """Seconds to ask the client to wait, or None to let the request through."""
        if faults.rate_limit:
            now = time.monotonic()
            window = math.floor(now)
            if window != self._window:
                self._window, self._window_count = window, 0
            self._window_count += 1
            if self._window_count > faults.rate_limit:
                if faults.retry_after is not None:
                    return faults.retry_after
                return float(max(1, math.ceil(window + 1 - now)))
        if draw < faults.throttle_rate:
            return faults.retry_after if faults.retry_after is not None else 1.0
        return None

    def request_counts(self) -> dict[str, int]:
        """Requests received so far, keyed ``"METHOD /path"``."""
        with self._lock:
            return dict(self._requests)

    def faults_injected(self) -> dict[str, int]:
        """Faults injected so far: ``latency``, ``drop``, ``429``, ``5xx``, ``lost_ack``."""
        with self._lock:
            return dict(self._injected)

    def connections(self) -> int:
        """How many client connections (address and port) sent requests."""
        with self._lock:
            return len(self._peers)

    def reset_counts(self) -> None:
        """Zero the request, fault and connection counters."""
        with self._lock:
            self._requests.clear()
            self._injected.clear()
            self._peers.clear()


# -- request parsing ---------------------------------------------------------------------


class Refused(Exception):
    """A request the API refuses: ``status`` and the error text it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_form(body: bytes) -> dict[str, str]:
    """Parse an urlencoded body; ``data`` keeps ``+`` (curl sends base64 unescaped)."""
    params: dict[str, str] = {}
    for part in body.split(b"&"):
        if not part:
            continue
        raw_key, _, raw_value = part.partition(b"=")
        key = unquote_plus(raw_key.decode(), errors="strict")
        if key == "data":
            params[key] = _base64_field(raw_value)
        else:
            params[key] = unquote_plus(raw_value.decode(), errors="strict")
    return params


def _base64_field(raw: bytes) -> str:
    """Unescape a base64 form value; a raw ``+`` stays ``+`` (curl sends it unescaped)."""
    if b"%" in raw:
        raw = raw.replace(b"%2B", b"+")
        if b"%" in raw:
            return unquote_plus(raw.replace(b"+", b"%2B").decode("latin-1")).replace(" ", "+")
    return raw.decode("latin-1")


async def _params(request: web.Request) -> dict[str, str]:
    """Query-string parameters, overridden by form fields of the body."""
    params = dict(request.query)
    if request.body_exists:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            try:
                params.update(parse_form(await request.read()))
            except UnicodeDecodeError:
                raise Refused(400, "the form body is not valid UTF-8") from None
    if "data" in params:
        params["data"] = params["data"].replace(" ", "+")
    return params


def _basic_user(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise Refused(401, "unsupported authorization scheme: use Basic auth with the project "
                           "secret or the dataset secret as the user name")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Refused(401, "malformed Basic authorization header") from None
    return decoded.partition(":")[0]


def _shown(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def check_dataset_id(dataset_id: str | None, name: str = "dataset_id") -> str:
    """Return ``dataset_id``, or refuse it: missing, or not alphanumeric below 256 chars."""
    if not dataset_id:
        raise Refused(400, f"{name} is required")
    if not _DATASET_ID.match(dataset_id):
        problem = ("is longer than 255 characters" if len(dataset_id) > 255
                   else "is not alphanumeric")
        raise Refused(400, f"{name} {_shown(dataset_id)!r} {problem}: it must be an "
                           "alphanumeric string less than 256 characters")
    return dataset_id


# -- the API -----------------------------------------------------------------------------


class _Api:
    """The handlers, over one store and one set of options."""

    def __init__(self, store: DatasetStore, options: ServerOptions) -> None:
        self.store = store
        self.options = options
        self.executor: ThreadPoolExecutor | None = None

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking store call in the thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, func, *args)

    # checks ----------------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> str:
        """Return the secret if it is the project's or some dataset's, else refuse."""
        secret = _basic_user(request)
        if not secret:
            raise Refused(401, "missing credentials: use Basic auth with the project secret "
                               "or the dataset secret as the user name")
        if hmac.compare_digest(secret, self.options.project_secret):
            return secret
        if any(hmac.compare_digest(secret, s) for s in self.options.dataset_secrets.values()):
            return secret
        raise Refused(401, "invalid credentials: the user name is neither the project secret "
                           "nor a dataset secret")

    def authorize(self, secret: str, dataset_id: str) -> None:
        """Refuse a dataset secret used for another dataset."""
        if hmac.compare_digest(secret, self.options.project_secret):
            return
        own = self.options.dataset_secrets.get(dataset_id)
        if own is None or not hmac.compare_digest(secret, own):
            raise Refused(403, f"the dataset secret given is not the secret of dataset "
                               f"{dataset_id}; use that dataset's secret or the project secret")

    def check_token(self, params: dict[str, str], *, required: bool = True) -> None:
        """Refuse a missing (when required) or wrong ``token`` parameter."""
        token = params.get("token")
        if token is None or token == "":
            if required:
                raise Refused(400, "token is required: the project token, as a form field "
                                   "or in the query string")
            return
        if token != self.options.project_token:
            raise Refused(403, f"token {_shown(token)!r} is not this project's token")

    async def versions_request(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """Authenticate and check a request to ``/datasets/<id>/versions[...]``."""
        secret = self.authenticate(request)
        params = await _params(request)
        dataset_id = check_dataset_id(request.match_info["dataset_id"])
        self.authorize(secret, dataset_id)
        self.check_token(params)
        return dataset_id, params

    # version endpoints -----------------------------------------------------------------

    async def create_version(self, request: web.Request) -> web.Response:
        """``POST /datasets/<id>/versions``."""
        dataset_id, _ = await self.versions_request(request)
        info = await self.run(self.store.create_version, dataset_id)
        return _json({"data": info.to_api()})

    async def list_versions(self, request: web.Request) -> web.Response:
        """``GET /datasets/<id>/versions``."""
        dataset_id, _ = await self.versions_request(request)
        found = await self.run(self.store.list_versions, dataset_id)
        return _json({"data": [v.to_api() for v in found]})

    async def update_version(self, request: web.Request) -> web.Response:
        """``PATCH /datasets/<id>/versions/<version_id>``: only ``state`` can change."""
        dataset_id, params = await self.versions_request(request)
        readable, writable = _parse_state(params.get("state"))
        await self.run(self._update_state, dataset_id, request.match_info["version_id"],
                       readable, writable)
        return _json({"data": None})

    def _update_state(self, dataset_id: str, version_id: str, readable: bool,
                      writable: bool) -> None:
        self.store.update_state(dataset_id, version_id, readable=readable, writable=writable)

    async def delete_version(self, request: web.Request) -> web.Response:
        """``DELETE /datasets/<id>/versions/<version_id>``."""
        dataset_id, _ = await self.versions_request(request)
        await self.run(self.store.delete_version, dataset_id, request.match_info["version_id"])
        return _json({"data": None})

    # imports ---------------------------------------------------------------------------

    async def import_events(self, request: web.Request) -> web.Response:
        """``POST /import-events``."""
        return await self._import(request, "events")

    async def import_people(self, request: web.Request) -> web.Response:
        """``POST /import-people``."""
        return await self._import(request, "people")

    async def _import(self, request: web.Request, kind: str) -> web.Response:
        verbose = request.query.get("verbose") == "1"
        try:
            params = await _params(request)
            verbose = params.get("verbose") == "1"
            secret = self.authenticate(request)
            dataset_id = check_dataset_id(params.get("dataset_id"))
            self.authorize(secret, dataset_id)
            version_id = params.get("dataset_version")
            if not version_id:
                raise Refused(400, "dataset_version is required: the version_id to import into")
            self.check_token(params, required=False)
            data = params.get("data")
            if not data:
                raise Refused(400, "data is required: base64 of a JSON array of at most "
                                   f"{self.options.max_records} records")
            await self.run(self._import_sync, kind, dataset_id, version_id, data)
        except (Refused, StoreError) as exc:
            status = exc.status
            if verbose:
                return _json({"error": exc.message, "status": 0}, status)
            return web.Response(body=b"0", status=status, content_type="text/plain")
        if verbose:
            return _json({"error": None, "status": 1})
        return web.Response(body=b"1", content_type="text/plain")

    def _import_sync(self, kind: str, dataset_id: str, version_id: str, data: str) -> None:
        version = self.store.get_version(dataset_id, version_id)
        if version is None:
            if not self.store.has_dataset(dataset_id):
                raise Refused(404, f"dataset {dataset_id} does not exist")
            raise Refused(404, f"version {_shown(version_id)} of dataset {dataset_id} "
                               "does not exist")
        if not version.writable:
            raise Refused(400, f"version {version_id} of dataset {dataset_id} is not writable")
        records = decode_records(data, self.options.max_records)
        if kind == "events":
            check_events(records, self.options.project_token)
            self.store.import_events(dataset_id, version_id, records)
        else:
            check_people(records, self.options.project_token)
            self.store.import_people(dataset_id, version_id, records)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _parse_state(raw: str | None) -> tuple[bool, bool]:
    """Return ``(readable, writable)`` from the ``state`` parameter, or refuse it."""
    if raw is None or raw == "":
        raise Refused(400, 'state is required: a JSON object with both "readable" and '
                           '"writable"')
    try:
        state = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"state is not valid JSON: {exc}") from None
    if not isinstance(state, dict):
        raise Refused(400, 'state must be a JSON object with "readable" and "writable"')
    for key in state:
        if key in _READ_ONLY:
            raise Refused(400, f"state.{key} is read-only; only readable and writable can "
                               "be changed")
        if key not in _READ_WRITE:
            raise Refused(400, f"state.{_shown(key)} is not a field of the dataset version "
                               "state; only readable and writable can be changed")
    missing = [key for key in _READ_WRITE if key not in state]
    if missing:
        raise Refused(400, f"state.{missing[0]} is missing: updates to state must include "
                           'both "readable" and "writable"')
    for key in _READ_WRITE:
        if not isinstance(state[key], bool):
            raise Refused(400, f"state.{key} must be true or false")
    return state["readable"], state["writable"]


def decode_records(data: str, max_records: int = MAX_RECORDS) -> list[Any]:
    """Decode the ``data`` parameter: base64 of a JSON object or array of objects."""
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise Refused(400, f"data is not valid base64: {exc}") from None
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"data is not valid JSON once base64-decoded: {exc}") from None
    if isinstance(decoded, dict):
        return [decoded]
    if not isinstance(decoded, list):
        raise Refused(400, "data must hold a JSON object or an array of objects")
    if len(decoded) > max_records:
        raise Refused(400, f"data holds {len(decoded)} records; the limit is {max_records} "
                           "per request")
    return decoded


def _bad(index: int, problem: str) -> Refused:
    return Refused(400, f"record {index}: {problem}")


def check_events(records: list[Any], token: str) -> None:
    """Refuse the batch unless every event has a name, a distinct_id and this token."""
    for index, record in enumerate(records):
        if type(record) is not dict:
            raise _bad(index, "is not a JSON object")
        name = record.get("event")
        if not isinstance(name, str) or not name:
            raise _bad(index, 'event is missing: every event needs an "event" name')
        props = record.get("properties")
        if type(props) is not dict:
            raise _bad(index, "properties is missing or not an object")
        if props.get("token") != token:
            if props.get("token") in (None, ""):
                raise _bad(index, "properties.token is missing: every record needs the "
                                  "project token")
            raise _bad(index, "properties.token is not this project's token")
        if props.get("distinct_id") in (None, ""):
            raise _bad(index, "properties.distinct_id is missing")


def check_people(records: list[Any], token: str) -> None:
    """Refuse the batch unless every people record has ``$distinct_id`` and this ``$token``."""
    for index, record in enumerate(records):
        if type(record) is not dict:
            raise _bad(index, "is not a JSON object")
        if record.get("$token") != token:
            if record.get("$token") in (None, ""):
                raise _bad(index, "$token is missing: every record needs the project token")
            raise _bad(index, "$token is not this project's token")
        if record.get("$distinct_id") in (None, ""):
            raise _bad(index, "$distinct_id is missing")


# -- the applications ---------------------------------------------------------------------


def _fault_middleware(injector: FaultInjector) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        decision = injector.decide(request.method, request.path, peer)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.drop:
            await request.read()
            return _drop(request)
        if decision.throttle is not None:
            wait = decision.throttle
            header = str(int(wait)) if wait == int(wait) else f"{wait:g}"
            return _json_error(request, 429, f"rate limit exceeded: retry after {header} s",
                               headers={"Retry-After": header})
        if decision.fail:
            return _json_error(request, 500, "internal server error (injected fault)")
        try:
            response = await handler(request)
        except Refused as exc:
            return _json_error(request, exc.status, exc.message)
        except StoreError as exc:
            return _json_error(request, exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status == 405:
                return _json_error(request, 405, f"method {request.method} is not allowed on "
                                                 f"{request.path}")
            if exc.status == 404:
                return _json_error(request, 404, f"no endpoint {request.method} "
                                                 f"{request.path}")
            raise
        if decision.lost_ack:
            return _drop(request)
        return response

    return middleware


def _drop(request: web.Request) -> web.Response:
    """Close the connection; the response returned is never written."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


def _json_error(request: web.Request, status: int, message: str,
                headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if request.path in ("/import-events", "/import-people"):
        body["status"] = 0
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Mixpanel Datasets API"'
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/json", headers=headers)


def make_app(
    store: DatasetStore,
    options: ServerOptions,
    injector: FaultInjector | None = None,
    *,
    workers: int = 8,
    ingestion: IngestionProject | None = None,
) -> web.Application:
    """Build the Datasets API application over ``store``.

    :param injector: the fault injector (default: no faults).
    :param workers: threads for the store's blocking calls.
    :param ingestion: the project Mixpanel's ``/import`` and ``/engage`` stand in for
        (default: project 1 with the options' token and secret).
    """
    api = _Api(store, options)
    injector = injector or FaultInjector()
    app = web.Application(middlewares=[_fault_middleware(injector)],
                          client_max_size=64 * 1024 * 1024)

    async def startup(_: web.Application) -> None:
        api.executor = ThreadPoolExecutor(workers, thread_name_prefix="mpconnect-datasets")

    async def cleanup(_: web.Application) -> None:
        if api.executor is not None:
            api.executor.shutdown(wait=True)

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    versions = "/datasets/{dataset_id}/versions"
    app.router.add_post(versions, api.create_version)
    app.router.add_get(versions, api.list_versions, allow_head=False)
    app.router.add_patch(versions + "/{version_id}", api.update_version)
    app.router.add_delete(versions + "/{version_id}", api.delete_version)
    app.router.add_post("/import-events", api.import_events)
    app.router.add_post("/import-people", api.import_people)
    add_ingestion_routes(app, store, ingestion or IngestionProject(
        token=options.project_token, api_secret=options.project_secret))
    return app


def make_https_required_app(https_url: str | None = None) -> web.Application:
    """An application that answers every request with the HTTPS-required error (403)."""
    message = HTTPS_REQUIRED + (f"; use {https_url}" if https_url else "; use https://")

    async def refuse(request: web.Request) -> web.Response:
        return _json_error(request, 403, message)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    return app


# -- a server for tests and plugin authors ---------------------------------------------


class LocalDatasetsServer:
    """The local Datasets API over HTTPS, in a background thread, for tests.

    ::

        with LocalDatasetsServer(tmp_path, datasets=["DEMO"]) as server:
            client = DatasetsClient(server.url, secret=server.project_secret,
                                    project_token=server.project_token,
                                    ca_bundle=server.ca_path)
            server.set_faults(fail_rate=0.3)

    :param directory: where the store (``datasets.sqlite3``) and the CA (``ca/ca.pem``) go.
    :param datasets: datasets that exist (others are unknown, as in the real service).
    :param live_delay: seconds from readable to live.
    :param http: also listen on plain HTTP, answering the HTTPS-required error
        (:attr:`http_url`).
    :param seed: seeds fault injection; the other keywords are :class:`Faults` fields.
    :param ingestion: the project ``/import`` and ``/engage`` stand in for (see
        :attr:`ingestion`).
    """

    def __init__(
        self,
        directory: Path,
        *,
        datasets: tuple[str, ...] | list[str] = ("DEMO",),
        project_token: str = "local-project-token",
        project_secret: str = "local-project-secret",
        dataset_secrets: dict[str, str] | None = None,
        live_delay: float = 0.0,
        http: bool = False,
        seed: int = 0,
        store_path: Path | None = None,
        ingestion: IngestionProject | None = None,
        **faults: Any,
    ) -> None:
        self.directory = Path(directory)
        self.project_token = project_token
        self.project_secret = project_secret
        self.options = ServerOptions(project_token, project_secret, dict(dataset_secrets or {}))
        self.store = DatasetStore(store_path or self.directory / "datasets.sqlite3",
                                  live_delay=live_delay)
        for dataset_id in datasets:
            check_dataset_id(dataset_id)
            self.store.ensure_dataset(dataset_id)
        self.injector = FaultInjector(Faults(**faults), seed)
        self._ca = LocalCA(self.directory / "ca")
        self.ca_path = self._ca.ca_path
        self._server = BackgroundServer(make_app(self.store, self.options, self.injector,
                                                 ingestion=ingestion),
                                        ssl_context=self._ca.server_context())
        self._http_server: BackgroundServer | None = None
        self._want_http = http

    def __repr__(self) -> str:
        return f"<LocalDatasetsServer {self.url}>"

    @property
    def url(self) -> str:
        """The HTTPS base URL, such as ``https://127.0.0.1:54321``."""
        return self._server.url

    @property
    def http_url(self) -> str:
        """The plain-HTTP URL that refuses every request (needs ``http=True``)."""
        if self._http_server is None:
            raise RuntimeError("start the server with http=True to get a plain-HTTP listener")
        return self._http_server.url

    def start(self) -> LocalDatasetsServer:
        """Start serving; returns once the ports are bound."""
        self._server.start()
        if self._want_http:
            self._http_server = BackgroundServer(make_https_required_app(self.url)).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._http_server is not None:
            self._http_server.stop()
        self._server.stop()
        self.store.close()

    def __enter__(self) -> LocalDatasetsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ingestion(self) -> IngestionEndpoints:
        """The ``/import`` and ``/engage`` handlers: their project, faults and counters."""
        return self._server.app[INGESTION_ENDPOINTS]

    # faults and counters ---------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self.injector.faults

    def set_faults(self, **changes: Any) -> Faults:
        """Change fault settings while running (``fail_rate=1.0``, ``rate_limit=5``...)."""
        return self.injector.set(**changes)

    def reset_faults(self) -> None:
        """Turn every fault off."""
        self.injector.reset()

    def set_live_delay(self, seconds: float) -> None:
        """Change the time from readable to live."""
        self.store.live_delay = seconds

    def request_counts(self) -> dict[str, int]:
        """Requests received, keyed ``"METHOD /path"``."""
        return self.injector.request_counts()

    def requests_to(self, path: str, method: str | None = None) -> int:
        """How many requests ``path`` received (of ``method``, if given)."""
        return sum(count for key, count in self.request_counts().items()
                   if key.split(" ", 1)[1] == path
                   and (method is None or key.split(" ", 1)[0] == method))

    def faults_injected(self) -> dict[str, int]:
        """Faults injected so far, by kind (``drop``, ``429``, ``5xx``, ``lost_ack``...)."""
        return self.injector.faults_injected()

    def connections(self) -> int:
        """How many client connections sent requests (connection reuse shows here)."""
        return self.injector.connections()

    def reset_counts(self) -> None:
        """Zero the request, fault and connection counters."""
        self.injector.reset_counts()

