"""Fault injection of the local server: seeded, changeable while running, counted."""

from __future__ import annotations

import orjson
import pytest
from datasets_support import API_SECRET, PROJECT_TOKEN, Api, event

from mpconnect.emulator.server import Faults
from mpconnect.errors import RetryableApiError
from mpconnect.mixpanel.datasets import DatasetsClient

pytestmark = pytest.mark.timeout(60)

VERSIONS = "/datasets/TESTDATA/versions"


def statuses(api: Api, count: int) -> list[int]:
    """Statuses of ``count`` sequential GET versions requests."""
    return [api("GET", VERSIONS, params={"token": PROJECT_TOKEN}).status_code for _ in range(count)]


def test_faults_are_repeatable_for_a_seed(start_server) -> None:
    first = statuses(Api(start_server(fail_rate=0.5, seed=7)), 30)
    again = statuses(Api(start_server(fail_rate=0.5, seed=7)), 30)
    other = statuses(Api(start_server(fail_rate=0.5, seed=8)), 30)

    assert first == again
    assert first != other
    assert set(first) == {200, 500}


def test_a_fault_that_never_clears(start_server) -> None:
    server = start_server(fail_rate=1.0)

    assert set(statuses(Api(server), 10)) == {500}
    assert server.faults_injected() == {"5xx": 10}


def test_faults_change_and_reset_while_running(datasets_server, api: Api) -> None:
    assert statuses(api, 3) == [200, 200, 200]

    datasets_server.set_faults(fail_rate=1.0)
    failing = statuses(api, 3)
    datasets_server.reset_faults()

    assert failing == [500, 500, 500]
    assert statuses(api, 3) == [200, 200, 200]
    assert datasets_server.faults == Faults()


def test_rate_limit_answers_429_with_retry_after(start_server) -> None:
    server = start_server(rate_limit=2)
    api = Api(server)

    responses = [api("GET", VERSIONS, params={"token": PROJECT_TOKEN}) for _ in range(12)]

    throttled = [r for r in responses if r.status_code == 429]
    # Twelve quick requests span at most a few one-second windows of two requests each.
    assert len(throttled) >= 4
    assert {r.status_code for r in responses} == {200, 429}
    for response in throttled:
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"].startswith("rate limit exceeded: retry after")


def test_a_429_storm_with_a_short_retry_after(start_server) -> None:
    server = start_server(throttle_rate=1.0, retry_after=0.25)

    response = Api(server)("POST", VERSIONS, data={"token": PROJECT_TOKEN})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "0.25"
    assert response.json() == {"error": "rate limit exceeded: retry after 0.25 s"}
    assert server.store.list_versions("TESTDATA") == []


def test_faults_on_the_import_endpoints_keep_the_import_shape(start_server) -> None:
    server = start_server(fail_rate=1.0)

    response = Api(server).import_("events", "TESTDATA", "1", [event()])

    assert response.status_code == 500
    assert response.json() == {"error": "internal server error (injected fault)", "status": 0}


def test_faults_can_be_limited_to_some_paths(start_server) -> None:
    server = start_server(fail_rate=1.0, paths=("/import-",))
    api = Api(server)

    version_id = api.create()
    imported = api.import_("events", "TESTDATA", version_id, [event()])

    assert imported.status_code == 500
    assert server.faults_injected() == {"5xx": 1}


def test_a_lost_acknowledgement_stores_the_batch_and_a_resend_does_not_count_twice(
    start_server,
) -> None:
    server = start_server(lost_ack_rate=1.0, paths=("/import-events",))
    client = DatasetsClient(
        server.url, secret=API_SECRET, project_token=PROJECT_TOKEN, ca_bundle=server.ca_path
    )
    version = client.create_version("TESTDATA")
    batch = orjson.dumps([event(i) for i in range(10)])

    with pytest.raises(RetryableApiError) as lost:
        client.import_events("TESTDATA", version.version_id, batch)
    server.reset_faults()
    client.import_events("TESTDATA", version.version_id, batch)

    assert lost.value.status == 0
    contents = server.store.contents("TESTDATA", version.version_id)
    assert (contents.events_total, contents.events_received) == (10, 20)


def test_latency_is_counted(start_server) -> None:
    server = start_server(latency_ms=20)

    assert statuses(Api(server), 2) == [200, 200]
    assert server.faults_injected() == {"latency": 2}


def test_requests_are_counted_per_path(datasets_server, api: Api) -> None:
    version_id = api.create()
    api.import_("events", "TESTDATA", version_id, [event()])
    api.import_("events", "TESTDATA", version_id, [event(1)])
    statuses(api, 2)

    assert datasets_server.request_counts() == {
        "POST /datasets/TESTDATA/versions": 1,
        "POST /import-events": 2,
        "GET /datasets/TESTDATA/versions": 2,
    }
    assert datasets_server.requests_to("/import-events") == 2
    assert datasets_server.requests_to(VERSIONS, method="GET") == 2
    datasets_server.reset_counts()
    assert datasets_server.request_counts() == {}


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"fail_rate": 1.5}, "fail_rate must be between 0 and 1, got 1.5"),
        ({"drop_rate": -0.1}, "drop_rate must be between 0 and 1, got -0.1"),
        ({"rate_limit": -1}, "rate_limit must not be negative"),
        ({"retry_after": -1}, "retry_after must not be negative"),
    ],
)
def test_impossible_fault_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**settings)
