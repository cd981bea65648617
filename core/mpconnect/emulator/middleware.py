"""The aiohttp middlewares of the local Datasets API server.

:func:`error_middleware` (outermost) turns refusals, store errors and aiohttp's 404 and 405
into the API's JSON errors; :func:`fault_middleware` (inside it) counts each request and
injects the fault its :class:`~mpconnect.emulator.faults.FaultInjector` decides. A refused
request never loses its acknowledgement: the refusal passes through the fault middleware
as an exception.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from mpconnect.emulator.faults import FaultInjector
from mpconnect.emulator.responses import Refused, drop_connection, json_error
from mpconnect.store.datasets import StoreError


def fault_middleware(injector: FaultInjector) -> Middleware:
    """A middleware injecting ``injector``'s faults: latency, drop, 429, 500, lost answer."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        decision = injector.decide(request.method, request.path, peer)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.drop:
            await request.read()
            return drop_connection(request)
        if decision.throttle is not None:
            wait = decision.throttle
            header = str(int(wait)) if wait == int(wait) else f"{wait:g}"
            return json_error(
                request,
                429,
                f"rate limit exceeded: retry after {header} s",
                headers={"Retry-After": header},
            )
        if decision.fail:
            return json_error(request, 500, "internal server error (injected fault)")
        response = await handler(request)
        if decision.lost_ack:
            return drop_connection(request)
        return response

    return middleware


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer :class:`Refused`, :class:`StoreError`, 404, 405 and 413 with the API's JSON
    error (413 as Mixpanel words it: ``request exceeds max limit of N bytes``)."""
    try:
        return await handler(request)
    except (Refused, StoreError) as exc:
        return json_error(request, exc.status, exc.message)
    except web.HTTPRequestEntityTooLarge:
        return json_error(
            request, 413, f"request exceeds max limit of {request.client_max_size} bytes"
        )
    except web.HTTPException as exc:
        if exc.status == 405:
            return json_error(
                request, 405, f"method {request.method} is not allowed on {request.path}"
            )
        if exc.status == 404:
            return json_error(request, 404, f"no endpoint {request.method} {request.path}")
        raise
