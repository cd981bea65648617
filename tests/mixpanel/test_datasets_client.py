"""mpconnect's Datasets API client against the local server over HTTPS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import orjson
import pytest
from aiohttp import web
from datasets_support import API_SECRET, PROJECT_TOKEN, event, person

from mpconnect.emulator.background import BackgroundServer, LocalCA
from mpconnect.emulator.server import HTTPS_REQUIRED
from mpconnect.errors import ApiError, ConfigError, RetryableApiError
from mpconnect.mixpanel.datasets import DatasetsClient, encode_import_form

pytestmark = pytest.mark.timeout(60)


def payload(records: list) -> bytes:
    """A batch as the engine hands it to the sink: a JSON array."""
    return orjson.dumps(records)


def test_the_whole_lifecycle(datasets_server, client: DatasetsClient) -> None:
    created = client.create_version("TESTDATA")
    client.import_events("TESTDATA", created.version_id, payload([event(i) for i in range(50)]))
    client.import_people("TESTDATA", created.version_id, payload([person(i) for i in range(5)]))
    client.update_state("TESTDATA", created.version_id, readable=True, writable=False)

    listed = client.list_versions("TESTDATA")

    assert created.writable and not created.readable and not created.is_live
    assert [v.version_id for v in listed] == [created.version_id]
    assert listed[0].readable and listed[0].ready and not listed[0].writable
    contents = datasets_server.store.contents("TESTDATA", created.version_id)
    assert (contents.events_total, contents.profiles) == (50, 5)
    client.delete_version("TESTDATA", created.version_id)
    assert client.list_versions("TESTDATA") == []


def test_update_state_always_sends_both_fields(datasets_server, client: DatasetsClient) -> None:
    version = client.create_version("TESTDATA")

    # The server refuses a state without both fields, so success proves both were sent.
    client.update_state("TESTDATA", version.version_id, readable=False, writable=True)
    client.update_state("TESTDATA", version.version_id, readable=True, writable=True)

    assert datasets_server.store.get_version("TESTDATA", version.version_id).ready


@pytest.mark.parametrize("url", ["http://api-beta.mixpanel.com", "http://127.0.0.1:9"])
def test_http_is_refused_before_any_request(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        DatasetsClient(url, secret=API_SECRET)

    assert str(refused.value) == (
        f"mixpanel.api_url: refusing {url}: plain http:// would send the secret in clear text "
        "and the Datasets API rejects HTTP; use https://; for a local server on a loopback "
        "address, set allow_http_loopback = true in [mixpanel]"
    )


def test_http_to_another_host_is_refused_even_when_loopback_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"use https:// \(it is not a loopback address\)"):
        DatasetsClient("http://10.0.0.1:8080", secret=API_SECRET, allow_http_loopback=True)


def test_http_to_loopback_when_allowed_reaches_the_https_required_answer(start_server) -> None:
    server = start_server(http=True)
    client = DatasetsClient(
        server.http_url, secret=API_SECRET, project_token=PROJECT_TOKEN, allow_http_loopback=True
    )

    with pytest.raises(ApiError) as refused:
        client.list_versions("TESTDATA")

    assert refused.value.status == 403
    assert refused.value.server_message == f"{HTTPS_REQUIRED}; use {server.url}"
    assert not isinstance(refused.value, RetryableApiError)


def test_other_schemes_and_non_urls_are_refused() -> None:
    with pytest.raises(ConfigError, match="unsupported scheme 'ftp'"):
        DatasetsClient("ftp://api-beta.mixpanel.com", secret=API_SECRET)
    with pytest.raises(ConfigError, match="is not a URL"):
        DatasetsClient("api-beta.mixpanel.com", secret=API_SECRET)


def test_a_missing_ca_bundle_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mixpanel.ca_bundle: .*nope.pem does not exist"):
        DatasetsClient("https://127.0.0.1:1", secret=API_SECRET, ca_bundle=tmp_path / "nope.pem")


def test_an_untrusted_certificate_is_not_retried_and_says_what_to_set(datasets_server) -> None:
    other = LocalCA(datasets_server.directory / "other-ca")  # not the server's CA
    client = DatasetsClient(
        datasets_server.url,
        secret=API_SECRET,
        project_token=PROJECT_TOKEN,
        ca_bundle=other.ca_path,
        timeout=10,
    )

    with pytest.raises(ApiError) as failed:
        client.list_versions("TESTDATA")

    assert not isinstance(failed.value, RetryableApiError)
    assert failed.value.status == 0
    assert "set mixpanel.ca_bundle" in str(failed.value)
    assert datasets_server.request_counts() == {}


def test_a_refusal_carries_the_status_and_the_server_text(datasets_server) -> None:
    client = DatasetsClient(
        datasets_server.url,
        secret="wrong-secret",
        project_token=PROJECT_TOKEN,
        ca_bundle=datasets_server.ca_path,
    )

    with pytest.raises(ApiError) as refused:
        client.create_version("TESTDATA")

    error = refused.value
    assert not isinstance(error, RetryableApiError)
    assert error.status == 401
    assert error.server_message == (
        "invalid credentials: the user name is neither the project secret nor a dataset secret"
    )
    assert str(error) == (
        f"HTTP 401: POST /datasets/TESTDATA/versions: {error.server_message}"
        "; check mixpanel.secret: it must be the project secret or this "
        "dataset's secret (Project settings in Mixpanel)"
    )
    assert "wrong-secret" not in str(error) and "wrong-secret" not in repr(client)


def test_an_import_refusal_carries_the_server_text(client: DatasetsClient) -> None:
    version = client.create_version("TESTDATA")

    with pytest.raises(ApiError) as refused:
        client.import_events(
            "TESTDATA", version.version_id, payload([event(0), event(1, token="another")])
        )

    assert refused.value.status == 400
    assert refused.value.server_message == "record 1: properties.token is not this project's token"


def test_429_is_retryable_with_retry_after(start_server) -> None:
    server = start_server(throttle_rate=1.0, retry_after=2)
    client = DatasetsClient(
        server.url, secret=API_SECRET, project_token=PROJECT_TOKEN, ca_bundle=server.ca_path
    )

    with pytest.raises(RetryableApiError) as throttled:
        client.list_versions("TESTDATA")

    assert throttled.value.status == 429
    assert throttled.value.retry_after == 2.0
    assert throttled.value.server_message == "rate limit exceeded: retry after 2 s"


def test_5xx_is_retryable(start_server) -> None:
    server = start_server(fail_rate=1.0)
    client = DatasetsClient(
        server.url, secret=API_SECRET, project_token=PROJECT_TOKEN, ca_bundle=server.ca_path
    )

    with pytest.raises(RetryableApiError) as failed:
        client.import_events("TESTDATA", "1", payload([event()]))

    assert failed.value.status == 500
    assert failed.value.server_message == "internal server error (injected fault)"


def test_a_dropped_connection_is_retryable(start_server) -> None:
    server = start_server(drop_rate=1.0)
    client = DatasetsClient(
        server.url, secret=API_SECRET, project_token=PROJECT_TOKEN, ca_bundle=server.ca_path
    )

    with pytest.raises(RetryableApiError) as dropped:
        client.create_version("TESTDATA")

    assert dropped.value.status == 0
    assert "connection to" in str(dropped.value) and "failed or was dropped" in str(dropped.value)
    assert server.store.list_versions("TESTDATA") == []


def test_a_timeout_is_retryable(start_server) -> None:
    server = start_server(latency_ms=2000)
    client = DatasetsClient(
        server.url,
        secret=API_SECRET,
        project_token=PROJECT_TOKEN,
        ca_bundle=server.ca_path,
        timeout=0.2,
    )

    with pytest.raises(RetryableApiError) as timed_out:
        client.list_versions("TESTDATA")

    assert timed_out.value.status == 0
    assert "no answer from" in str(timed_out.value) and "within 0.2 s" in str(timed_out.value)


def test_the_client_is_safe_from_several_threads(datasets_server, client: DatasetsClient) -> None:
    version = client.create_version("TESTDATA")
    errors: list[BaseException] = []

    def upload(worker: int) -> None:
        try:
            for batch in range(10):
                first = (worker * 10 + batch) * 100
                client.import_events(
                    "TESTDATA", version.version_id, payload([event(first + i) for i in range(100)])
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert datasets_server.requests_to("/import-events") == 80
    assert datasets_server.connections() <= 1 + 8  # the creating thread's, one per worker
    assert datasets_server.store.contents("TESTDATA", version.version_id).events_total == 8000


def test_connections_are_reused(datasets_server, client: DatasetsClient) -> None:
    version = client.create_version("TESTDATA")
    for i in range(10):
        client.import_events("TESTDATA", version.version_id, payload([event(i)]))
    client.list_versions("TESTDATA")

    assert datasets_server.requests_to("/import-events") == 10
    assert datasets_server.connections() == 1


def test_the_import_body_is_the_documented_form() -> None:
    body = encode_import_form(b'[{"a":"\xc3\xa9?>>"}]', "TESTDATA", "5764640680181760")

    fields = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    assert fields == {
        "data": "W3siYSI6IsOpPz4+In1d",
        "dataset_id": "TESTDATA",
        "dataset_version": "5764640680181760",
        "verbose": "1",
    }


# -- response shapes from a server that answers otherwise ----------------------------------


@pytest.fixture
def odd_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A TLS server answering plain ``1``/``0`` imports and a body without ``data``."""

    async def plain(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="1" if request.path == "/import-events" else "0")

    async def no_data(request: web.Request) -> web.Response:
        return web.json_response({"result": []})

    app = web.Application()
    app.router.add_post("/import-events", plain)
    app.router.add_post("/import-people", plain)
    app.router.add_get("/datasets/{dataset_id}/versions", no_data)
    ca = LocalCA(tmp_path / "odd-ca")
    with BackgroundServer(app, ssl_context=ca.server_context()) as server:
        yield server.url, str(ca.ca_path)


def test_plain_1_and_0_import_answers_are_understood(odd_server: tuple[str, str]) -> None:
    url, ca = odd_server
    client = DatasetsClient(url, secret=API_SECRET, project_token=PROJECT_TOKEN, ca_bundle=ca)

    client.import_events("TESTDATA", "1", payload([event()]))
    with pytest.raises(ApiError) as refused:
        client.import_people("TESTDATA", "1", payload([person()]))

    assert refused.value.status == 200
    assert "the server refused the import (answered '0')" in str(refused.value)


def test_a_body_without_data_is_an_error(odd_server: tuple[str, str]) -> None:
    url, ca = odd_server
    client = DatasetsClient(url, secret=API_SECRET, project_token=PROJECT_TOKEN, ca_bundle=ca)

    with pytest.raises(ApiError, match=r'expected \{"data": ...\}, got'):
        client.list_versions("TESTDATA")
