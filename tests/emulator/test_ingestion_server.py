"""The local server's ``/import`` and ``/engage``: Mixpanel's checks and answers."""

from __future__ import annotations

import gzip
import time
from typing import Any

import orjson
import pytest
import requests
from ingestion_support import (
    PROJECT_ID,
    PROJECT_SECRET,
    SA_SECRET,
    SA_USER,
    TOKEN,
    LocalIngestion,
    event,
    profile_update,
)

from mpconnect.emulator.ingestion_api import DROP, MAX_BODY_BYTES

pytestmark = pytest.mark.timeout(30)

SERVICE_ACCOUNT = (SA_USER, SA_SECRET)


def post(
    server: LocalIngestion,
    path: str,
    records: Any,
    *,
    params: dict[str, str] | None = None,
    auth: tuple[str, str] | None = SERVICE_ACCOUNT,
    compress: bool = True,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> requests.Response:
    """POST records (gzipped JSON by default) to the local server."""
    if params is None:
        params = {"strict": "1", "project_id": PROJECT_ID}
    body = raw if raw is not None else orjson.dumps(records)
    headers = {"Content-Type": content_type}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return requests.post(
        f"{server.url}{path}",
        params=params,
        data=body,
        headers=headers,
        auth=auth,
        verify=str(server.ca_path),
        timeout=10,
    )


def test_valid_events_are_stored_and_counted(ingestion_server: LocalIngestion) -> None:
    records = [event(i) for i in range(3)]
    answer = post(ingestion_server, "/import", records)
    assert answer.status_code == 200
    assert answer.json() == {"code": 200, "num_records_imported": 3, "status": "OK"}
    assert sorted(e["properties"]["$insert_id"] for e in ingestion_server.events()) == sorted(
        r["properties"]["$insert_id"] for r in records
    )
    assert ingestion_server.endpoints.stats.gzip_requests["/import"] == 1


def test_strict_mode_lists_failed_records_and_keeps_the_rest(
    ingestion_server: LocalIngestion,
) -> None:
    records = [
        event(0),
        event(1, time=100),
        event(2, distinct_id="anon"),
        event(3, insert_id="not_valid!"),
        event(4),
    ]
    answer = post(ingestion_server, "/import", records)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == 400
    assert body["status"] == "Bad Request"
    assert body["error"] == "some data points in the request failed validation"
    assert body["num_records_imported"] == 2
    failed = {f["index"]: f for f in body["failed_records"]}
    assert sorted(failed) == [1, 2, 3]
    assert failed[1]["field"] == "properties.time"
    assert "1971" in failed[1]["message"]
    assert failed[1]["$insert_id"] == records[1]["properties"]["$insert_id"]
    assert failed[2]["field"] == "properties.distinct_id"
    assert failed[3]["field"] == "properties.$insert_id"
    assert ingestion_server.contents().events_total == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event": ""}, "event"),
        ({"properties": {"time": 1_700_000_000, "$insert_id": "abc-1"}}, "properties.distinct_id"),
        ({"time": time.time() + 7200}, "properties.time"),
        ({"time": "yesterday"}, "properties.time"),
        ({"insert_id": "x" * 37}, "properties.$insert_id"),
        ({"insert_id": "null"}, "properties.$insert_id"),
        ({"token": "another-project"}, "properties.token"),
        ({"distinct_id": "00000000-0000-0000-0000-000000000000"}, "properties.distinct_id"),
    ],
)
def test_each_strict_check_names_its_field(
    ingestion_server: LocalIngestion, change: dict[str, Any], field: str
) -> None:
    if "event" in change or "properties" in change:
        record = {**event(0), **change}
    else:
        record = event(0, **change)
    answer = post(ingestion_server, "/import", [record])
    assert answer.status_code == 400
    assert [f["field"] for f in answer.json()["failed_records"]] == [field]


def test_times_in_milliseconds_are_accepted_and_stored_in_seconds(
    ingestion_server: LocalIngestion,
) -> None:
    answer = post(ingestion_server, "/import", [event(0, time=1_700_000_000_123)])
    assert answer.status_code == 200
    assert ingestion_server.events()[0]["properties"]["time"] == 1_700_000_000


