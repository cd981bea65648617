"""The status application: HTML pages, their JSON twins under ``/api/``, ``/metrics``,
``/healthz`` and the "run now" form."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from mpconnect.redact import redact
from mpconnect.ui.guard import (
    COOKIE,
    HEADERS,
    OPEN_PATHS,
    CsrfGuard,
    presented_token,
    token_matches,
)
from mpconnect.ui.metrics import StatusCollector, render_metrics
from mpconnect.ui.render import environment
from mpconnect.ui.status import StatusSource

log = logging.getLogger("mpconnect.ui")
STATIC = Path(__file__).parent / "static"
#: Seconds between two looks of a page at its JSON twin.
POLL_SECONDS = 5


@dataclass
class UiOptions:
    """What the application serves besides the status.

    :param token: required on every page and API call when set.
    :param run_now: starts a run of a source and says what happened (None: no button).
    :param healthy: whether the scheduler loop is alive, and a word on it (None: no
        scheduler; ``/healthz`` answers 200).
    :param heartbeat_age: seconds since the scheduler loop went round, for ``/metrics``.
    """

    token: str | None = None
    run_now: Callable[[str], str] | None = None
    healthy: Callable[[], tuple[bool, str]] | None = None
    heartbeat_age: Callable[[], float | None] = lambda: None


def make_app(status: StatusSource, options: UiOptions | None = None) -> Any:
    """Build the ``aiohttp.web.Application`` serving ``status``."""
    from aiohttp import web

    options = options or UiOptions()
    env = environment()
    csrf = CsrfGuard()
    collector = StatusCollector(status, options.heartbeat_age)

    async def blocking(call: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, call)

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response: web.StreamResponse
        if options.token and request.path not in OPEN_PATHS:
            response = _authorise(request, options.token)  # type: ignore[assignment]
            if response is None:
                response = await _handled(request, handler)
        else:
            response = await _handled(request, handler)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def _authorise(request: web.Request, token: str) -> web.StreamResponse | None:
        given = presented_token(request)
        if not token_matches(given, token):
            return web.Response(
                status=401,
                text="401: a token is required: open the page "
                "with ?token=TOKEN once, or send Authorization: Bearer TOKEN\n",
                headers={"WWW-Authenticate": 'Bearer realm="mpconnect"'},
            )
        if "token" in request.query:  # trade the address's token for a cookie
            rest = {k: v for k, v in request.query.items() if k != "token"}
            target = request.path + ("?" + urlencode(rest) if rest else "")
            response = web.Response(status=303, headers={"Location": target})
            response.set_cookie(
                COOKIE,
                str(given),
                httponly=True,
                samesite="Strict",
                path="/",
                secure=request.secure,
            )
            return response
        return None

    async def _handled(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400 and not request.path.startswith("/api/"):
                return page(
                    "error.html", {"code": exc.status, "message": exc.reason}, status=exc.status
                )
            raise
        except Exception as exc:
            log.warning("status page %s failed: %s", request.path, redact(str(exc)))
            message = redact(f"{type(exc).__name__}: {exc}")
            if request.path.startswith("/api/"):
                return web.json_response({"error": message}, status=500)
            return page("error.html", {"code": 500, "message": message}, status=500)

    def page(template: str, context: dict[str, Any], status: int = 200) -> web.Response:
        context = {"poll_seconds": POLL_SECONDS, "api": None, "message": None, **context}
        html = env.get_template(template).render(**context)
        return web.Response(status=status, text=html, content_type="text/html")

    def twin(
        path: str,
        fetch: Callable[[web.Request], Any],
        template: str,
        extra: Callable[[web.Request, Any], dict[str, Any]] | None = None,
    ) -> None:
        """Serve ``path`` as a page and ``/api`` + ``path`` as its JSON."""

        async def as_json(request: web.Request) -> web.Response:
            data = await blocking(lambda: fetch(request))
            if data is None:
                return web.json_response({"error": "not found"}, status=404)
            return web.json_response(data)

        async def as_page(request: web.Request) -> web.Response:
            data = await blocking(lambda: fetch(request))
            if data is None:
                raise web.HTTPNotFound(reason=f"nothing at {request.path}")
            context = {
                "data": data,
                "api": "/api" + request.path,
                "message": request.query.get("message"),
            }
            if extra is not None:
                context.update(extra(request, data))
            return page(template, context)

        app.router.add_get(path, as_page)
        app.router.add_get("/api" + path, as_json)

    app = web.Application(middlewares=[guard])

    def source_extra(request: web.Request, data: Any) -> dict[str, Any]:
        name = request.match_info["name"]
        return {
            "name": name,
            "run_now": options.run_now is not None,
            "csrf": csrf.form_token(f"run:{name}"),
        }

    twin(
        "/",
        lambda r: {"sources": status.sources()},
        "sources.html",
        lambda r, d: {"now": time.time()},
    )

    async def api_sources(request: web.Request) -> web.Response:
        return web.json_response(await blocking(status.sources))

    app.router.add_get("/api/sources", api_sources)
    twin(
        "/sources/{name}",
        lambda r: _history(status, r.match_info["name"]),
        "source.html",
        source_extra,
    )
    twin("/runs/{run_id}", lambda r: status.run(r.match_info["run_id"]), "run.html")
    twin(
        "/runs/{run_id}/quarantine",
        lambda r: status.quarantine(r.match_info["run_id"]),
        "quarantine.html",
    )
    twin("/datasets", lambda r: {"datasets": status.datasets()}, "datasets.html")

    async def download(request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        lines = await blocking(lambda: status.quarantine_lines(run_id))
        if lines is None:
            raise web.HTTPNotFound(reason=f"run {run_id} has no quarantine file")
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-ndjson",
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(run_id)}"
                "-quarantine.jsonl",
            }
        )
        await response.prepare(request)
        while True:
            chunk = await blocking(lambda: b"".join(_take(lines, 500)))
            if not chunk:
                break
            await response.write(chunk)
        await response.write_eof()
        return response

    async def run_now(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        form = await request.post()
        value = form.get("csrf")
        refusal = csrf.refusal(request, f"run:{name}", value if isinstance(value, str) else None)
        if refusal is not None:
            log.warning("refused a run-now request for %s: %s", name, refusal)
            return web.Response(status=403, text=f"403: refused: {refusal}\n")
        if options.run_now is None:
            raise web.HTTPNotFound(reason="runs cannot be started from here")
        said = await blocking(lambda: options.run_now(name))  # type: ignore[misc]
        raise web.HTTPSeeOther(f"/sources/{quote(name)}?" + urlencode({"message": said}))

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = await blocking(lambda: render_metrics(collector))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(request: web.Request) -> web.Response:
        if options.healthy is None:
            return web.json_response({"status": "ok", "scheduler": None})
        alive, detail = options.healthy()
        return web.json_response(
            {"status": "ok" if alive else "stuck", "scheduler": detail},
            status=200 if alive else 503,
        )

    app.router.add_get("/runs/{run_id}/quarantine.jsonl", download)
    app.router.add_post("/sources/{name}/run", run_now)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static", STATIC)
    return app


def _history(status: StatusSource, name: str) -> dict[str, Any] | None:
    runs = status.source_runs(name)
    if runs is None:
        return None
    source = next((s for s in status.sources() if s["name"] == name), None)
    chart = [
        {"started_at": r["started_at"], "imported": r["imported"], "duration": r["duration"]}
        for r in reversed(runs)
    ]
    return {"source": source, "runs": runs, "chart": chart, "rate_limits": status.rate_limits()}


def _take(lines: Any, limit: int) -> list[bytes]:
    taken = []
    for line in lines:
        taken.append(line)
        if len(taken) >= limit:
            break
    return taken
