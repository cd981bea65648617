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

What is accepted goes into a :class:`~mpconnect.store.datasets.DatasetStore`, in the dataset
``PROJECT<project_id>`` (``mpconnect inspect PROJECT<project_id>``), in one version that stays
readable and writable for ever. Events are unique by ``$insert_id`` there, so a re-sent
snapshot does not count twice; identical profile updates are kept once.

:class:`IngestionFaults` scripts failures (429 with Mixpanel's body, 5xx, any 4xx, dropped
connections, answers lost after the work is done) or makes 429s and 503s happen at random
rates; :class:`IngestionStats` counts what arrived, for tests and benchmarks.

This module holds the handlers and :func:`add_ingestion_routes`; the checks, body reading,
answers, faults, project and counters each have their own ``ingestion_*`` module, and their
public names are importable from here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiohttp import web

from mpconnect.emulator.ingestion_answers import RATE_LIMITED, IngestionRefused, engage_answer
from mpconnect.emulator.ingestion_body import parse_engage, parse_records, read_body
from mpconnect.emulator.ingestion_checks import (
    DENIED_IDS,
    FUTURE_LEEWAY,
    MAX_BODY_BYTES,
    MAX_PROPERTIES,
    MAX_RECORD_BYTES,
    MAX_RECORDS,
    MILLISECONDS_FROM,
    MIN_EVENT_TIME,
    PROFILE_OPERATIONS,
    PROFILE_OPTIONS,
    check_event,
    check_profile_update,
    normalise_time,
    record_failure,
)
from mpconnect.emulator.ingestion_faults import DROP, LOST_ACK, IngestionFaults, fault_answer
from mpconnect.emulator.ingestion_project import IngestionProject
from mpconnect.emulator.ingestion_stats import IngestionStats
from mpconnect.emulator.project_limit import ProjectLimit
from mpconnect.emulator.responses import drop_connection
from mpconnect.store.datasets import DatasetStore

__all__ = [
    "DENIED_IDS",
    "DROP",
    "FUTURE_LEEWAY",
    "INGESTION_ENDPOINTS",
    "LOST_ACK",
    "MAX_BODY_BYTES",
    "MAX_PROPERTIES",
    "MAX_RECORDS",
    "MAX_RECORD_BYTES",
    "MILLISECONDS_FROM",
    "MIN_EVENT_TIME",
    "PROFILE_OPERATIONS",
    "PROFILE_OPTIONS",
    "IngestionEndpoints",
    "IngestionFaults",
    "IngestionProject",
    "IngestionStats",
    "add_ingestion_routes",
    "check_event",
    "check_profile_update",
]