def test_without_strict_invalid_events_are_dropped_with_a_200(
    ingestion_server: LocalIngestion,
) -> None:
    answer = post(
        ingestion_server, "/import", [event(0), event(1, time=5)], params={"project_id": PROJECT_ID}
    )
    assert answer.status_code == 200
    assert answer.json()["num_records_imported"] == 1


def test_a_resent_batch_is_kept_once(ingestion_server: LocalIngestion) -> None:
    records = [event(i) for i in range(10)]
    post(ingestion_server, "/import", records)
    post(ingestion_server, "/import", records)
    contents = ingestion_server.contents()
    assert contents.events_total == 10
    assert contents.events_received == 20


def test_plain_json_bodies_and_ndjson_are_accepted(ingestion_server: LocalIngestion) -> None:
    assert post(ingestion_server, "/import", [event(0)], compress=False).status_code == 200
    ndjson = b"\n".join(orjson.dumps(event(i)) for i in (1, 2))
    answer = post(
        ingestion_server, "/import", None, raw=ndjson, content_type="application/x-ndjson"
    )
    assert answer.json()["num_records_imported"] == 2
    assert ingestion_server.contents().events_total == 3


def test_request_limits(ingestion_server: LocalIngestion) -> None:
    too_many = post(ingestion_server, "/import", [event(i) for i in range(2001)])
    assert too_many.status_code == 400
    assert "2000" in too_many.json()["error"]
    big = orjson.dumps([event(0, extra={"blob": "x" * (MAX_BODY_BYTES + 10)})])
    too_large = post(ingestion_server, "/import", None, raw=big)
    assert too_large.status_code == 413
    assert too_large.json()["status"] == "Request Entity Too Large"
    not_gzip = requests.post(
        f"{ingestion_server.url}/import",
        params={"strict": "1"},
        data=b"\x1f\x8bnot gzip",
        auth=(TOKEN, ""),
        headers={"Content-Encoding": "gzip"},
        verify=str(ingestion_server.ca_path),
        timeout=10,
    )
    assert not_gzip.status_code == 400
    not_json = post(ingestion_server, "/import", None, raw=b"[{")
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]
    assert ingestion_server.contents().events_total == 0


@pytest.mark.parametrize(
    ("auth", "params", "how"),
    [
        (SERVICE_ACCOUNT, {"strict": "1", "project_id": PROJECT_ID}, "service account"),
        ((TOKEN, ""), {"strict": "1"}, "project token"),
        ((PROJECT_SECRET, ""), {"strict": "1"}, "project secret"),
    ],
)
def test_the_three_ways_to_authenticate(
    ingestion_server: LocalIngestion, auth: tuple[str, str], params: dict[str, str], how: str
) -> None:
    answer = post(ingestion_server, "/import", [event(0)], auth=auth, params=params)
    assert answer.status_code == 200
    assert ingestion_server.endpoints.stats.auth == {how: 1}


@pytest.mark.parametrize(
    ("auth", "params"),
    [
        (None, {"strict": "1"}),
        ((SA_USER, "wrong"), {"strict": "1", "project_id": PROJECT_ID}),
        (SERVICE_ACCOUNT, {"strict": "1", "project_id": "999"}),
        (SERVICE_ACCOUNT, {"strict": "1"}),
        (("wrong-token", ""), {"strict": "1"}),
    ],
)
def test_wrong_credentials_are_refused(
    ingestion_server: LocalIngestion, auth: tuple[str, str] | None, params: dict[str, str]
) -> None:
    answer = post(ingestion_server, "/import", [event(0)], auth=auth, params=params)
    assert answer.status_code == 401
    assert answer.json()["status"] == "Unauthorized"
    assert ingestion_server.contents().events_total == 0


def test_engage_stores_updates_and_answers_status_1(ingestion_server: LocalIngestion) -> None:
    updates = [profile_update(i) for i in range(3)] + [
        {"$token": TOKEN, "$distinct_id": "user-1", "$add": {"reviews": 2}},
        {"$token": TOKEN, "$distinct_id": "user-1", "$unset": ["old"]},
    ]
    answer = post(ingestion_server, "/engage", updates, params={"verbose": "1"})
    assert answer.status_code == 200
    assert answer.json() == {"status": 1, "error": None}
    assert ingestion_server.contents().people_total == 5
    assert ingestion_server.contents().profiles == 3


