"""``mpconnect.transport.http.JsonHttpClient`` against a local server on 127.0.0.1.

Retries (statuses, timeouts, dropped connections, ``Retry-After`` within ``max_wait``),
errors and log lines without secrets, the plain-http and same-host rules, and pagination
that stops rather than loops.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import mpconnect
from mpconnect.emulator.background import BackgroundServer
from mpconnect.errors import ConfigError, SourceError
from mpconnect.transport.http import JsonHttpClient, SourceHttpError

pytestmark = pytest.mark.timeout(60)


@dataclass
class Truncated:
    """An answer whose connection drops after ``start``, before the promised length."""

    start: bytes


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Script:
    """What the local API answers, request by request, and what it was asked."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any, dict[str, str]]] = []
        self.seen: list[dict[str, Any]] = []

    def then(self, status: int, body: Any = None, **headers: str) -> Script:
        self.answers.append((status, body, headers))
        return self


@pytest.fixture
def api() -> Iterator[tuple[str, Script]]:
    from aiohttp import web

    script = Script()

    async def handle(request: web.Request) -> web.StreamResponse:
        script.seen.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "authorization": request.headers.get("Authorization"),
                "host": request.host,
            }
        )
        status, body, headers = script.answers.pop(0) if script.answers else (200, {}, {})
        if isinstance(body, Truncated):  # promise more than is sent, then hang up
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = len(body.start) + 50
            await response.prepare(request)
            await response.write(body.start)
            assert request.transport is not None
            request.transport.close()
            return response
        if isinstance(body, bytes):
            return web.Response(status=status, body=body, headers=headers)
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    with BackgroundServer(app) as server:
        yield server.url + "/v1", script