class IngestionEndpoints:
    """The request handlers; one instance per application.

    :param store: where accepted records go.
    :param project: the project and its credentials.
    :param faults: failures to inject.
    :param limit: the project's rolling-window import budget (shared with the Datasets
        API's imports of the same server).
    """

    def __init__(
        self,
        store: DatasetStore,
        project: IngestionProject,
        faults: IngestionFaults,
        limit: ProjectLimit | None = None,
    ) -> None:
        self.store = store
        self.project = project
        self.faults = faults
        self.limit = limit or ProjectLimit()
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
                versions = (
                    self.store.list_versions(dataset) if self.store.has_dataset(dataset) else []
                )
                version_id = (
                    versions[0].version_id
                    if versions
                    else self.store.create_version(dataset, create_dataset=True).version_id
                )
                self.store.update_state(dataset, version_id, readable=True, writable=True)
                self._version_id = version_id
            return self._version_id

    # -- request plumbing --------------------------------------------------------------

    async def _read_body(self, request: web.Request, path: str) -> bytes:
        """Read the body (see :func:`read_body`), counting its parameters, gzip and size."""
        self.stats.last_params[path] = dict(request.query)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            self.stats.gzip_requests[path] += 1
        body = await read_body(request)
        self.stats.largest_body[path] = max(self.stats.largest_body[path], len(body))
        return body

    async def _fault(
        self, request: web.Request, path: str
    ) -> tuple[web.StreamResponse | None, bool]:
        """Return the fault's answer (None: do the work) and whether to lose the answer."""
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        status = self.faults.pick(path)
        if status is None:
            return None, False
        self.stats.requests[path, status] += 1
        answer = fault_answer(request, status, self.faults)
        return answer, answer is None

    async def _store(self, kind: str, records: list[Any]) -> None:
        if not records:
            return
        loop = asyncio.get_running_loop()

        def write() -> None:
            version_id = self.version_id()
            if kind == "events":
                self.store.import_events(self.dataset_id, version_id, records, full_key=True)
            else:
                self.store.import_people(self.dataset_id, version_id, records)

        await loop.run_in_executor(None, write)

    def _over_limit(self, path: str, records: int, size: int) -> web.Response | None:
        """The 429 answer when the import would exceed the project's budget, else None."""
        retry_after = self.limit.admit(records, size)
        if retry_after is None:
            return None
        self.stats.requests[path, 429] += 1
        return web.json_response(
            RATE_LIMITED, status=429, headers={"Retry-After": f"{retry_after:g}"}
        )

    # -- handlers ----------------------------------------------------------------------

    async def import_events(self, request: web.Request) -> web.StreamResponse:
        """``POST /import``: validate, store the valid events, answer as Mixpanel does."""
        path = "/import"
        try:
            body = await self._read_body(request, path)
            fault, lost_ack = await self._fault(request, path)
            if fault is not None:
                return fault
            self.stats.auth[
                self.project.authenticate(
                    request.headers.get("Authorization", ""), request.query.get("project_id")
                )
            ] += 1
            records = parse_records(body, request.headers.get("Content-Type", ""))
        except IngestionRefused as refused:
            self.stats.requests[path, refused.status] += 1
            return web.json_response(refused.body, status=refused.status)
        limited = self._over_limit(path, len(records), len(body))
        if limited is not None:
            return limited
        self.stats.batch_sizes[path].append(len(records))
        token = self.project.token
        now = time.time()
        valid: list[Any] = []
        failed: list[dict[str, Any]] = []
        check_size = len(body) > MAX_RECORD_BYTES
        for index, record in enumerate(records):
            problem = check_event(record, token, now, check_size=check_size)
            if problem is None:
                valid.append(normalise_time(record))
            else:
                failed.append(record_failure(index, record, *problem))
        await self._store("events", valid)
        self.stats.records_stored[path] += len(valid)
        self.stats.records_failed[path] += len(failed)
        if lost_ack:
            return drop_connection(request)
        strict = request.query.get("strict") == "1"
        if failed and strict:
            self.stats.requests[path, 400] += 1
            return web.json_response(
                {
                    "code": 400,
                    "error": "some data points in the request failed validation",
                    "failed_records": failed,
                    "num_records_imported": len(valid),
                    "status": "Bad Request",
                },
                status=400,
            )
        self.stats.requests[path, 200] += 1
        return web.json_response({"code": 200, "num_records_imported": len(valid), "status": "OK"})

    async def engage(self, request: web.Request) -> web.StreamResponse:
        """``POST /engage``: validate and store profile updates; 200 with the verdict."""
        path = "/engage"
        verbose = request.query.get("verbose") == "1" or request.query.get("strict") == "1"
        try:
            body = await self._read_body(request, path)
            fault, lost_ack = await self._fault(request, path)
            if fault is not None:
                return fault
            records = parse_engage(body, request.headers.get("Content-Type", ""))
        except IngestionRefused as refused:
            if refused.status == 413:
                self.stats.requests[path, 413] += 1
                return web.json_response(refused.body, status=413)
            self.stats.requests[path, 200] += 1
            return engage_answer(verbose, {"status": 0, "error": refused.body["error"]})
        limited = self._over_limit(path, len(records), len(body))
        if limited is not None:
            return limited
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
            return drop_connection(request)
        self.stats.requests[path, 200] += 1
        if not failed:
            return engage_answer(verbose, {"status": 1, "error": None})
        answer: dict[str, Any] = {
            "status": 0,
            "error": "some data points in the request failed validation",
        }
        if request.query.get("strict") == "1":
            answer["num_records_imported"] = len(valid)
            answer["failed_records"] = failed
        return engage_answer(verbose, answer)


#: Where :func:`add_ingestion_routes` leaves its handlers in the application.
INGESTION_ENDPOINTS = web.AppKey("mpconnect_ingestion", IngestionEndpoints)


def add_ingestion_routes(
    app: web.Application,
    store: DatasetStore,
    project: IngestionProject | None = None,
    faults: IngestionFaults | None = None,
    limit: ProjectLimit | None = None,
) -> IngestionEndpoints:
    """Add ``POST /import`` and ``POST /engage`` to ``app``; return their handlers' object.

    :param app: the local server's aiohttp application (before it starts).
    :param store: the store accepted records go to (dataset ``PROJECT<project_id>``).
    :param project: the project id, token and credentials to check (default: project
        ``1``, any credentials).
    :param faults: failures to inject (default: none).
    :param limit: the project's rolling-window import budget (default: none, counted).

    Example::

        app = web.Application()
        endpoints = add_ingestion_routes(app, DatasetStore(path),
                                         IngestionProject("12345", token="abc"))
        with BackgroundServer(app, ssl_context=ca.server_context()) as server:
            ...
        endpoints.stats.count("/import", 200)
    """
    endpoints = IngestionEndpoints(
        store, project or IngestionProject(), faults or IngestionFaults(), limit
    )
    app.router.add_post("/import", endpoints.import_events)
    app.router.add_post("/engage", endpoints.engage)
    app[INGESTION_ENDPOINTS] = endpoints
    return endpoints
