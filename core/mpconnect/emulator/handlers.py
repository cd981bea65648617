"""The Datasets API endpoints: dataset versions and the two imports, over one store.

Paths, methods, form fields, response bodies, the 1000-record cap, five versions
retained and ``is_live`` after a delay are those of ``reference/mixpanel-datasets-api.txt``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from mpconnect.emulator.auth import authenticate, authorize, check_token
from mpconnect.emulator.checks import (
    check_dataset_id,
    check_events,
    check_people,
    decode_records,
    parse_state,
    shown,
)
from mpconnect.emulator.forms import request_params
from mpconnect.emulator.options import ServerOptions
from mpconnect.emulator.project_limit import ProjectLimit
from mpconnect.emulator.responses import Refused, json_response
from mpconnect.store.datasets import DatasetStore, StoreError


class DatasetsApi:
    """The handlers, over one store and one set of options.

    Blocking store calls run in :attr:`executor`, which the application sets at startup.
    """

    def __init__(
        self, store: DatasetStore, options: ServerOptions, limit: ProjectLimit | None = None
    ) -> None:
        self.store = store
        self.options = options
        #: The project's rolling-window import budget (counted even when off).
        self.limit = limit or ProjectLimit()
        self.executor: ThreadPoolExecutor | None = None

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking store call in the thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, func, *args)

    async def versions_request(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """Authenticate and check a request to ``/datasets/<id>/versions[...]``."""
        secret = authenticate(request, self.options)
        params = await request_params(request)
        dataset_id = check_dataset_id(request.match_info["dataset_id"])
        authorize(secret, dataset_id, self.options)
        check_token(params, self.options)
        return dataset_id, params

    # version endpoints -----------------------------------------------------------------

    async def create_version(self, request: web.Request) -> web.Response:
        """``POST /datasets/<id>/versions``."""
        dataset_id, _ = await self.versions_request(request)
        info = await self.run(self.store.create_version, dataset_id)
        return json_response({"data": info.to_api()})

    async def list_versions(self, request: web.Request) -> web.Response:
        """``GET /datasets/<id>/versions``."""
        dataset_id, _ = await self.versions_request(request)
        found = await self.run(self.store.list_versions, dataset_id)
        return json_response({"data": [v.to_api() for v in found]})

    async def update_version(self, request: web.Request) -> web.Response:
        """``PATCH /datasets/<id>/versions/<version_id>``: only ``state`` can change."""
        dataset_id, params = await self.versions_request(request)
        readable, writable = parse_state(params.get("state"))
        await self.run(
            self._update_state, dataset_id, request.match_info["version_id"], readable, writable
        )
        return json_response({"data": None})

    def _update_state(
        self, dataset_id: str, version_id: str, readable: bool, writable: bool
    ) -> None:
        self.store.update_state(dataset_id, version_id, readable=readable, writable=writable)

    async def delete_version(self, request: web.Request) -> web.Response:
        """``DELETE /datasets/<id>/versions/<version_id>``."""
        dataset_id, _ = await self.versions_request(request)
        await self.run(self.store.delete_version, dataset_id, request.match_info["version_id"])
        return json_response({"data": None})

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
            params = await request_params(request)
            verbose = params.get("verbose") == "1"
            secret = authenticate(request, self.options)
            dataset_id = check_dataset_id(params.get("dataset_id"))
            authorize(secret, dataset_id, self.options)
            version_id = params.get("dataset_version")
            if not version_id:
                raise Refused(400, "dataset_version is required: the version_id to import into")
            check_token(params, self.options, required=False)
            data = params.get("data")
            if not data:
                raise Refused(
                    400,
                    "data is required: base64 of a JSON array of at most "
                    f"{self.options.max_records} records",
                )
            await self.run(self._import_sync, kind, dataset_id, version_id, data)
        except RateLimited as exc:
            return json_response(
                {"error": exc.message, "status": 0}, 429, {"Retry-After": f"{exc.retry_after:g}"}
            )
        except (Refused, StoreError) as exc:
            status = exc.status
            if verbose:
                return json_response({"error": exc.message, "status": 0}, status)
            return web.Response(body=b"0", status=status, content_type="text/plain")
        if verbose:
            return json_response({"error": None, "status": 1})
        return web.Response(body=b"1", content_type="text/plain")

    def _import_sync(self, kind: str, dataset_id: str, version_id: str, data: str) -> None:
        version = self.store.get_version(dataset_id, version_id)
        if version is None:
            if not self.store.has_dataset(dataset_id):
                raise Refused(404, f"dataset {dataset_id} does not exist")
            raise Refused(
                404, f"version {shown(version_id)} of dataset {dataset_id} does not exist"
            )
        if not version.writable:
            raise Refused(400, f"version {version_id} of dataset {dataset_id} is not writable")
        records = decode_records(data, self.options.max_records)
        if kind == "events":
            check_events(records, self.options.project_token)
        else:
            check_people(records, self.options.project_token)
        retry_after = self.limit.admit(len(records), len(data) * 3 // 4)
        if retry_after is not None:
            raise RateLimited(retry_after)
        if kind == "events":
            self.store.import_events(dataset_id, version_id, records)
        else:
            self.store.import_people(dataset_id, version_id, records)


class RateLimited(Refused):
    """An import past the project's rate limit: 429, retry after ``retry_after`` s."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(429, RATE_LIMIT_MESSAGE)
        self.retry_after = retry_after


#: Mixpanel's words for a project past its rate limit.
RATE_LIMIT_MESSAGE = (
    "Project exceeded rate limits. Please retry the request with exponential backoff."
)