def test_engage_answers_200_with_failed_records_in_strict_mode(
    ingestion_server: LocalIngestion,
) -> None:
    updates = [
        profile_update(0),
        profile_update(1, distinct_id="null"),
        {"$token": TOKEN, "$distinct_id": "u", "$add": {"n": "two"}},
        {"$token": "other", "$distinct_id": "u", "$set": {"a": 1}},
        {"$token": TOKEN, "$distinct_id": "u"},
    ]
    answer = post(ingestion_server, "/engage", updates, params={"strict": "1", "verbose": "1"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == 0
    assert body["num_records_imported"] == 1
    assert [(f["index"], f["field"]) for f in body["failed_records"]] == [
        (1, "$distinct_id"),
        (2, "$add.n"),
        (3, "$token"),
        (4, ""),
    ]
    assert ingestion_server.contents().people_total == 1


def test_engage_without_verbose_answers_1_or_0(ingestion_server: LocalIngestion) -> None:
    assert post(ingestion_server, "/engage", [profile_update(0)], params={}).text == "1"
    assert (
        post(ingestion_server, "/engage", [profile_update(1, distinct_id="anon")], params={}).text
        == "0"
    )
    form = requests.post(
        f"{ingestion_server.url}/engage",
        data={"data": orjson.dumps(profile_update(2)).decode()},
        verify=str(ingestion_server.ca_path),
        timeout=10,
    )
    assert form.text == "1"
    assert ingestion_server.contents().profiles == 2


def test_injected_429_uses_mixpanels_body(ingestion_server: LocalIngestion) -> None:
    ingestion_server.faults.fail_next(429, 503, path="/import")
    first = post(ingestion_server, "/import", [event(0)])
    assert first.status_code == 429
    assert first.json() == {
        "code": 429,
        "error": "Project exceeded rate limits. Please retry the request with exponential backoff.",
        "status": "Too Many Requests",
    }
    assert "Retry-After" not in first.headers
    assert post(ingestion_server, "/import", [event(0)]).status_code == 503
    assert post(ingestion_server, "/import", [event(0)]).status_code == 200
    assert ingestion_server.endpoints.stats.count("/import") == 3


def test_a_dropped_connection_gets_no_answer(ingestion_server: LocalIngestion) -> None:
    ingestion_server.faults.fail_next(DROP)
    with pytest.raises(requests.ConnectionError):
        post(ingestion_server, "/import", [event(0)])
    assert ingestion_server.contents().events_total == 0


def test_inspect_shows_the_project_dataset(ingestion_server: LocalIngestion, cli: Any) -> None:
    post(ingestion_server, "/import", [event(i) for i in range(4)])
    post(ingestion_server, "/engage", [profile_update(0)], params={"verbose": "1"})
    result = cli(
        "inspect", f"PROJECT{PROJECT_ID}", "--store", ingestion_server.store_path, "--json"
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["events_total"] == 4
    assert report["profiles"] == 1
    assert report["is_live"] is True


def test_an_event_over_1_mb_fails_alone(ingestion_server: LocalIngestion) -> None:
    records = [event(0), event(1, extra={"blob": "y" * (1024 * 1024)})]
    answer = post(ingestion_server, "/import", records)
    assert answer.status_code == 400
    assert [(f["index"], f["message"]) for f in answer.json()["failed_records"]] == [
        (1, "event is larger than 1 MB of JSON")
    ]
    assert ingestion_server.contents().events_total == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--project-id", "my-project"), "must be a numeric project id"),
        (("--service-account", "no-secret-here"), "expected USER:SECRET"),
    ],
)
def test_serve_checks_the_ingestion_options(
    cli: Any, tmp_path: Any, args: tuple[str, ...], words: str
) -> None:
    result = cli(
        "serve",
        "--port",
        "0",
        "--store",
        tmp_path / "serve.sqlite3",
        "--tls-dir",
        tmp_path / "tls",
        *args,
    )
    assert result.exit_code == 2
    assert words in result.output
