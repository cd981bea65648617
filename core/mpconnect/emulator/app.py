"""The aiohttp applications of the local Datasets API server.

:func:`make_app` serves the Datasets API (and Mixpanel's ``/import`` and ``/engage``) over
a store, with fault injection; :func:`make_https_required_app` is the plain-HTTP listener
that refuses everything, as the real API rejects HTTP.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from mpconnect.emulator.faults import FaultInjector
from mpconnect.emulator.handlers import DatasetsApi
from mpconnect.emulator.ingestion_api import IngestionProject, add_ingestion_routes
from mpconnect.emulator.middleware import error_middleware, fault_middleware
from mpconnect.emulator.options import ServerOptions
from mpconnect.emulator.project_limit import ProjectLimit
from mpconnect.emulator.responses import json_error
from mpconnect.store.datasets import DatasetStore

HTTPS_REQUIRED = (
    "HTTPS is required: the Datasets API rejects requests made over HTTP, "
    "since they would send your secret in plain text"
)


def make_app(
    store: DatasetStore,
    options: ServerOptions,
    injector: FaultInjector | None = None,
    *,
    workers: int = 8,
    ingestion: IngestionProject | None = None,
    project_limit: ProjectLimit | None = None,
) -> web.Application:
    """Build the Datasets API application over ``store``.

    :param injector: the fault injector (default: no faults).
    :param workers: threads for the store's blocking calls.
    :param ingestion: the project Mixpanel's ``/import`` and ``/engage`` stand in for
        (default: project 1 with the options' token and secret).
    :param project_limit: the project's rolling-window import budget, shared by the
        Datasets API's imports and ``/import``/``/engage`` (default: none).
    """
    project_limit = project_limit or ProjectLimit()
    api = DatasetsApi(store, options, project_limit)
    injector = injector or FaultInjector()
    app = web.Application(
        middlewares=[error_middleware, fault_middleware(injector)],
        client_max_size=options.max_body_bytes,
    )

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
    add_ingestion_routes(
        app,
        store,
        ingestion
        or IngestionProject(token=options.project_token, api_secret=options.project_secret),
        limit=project_limit,
    )
    return app


def make_https_required_app(https_url: str | None = None) -> web.Application:
    """An application that answers every request with the HTTPS-required error (403)."""
    message = HTTPS_REQUIRED + (f"; use {https_url}" if https_url else "; use https://")

    async def refuse(request: web.Request) -> web.Response:
        return json_error(request, 403, message)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    return app
