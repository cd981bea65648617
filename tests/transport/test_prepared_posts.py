"""Both HTTPS sinks prepare their import request once per upload thread and re-send it
with each batch's body. What a server sees must not change: each request's own body and
length, the credentials, cookies the server set sent back, and the environment's CA
bundle and proxy honoured.

A recording aiohttp server on 127.0.0.1 answers as Mixpanel does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
from aiohttp import web

from mpconnect.config import parse_config
from mpconnect.emulator.background import BackgroundServer, LocalCA
from mpconnect.sink import Sink
from mpconnect.sinks.datasets import DatasetsSink
from mpconnect.sinks.ingestion import IngestionSink

pytestmark = pytest.mark.timeout(60)

TOKEN = "prepared-token-3f1a"
SECRET = "prepared-secret-88c0"
SINKS = ("datasets", "ingestion")


@dataclass
class Seen:
    """One request as the server read it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """The requests a server received; it sets a cookie on its ``cookie_at``-th answer."""

    cookie_at: int | None = None
    seen: list[Seen] = field(default_factory=list)

    def app(self) -> web.Application:
        """An app answering the Datasets imports, ``/import`` and ``/engage`` with success."""

        async def record(request: web.Request) -> web.Response:
            body = await request.read()
            self.seen.append(Seen(request.path, dict(request.query), dict(request.headers), body))
            if request.path == "/import":
                answer: Any = {"code": 200, "status": "OK", "num_records_imported": 1}
            else:
                answer = {"error": None, "status": 1}
            response = web.json_response(answer)
            if self.cookie_at is not None and len(self.seen) == self.cookie_at:
                response.set_cookie("lb", "node-7")
            return response

        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in ("/import-events", "/import-people", "/import", "/engage"):
            app.router.add_post(path, record)
        return app


@pytest.fixture
def local_ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path / "ca")


def _serve(recorder: Recorder, ca: LocalCA | None) -> BackgroundServer:
    context = ca.server_context() if ca is not None else None
    return BackgroundServer(recorder.app(), ssl_context=context)


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREPARED_SECRET", SECRET)


def _sink(kind: str, url: str, home: Path, **table: Any) -> Sink:
    """A sink of ``kind`` pointed at ``url``, as a configuration file makes it."""
    settings = {"sink": kind, "api_url": url, "project_token": TOKEN, **table}
    if kind == "datasets":
        settings["secret"] = "${PREPARED_SECRET}"
        config = parse_config({"mixpanel": settings}, home / "mpconnect.toml")
        return DatasetsSink(config.mixpanel, home)
    config = parse_config({"mixpanel": settings}, home / "mpconnect.toml")
    return IngestionSink(config.mixpanel, home)


def _records(seen: Seen) -> list[dict[str, Any]]:
    """The records a request carried, read back as the server reads them."""
    if seen.path.startswith("/import-"):
        form = parse_qs(seen.body.decode(), strict_parsing=True)
        records: list[dict[str, Any]] = orjson.loads(base64.b64decode(form["data"][0]))
        return records
    # aiohttp inflates a gzip body as it reads it (Content-Encoding), as Mixpanel does
    records = orjson.loads(seen.body)
    return records


def _batch(n: int, size: int) -> bytes:
    return orjson.dumps(
        [
            {"event": "Paid", "properties": {"distinct_id": f"u{n}-{i}", "note": "x" * n}}
            for i in range(size)
        ]
    )


@pytest.mark.parametrize("kind", SINKS)
def test_each_batch_goes_with_its_own_body_length_and_the_credentials(
    kind: str, tmp_path: Path, local_ca: LocalCA
) -> None:
    recorder = Recorder()
    with _serve(recorder, local_ca) as server:
        sink = _sink(kind, server.url, tmp_path, ca_bundle=str(local_ca.ca_path))
        try:
            batches = [_batch(n, size) for n, size in ((1, 3), (40, 1), (7, 200))]
            for payload in batches:
                sink.import_batch("events", "DEMO", "5", payload, len(orjson.loads(payload)))
            sink.import_batch("people", "DEMO", "5", batches[0], 3)
        finally:
            sink.close()

    assert [_records(seen) for seen in recorder.seen] == [
        *(orjson.loads(payload) for payload in batches),
        orjson.loads(batches[0]),
    ]
    for seen in recorder.seen:
        user = TOKEN if kind == "ingestion" else SECRET
        expected = "Basic " + base64.b64encode(f"{user}:".encode()).decode()
        assert seen.headers["Authorization"] == expected
    if kind == "datasets":
        assert [seen.path for seen in recorder.seen] == [*["/import-events"] * 3, "/import-people"]
        assert [seen.headers["Content-Length"] for seen in recorder.seen] == [
            str(len(seen.body)) for seen in recorder.seen
        ]
        form = parse_qs(recorder.seen[0].body.decode())
        assert form["dataset_id"] == ["DEMO"] and form["dataset_version"] == ["5"]
    else:
        assert [seen.path for seen in recorder.seen] == [*["/import"] * 3, "/engage"]
        assert recorder.seen[0].query == {"strict": "1"}
        assert recorder.seen[-1].query == {"strict": "1", "verbose": "1", "ip": "0"}
        assert {seen.headers["Content-Encoding"] for seen in recorder.seen} == {"gzip"}


@pytest.mark.parametrize("kind", SINKS)
def test_a_cookie_the_server_sets_is_sent_back_with_the_next_batches(
    kind: str, tmp_path: Path, local_ca: LocalCA
) -> None:
    recorder = Recorder(cookie_at=2)
    with _serve(recorder, local_ca) as server:
        sink = _sink(kind, server.url, tmp_path, ca_bundle=str(local_ca.ca_path))
        try:
            for n in range(4):
                sink.import_batch("events", "DEMO", "5", _batch(n, 2), 2)
        finally:
            sink.close()

    cookies = [seen.headers.get("Cookie") for seen in recorder.seen]
    assert cookies == [None, None, "lb=node-7", "lb=node-7"]
    assert [_records(seen) for seen in recorder.seen] == [
        orjson.loads(_batch(n, 2)) for n in range(4)
    ]


@pytest.mark.parametrize("kind", SINKS)
def test_the_environment_ca_bundle_is_trusted_without_ca_bundle(
    kind: str, tmp_path: Path, local_ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(local_ca.ca_path))
    recorder = Recorder()
    with _serve(recorder, local_ca) as server:
        sink = _sink(kind, server.url, tmp_path)
        try:
            sink.import_batch("events", "DEMO", "5", _batch(3, 2), 2)
        finally:
            sink.close()

    assert [_records(seen) for seen in recorder.seen] == [orjson.loads(_batch(3, 2))]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize("kind", SINKS)
def test_the_environment_proxy_carries_the_imports(
    kind: str, tmp_path: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    with _serve(recorder, None) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # nothing listens at the API's address: only the proxy can have answered
        sink = _sink(kind, f"http://127.0.0.1:{closed_port}", tmp_path, allow_http_loopback=True)
        try:
            sink.import_batch("events", "DEMO", "5", _batch(5, 2), 2)
        finally:
            sink.close()

    assert [_records(seen) for seen in recorder.seen] == [orjson.loads(_batch(5, 2))]