def test_http_client_retries_429_and_5xx_honouring_retry_after(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(429, {"error": "slow down"}, **{"Retry-After": "0"}).then(
        503, "busy", **{"Retry-After": "0"}
    ).then(200, {"ok": True})

    with JsonHttpClient(url, max_retries=3, name="acme") as client:
        assert client.get_json("/things", {"limit": 5}) == {"ok": True}
        assert (client.requests, client.retries) == (3, 2)
    assert script.seen[-1]["path"] == "/v1/things"
    assert script.seen[-1]["query"] == {"limit": "5"}
    assert script.seen[-1]["authorization"] is None


def test_http_client_gives_up_with_the_status_and_the_servers_text(
    api: tuple[str, Script],
) -> None:
    url, script = api
    for _ in range(3):
        script.then(500, {"error": "database on fire"}, **{"Retry-After": "0"})

    with (
        pytest.raises(SourceHttpError) as error,
        JsonHttpClient(url, max_retries=2, name="acme") as client,
    ):
        client.get_json("/things")

    assert error.value.status == 500
    assert "acme: GET " in str(error.value)
    assert "HTTP 500" in str(error.value) and "database on fire" in str(error.value)
    assert "gave up after 3 attempts" in str(error.value)
    assert isinstance(error.value, SourceError)


def test_http_client_does_not_retry_other_errors_and_hides_secrets(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(401, "invalid key Bearer sk_live_abcdef123456 for this account")

    client = JsonHttpClient(
        url, headers={"Authorization": "Bearer sk_live_abcdef123456"}, name="acme"
    )
    with pytest.raises(SourceHttpError) as error:
        client.get_json("/things", {"api_key": "qk_999999999", "page": 2})

    message = str(error.value)
    assert len(script.seen) == 1
    assert "HTTP 401" in message and "invalid key" in message
    assert "sk_live_abcdef123456" not in message and "qk_999999999" not in message
    assert "api_key=***" in message and "page=2" in message
    assert "sk_live" not in repr(client)
    assert script.seen[0]["authorization"] == "Bearer sk_live_abcdef123456"


def test_http_client_reports_a_body_that_is_not_json(api: tuple[str, Script]) -> None:
    url, script = api
    script.then(200, "<html>maintenance</html>")

    with (
        pytest.raises(SourceHttpError, match="body is not JSON: '<html>maintenance"),
        JsonHttpClient(url) as client,
    ):
        client.get_json("/things")


def test_http_client_retries_connection_failures_then_says_so() -> None:
    client = JsonHttpClient(f"http://127.0.0.1:{closed_port()}", max_retries=1, initial_wait=0.01)

    with pytest.raises(SourceHttpError, match="cannot connect to") as error:
        client.get_json("/things", {"token": "tk_secret_42"})
    assert error.value.status == 0
    assert client.requests == 2
    assert "tk_secret_42" not in str(error.value)


def test_http_client_retries_a_server_that_does_not_answer_in_time() -> None:
    import asyncio

    from aiohttp import web

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v1/slow", slow)
    with (
        BackgroundServer(app) as server,
        JsonHttpClient(server.url + "/v1", timeout=0.2, max_retries=1, initial_wait=0.01) as client,
    ):
        with pytest.raises(SourceHttpError, match=r"no response within 0\.2 s") as error:
            client.get_json("/slow")
        assert client.requests == 2
    assert "gave up after 2 attempts" in str(error.value)


def test_http_client_refuses_plain_http_to_remote_hosts() -> None:
    with pytest.raises(ConfigError, match=r"base_url: http://api\.example\.com/v1 is plain"):
        JsonHttpClient("http://api.example.com/v1")
    with pytest.raises(ConfigError, match="not an http"):
        JsonHttpClient("ftp://api.example.com")
    assert JsonHttpClient("http://api.example.com", allow_http=True).base_url.startswith("http:")


def test_http_client_paginates_lazily_by_cursor_and_by_next_link(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(200, {"data": [1, 2], "next_cursor": "c2"}).then(200, {"data": [3]})
    script.then(200, {"items": ["a"], "next": url + "/page2?x=1"}).then(200, {"items": ["b"]})

    with JsonHttpClient(url) as client:
        by_cursor = client.paginate(
            "/numbers",
            {"limit": 2},
            next_page=lambda body: (
                {"cursor": body["next_cursor"]} if body.get("next_cursor") else None
            ),
        )
        assert next(by_cursor) == 1
        assert len(script.seen) == 1  # the second page is not fetched yet
        assert [*by_cursor] == [2, 3]
        by_link = client.paginate(
            "/letters", next_page=lambda body: body.get("next"), items="items"
        )
        assert list(by_link) == ["a", "b"]

    assert [s["query"] for s in script.seen[:2]] == [{"limit": "2"}, {"limit": "2", "cursor": "c2"}]
    assert (script.seen[3]["path"], script.seen[3]["query"]) == ("/v1/page2", {"x": "1"})


def test_http_client_stops_pagination_that_does_not_advance(api: tuple[str, Script]) -> None:
    url, script = api
    script.then(200, {"data": [1], "next_cursor": "same"}).then(
        200, {"data": [2], "next_cursor": "same"}
    )
    script.then(200, {"results": []})

    with JsonHttpClient(url) as client:
        stuck = client.paginate("/loop", next_page=lambda body: {"cursor": body["next_cursor"]})
        with pytest.raises(SourceHttpError, match="page 2 points to itself"):
            list(stuck)
        with pytest.raises(SourceHttpError, match="page 1 holds no list under 'data'"):
            list(client.paginate("/empty", next_page=lambda body: None))


def test_http_client_retries_a_connection_dropped_in_the_middle_of_a_response(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(200, Truncated(b'{"data": [1, 2')).then(
        200, b"not gzip at all", **{"Content-Encoding": "gzip"}
    ).then(200, {"data": [1, 2, 3]})

    with JsonHttpClient(url, max_retries=2, initial_wait=0.01) as client:
        assert client.get_json("/things") == {"data": [1, 2, 3]}
        assert (client.requests, client.retries) == (3, 2)


def test_http_client_gives_up_on_dropped_responses_with_a_source_error(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(200, Truncated(b'{"data"')).then(200, Truncated(b'{"data"'))

    with (
        pytest.raises(SourceHttpError) as error,
        JsonHttpClient(url, max_retries=1, initial_wait=0.01, name="acme") as client,
    ):
        client.get_json("/things")

    assert error.value.status == 0
    assert "acme: GET " in str(error.value)
    assert "connection broken while reading the response" in str(error.value)
    assert "gave up after 2 attempts" in str(error.value)


def test_http_client_hides_a_secret_in_the_query_of_a_next_link(
    api: tuple[str, Script],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, script = api
    script.then(200, {"data": [1], "next": url + "/items?page=2&api_key=sk_live_NEXT42"})
    script.then(401, "api key sk_live_NEXT42 was revoked")

    with pytest.raises(SourceHttpError) as error, JsonHttpClient(url) as client:
        list(client.paginate("/items", next_page=lambda body: body.get("next")))

    message = str(error.value)
    assert "HTTP 401" in message and "was revoked" in message
    assert "sk_live_NEXT42" not in message
    assert "api_key=***" in message and "page=2" in message
    assert script.seen[1]["query"] == {"page": "2", "api_key": "sk_live_NEXT42"}

    dead = f"http://127.0.0.1:{closed_port()}"
    caplog.set_level(logging.WARNING, logger="mpconnect.transport.http")
    with (
        pytest.raises(SourceHttpError, match="cannot connect to") as error,
        JsonHttpClient(dead, max_retries=1, initial_wait=0.01) as client,
    ):
        client.get_json("/items?page=2&api_key=sk_live_NEXT42")
    assert "sk_live_NEXT42" not in str(error.value)
    assert "retry 1 of 1" in caplog.text and "sk_live_NEXT42" not in caplog.text


def test_http_client_never_sends_its_headers_to_another_host_or_over_plain_http(
    api: tuple[str, Script],
) -> None:
    url, script = api
    port = url.split(":")[2].split("/")[0]
    elsewhere = f"http://localhost:{port}/v1/items?page=2"  # the same server, another host
    in_clear = f"http://0.0.0.0:{port}/v1/items?page=2&token=tk_secret_9"
    script.then(200, {"data": [1], "next": elsewhere}).then(200, {"data": [2], "next": in_clear})

    with JsonHttpClient(url, headers={"X-Api-Key": "sk_live_HEADER"}, name="acme") as client:
        pages = client.paginate("/items", next_page=lambda body: body.get("next"))
        with pytest.raises(SourceError) as error:
            list(pages)
        assert f"acme: {elsewhere} is not on {url}/" in str(error.value)
        assert "never sent to another host" in str(error.value)

        script.answers.clear()
        script.then(200, {"data": [2], "next": in_clear})
        with pytest.raises(
            SourceError,
            match=r"0\.0\.0\.0:\d+/v1/items\?page=2&token=\*\*\* "
            r"is plain http; it is not fetched",
        ) as error:
            list(client.paginate("/items", next_page=lambda body: body.get("next")))
        assert "tk_secret_9" not in str(error.value)

    assert [seen["host"] for seen in script.seen] == [f"127.0.0.1:{port}"] * 2


def test_http_client_keeps_retry_after_within_max_wait(api: tuple[str, Script]) -> None:
    url, script = api
    script.then(429, {"error": "slow down"}, **{"Retry-After": "120"}).then(200, {"ok": True})
    waits: list[float] = []

    def on_retry(error: BaseException, attempt: int, wait: float) -> None:
        waits.append(wait)
        if wait > 5:  # fail now rather than sleep two minutes
            raise AssertionError(f"waits {wait:.0f} s with max_wait=0.05")

    with JsonHttpClient(url, max_retries=1, max_wait=0.05, on_retry=on_retry) as client:
        assert client.get_json("/things") == {"ok": True}
    assert len(waits) == 1 and waits[0] <= 0.05 + 0.1  # the cap, plus at most 0.1 s jitter


def test_http_client_stops_pagination_that_goes_round_in_a_circle(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(200, {"data": [1], "next": "/a?page=b"}).then(200, {"data": [2], "next": "/a"})
    script.then(200, {"data": [1], "cursor": "c1"}).then(200, {"data": [2], "cursor": "c2"})
    script.then(200, {"data": [3], "cursor": "c1"})

    with JsonHttpClient(url) as client:
        by_link = client.paginate("/a", next_page=lambda body: body["next"])
        with pytest.raises(
            SourceHttpError,
            match=r"/v1/a\?page=b: page 2 points back to "
            rf"page 1 \({url}/a\) as the next page; the pagination goes round",
        ):
            list(by_link)
        by_cursor = client.paginate(
            "/b", {"limit": 1}, next_page=lambda body: {"cursor": body["cursor"]}
        )
        seen: list[int] = []
        with pytest.raises(
            SourceHttpError,
            match=r"page 3 points back to page 2 "
            r"\(.*/v1/b\?limit=1&cursor=c1\)",
        ):
            seen.extend(by_cursor)
        assert seen == [1, 2, 3]
    assert len(script.seen) == 5


def test_a_redirect_to_another_host_is_refused_and_the_key_stays_home() -> None:
    from aiohttp import web

    from mpconnect.emulator.background import BackgroundServer
    from mpconnect.transport.http import JsonHttpClient

    seen: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Api-Key"))
        return web.json_response({"items": []})

    other_app = web.Application()
    other_app.router.add_get("/items", elsewhere)
    with BackgroundServer(other_app, host="127.0.0.1") as other:

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"http://localhost:{other.port}/items")

        async def here(request: web.Request) -> web.Response:
            raise web.HTTPFound("/items")

        async def items(request: web.Request) -> web.Response:
            return web.json_response({"items": [1]})

        app = web.Application()
        app.router.add_get("/moved", moved)
        app.router.add_get("/here", here)
        app.router.add_get("/items", items)
        with BackgroundServer(app) as server:
            client = JsonHttpClient(
                server.url, headers={"X-Api-Key": "sk_live_SECRET"}, max_retries=0
            )
            assert client.get_json("/here") == {"items": [1]}  # same host: followed
            with pytest.raises(mpconnect.SourceError, match="is not on") as refused:
                client.get_json("/moved")
            assert "sk_live_SECRET" not in str(refused.value)
    assert seen == [], "the other host never saw the request, nor the key"
