"""The ingestion sink against the local endpoints: requests, answers, errors, settings."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from ingestion_support import (
    PROJECT_ID,
    SA_USER,
    SECRETS,
    TOKEN,
    LocalIngestion,
    event,
    mixpanel_table,
    profile_update,
)

from mpconnect.emulator.background import BackgroundServer, LocalCA
from mpconnect.emulator.ingestion_api import DROP
from mpconnect.errors import ApiError, ConfigError, RetryableApiError
from mpconnect.sinks.ingestion import IngestionSink

pytestmark = pytest.mark.timeout(30)

MakeSink = Callable[[dict[str, Any]], IngestionSink]


def send(sink: IngestionSink, kind: str, records: list[Any]) -> Any:
    """Import one batch as the engine's upload workers do."""
    return sink.import_batch(kind, "DEMO", "run-1", orjson.dumps(records), len(records))  # type: ignore[arg-type]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_events_go_to_import_gzipped_strict_with_project_id(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    records = [event(i) for i in range(25)]
    result = send(sink, "events", records)
    assert (result.imported, result.rejected) == (25, [])
    stats = ingestion_server.endpoints.stats
    assert stats.gzip_requests["/import"] == 1
    assert stats.last_params["/import"] == {"strict": "1", "project_id": PROJECT_ID}
    assert stats.auth == {"service account": 1}

    def key(record: dict[str, Any]) -> str:
        return record["properties"]["$insert_id"]

    assert sorted(ingestion_server.events(), key=key) == sorted(records, key=key)


def test_people_go_to_engage(ingestion_server: LocalIngestion, make_sink: MakeSink) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    result = send(sink, "people", [profile_update(i) for i in range(7)])
    assert (result.imported, result.rejected) == (7, [])
    stats = ingestion_server.endpoints.stats
    assert stats.gzip_requests["/engage"] == 1
    assert stats.last_params["/engage"] == {"strict": "1", "verbose": "1", "ip": "0"}
    assert ingestion_server.contents().profiles == 7


def test_strict_mode_partial_failure_rejects_only_the_failed_records(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    records = [event(0), event(1, time=60), event(2), event(3, distinct_id="undefined")]
    result = send(sink, "events", records)
    assert result.imported == 2
    assert [index for index, _ in result.rejected] == [1, 3]
    reasons = dict(result.rejected)
    assert reasons[1].startswith("Mixpanel rejected properties.time: ")
    assert "1971" in reasons[1]
    assert reasons[3].startswith("Mixpanel rejected properties.distinct_id: ")
    assert ingestion_server.contents().events_total == 2


def test_engage_failures_in_a_200_are_rejected_records(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    updates = [profile_update(0), profile_update(1, distinct_id="anon"), profile_update(2)]
    result = send(sink, "people", updates)
    assert result.imported == 2
    assert [index for index, _ in result.rejected] == [1]
    assert "$distinct_id" in result.rejected[0][1]


@pytest.mark.parametrize(
    ("status", "path", "kind"),
    [
        (429, "/import", "events"),
        (500, "/import", "events"),
        (502, "/import", "events"),
        (503, "/engage", "people"),
        (429, "/engage", "people"),
    ],
)
def test_429_and_5xx_are_retryable(
    ingestion_server: LocalIngestion, make_sink: MakeSink, status: int, path: str, kind: str
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    ingestion_server.faults.fail_next(status, path=path)
    records = [event(0)] if kind == "events" else [profile_update(0)]
    with pytest.raises(RetryableApiError) as caught:
        send(sink, kind, records)
    assert caught.value.status == status
    assert send(sink, kind, records).imported == 1


def test_retry_after_is_passed_on(ingestion_server: LocalIngestion, make_sink: MakeSink) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    ingestion_server.faults.retry_after = 2.5
    ingestion_server.faults.fail_next(429)
    with pytest.raises(RetryableApiError) as caught:
        send(sink, "events", [event(0)])
    assert caught.value.retry_after == 2.5
    assert "exceeded rate limits" in str(caught.value)


def test_a_dropped_connection_is_retryable(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    ingestion_server.faults.fail_next(DROP)
    with pytest.raises(RetryableApiError) as caught:
        send(sink, "events", [event(0)])
    assert caught.value.status == 0


def test_an_unreachable_server_is_retryable(
    make_sink: MakeSink, ingestion_server: LocalIngestion
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = make_sink(mixpanel_table(ingestion_server, api_url=f"https://127.0.0.1:{port}"))
    with pytest.raises(RetryableApiError) as caught:
        send(sink, "events", [event(0)])
    assert "cannot connect to https://127.0.0.1" in str(caught.value)


def test_a_400_without_failed_records_is_not_retryable(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    with pytest.raises(ApiError) as caught:
        sink.import_batch("events", "DEMO", "run-1", b"[{", 1)
    assert not isinstance(caught.value, RetryableApiError)
    assert caught.value.status == 400
    assert "not valid JSON" in str(caught.value)
    assert "/import of 1 events" in str(caught.value)


def test_an_engage_refusal_without_failed_records_is_an_error(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    with pytest.raises(ApiError) as caught:
        sink.import_batch("people", "DEMO", "run-1", b"[]", 0)
    assert not isinstance(caught.value, RetryableApiError)
    assert "Mixpanel refused the batch" in str(caught.value)


def test_wrong_credentials_name_the_method_but_never_the_secret(
    ingestion_server: LocalIngestion, make_sink: MakeSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MP_SA_SECRET", "not-the-secret")
    sink = make_sink(mixpanel_table(ingestion_server))
    with pytest.raises(ApiError) as caught:
        send(sink, "events", [event(0)])
    assert not isinstance(caught.value, RetryableApiError)
    assert caught.value.status == 401
    assert f"service account {SA_USER}" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("auth", "how"), [("project secret", "project secret"), ("project token", "project token")]
)
def test_project_secret_and_token_authentication(
    ingestion_server: LocalIngestion, make_sink: MakeSink, auth: str, how: str
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server, auth=auth))
    assert send(sink, "events", [event(0)]).imported == 1
    assert ingestion_server.endpoints.stats.auth == {how: 1}
    assert "project_id" not in ingestion_server.endpoints.stats.last_params["/import"]
    assert how in sink.describe()


def test_secrets_stay_out_of_repr_and_describe(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    for auth in ("service account", "project secret"):
        sink = make_sink(mixpanel_table(ingestion_server, auth=auth))
        assert_no_secret(repr(sink))
        assert_no_secret(sink.describe())
        assert_no_secret(repr(sink.settings))
        assert_no_secret(repr(sink.options))


@pytest.mark.parametrize(
    ("region", "url"),
    [
        ("us", "https://api.mixpanel.com"),
        ("eu", "https://api-eu.mixpanel.com"),
        ("in", "https://api-in.mixpanel.com"),
    ],
)
def test_regions_choose_the_data_residency_host(make_sink: MakeSink, region: str, url: str) -> None:
    sink = make_sink({"sink": "ingestion", "project_token": TOKEN, "region": region})
    assert sink.base_url == url
    assert sink.describe() == f"Mixpanel ingestion API {url} (project token)"


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"region": "us-east"}, "mixpanel.region", "'us', 'eu' or 'in'"),
        ({"project_id": "my-project"}, "mixpanel.project_id", "numeric"),
        ({"api_url": "http://api.example.com"}, "mixpanel.api_url", "https://"),
        ({"api_url": "http://127.0.0.1:9"}, "mixpanel.api_url", "allow_http_loopback = true"),
        ({"api_url": "ftp://127.0.0.1"}, "mixpanel.api_url", "https://"),
        (
            {"service_account_user": SA_USER, "service_account_secret": "${MP_SA_SECRET}"},
            "mixpanel.project_id",
            "project id",
        ),
        (
            {"service_account_user": SA_USER, "project_id": "1"},
            "mixpanel.service_account_secret",
            "needs its secret",
        ),
        (
            {"service_account_secret": "${MP_SA_SECRET}"},
            "mixpanel.service_account_user",
            "user name",
        ),
        (
            {
                "service_account_user": SA_USER,
                "project_id": "1",
                "service_account_secret": "written-in-clear",
            },
            "mixpanel.service_account_secret",
            "must not be written in clear",
        ),
    ],
)
def test_bad_settings_name_the_key(
    make_sink: MakeSink, table: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_sink({"sink": "ingestion", "project_token": TOKEN, **table})
    message = str(caught.value)
    assert message.startswith(key)
    assert words in message
    assert "written-in-clear" not in message


def test_plain_http_to_loopback_when_allowed(make_sink: MakeSink) -> None:
    sink = make_sink(
        {
            "sink": "ingestion",
            "project_token": TOKEN,
            "api_url": "http://127.0.0.1:8765/",
            "allow_http_loopback": True,
        }
    )
    assert sink.base_url == "http://127.0.0.1:8765"


def test_without_any_credential_the_sink_says_what_to_add(make_sink: MakeSink) -> None:
    with pytest.raises(ConfigError, match="needs credentials"):
        make_sink({"sink": "ingestion"})


def test_the_sink_has_no_versions(make_sink: MakeSink) -> None:
    sink = make_sink({"sink": "ingestion", "project_token": TOKEN})
    assert sink.versioned is False
    assert (sink.max_batch_records, sink.max_batch_bytes) == (2000, 10 * 1024 * 1024)
    assert sink.list_versions("DEMO") == []
    sink.publish("DEMO", "run-1")
    sink.delete_version("DEMO", "run-1")


def canned_import(local_ca: LocalCA, body: dict[str, Any]) -> BackgroundServer:
    """A server whose /import always answers 400 with ``body``."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_post("/import", answer)
    return BackgroundServer(app, ssl_context=local_ca.server_context())


def test_failed_records_without_an_index_are_found_by_insert_id(
    local_ca: LocalCA, make_sink: MakeSink
) -> None:
    records = [event(i) for i in range(3)]
    failed = {
        "insert_id": records[2]["properties"]["$insert_id"],
        "field": "properties.time",
        "message": "'properties.time' is invalid",
    }
    with canned_import(
        local_ca, {"code": 400, "num_records_imported": 2, "failed_records": [failed]}
    ) as server:
        sink = make_sink(
            {
                "sink": "ingestion",
                "project_token": TOKEN,
                "api_url": server.url,
                "ca_bundle": str(local_ca.ca_path),
            }
        )
        result = send(sink, "events", records)
    assert result.imported == 2
    assert result.rejected == [
        (2, "Mixpanel rejected properties.time: 'properties.time' is invalid")
    ]


def test_a_failed_record_that_cannot_be_identified_fails_the_batch(
    local_ca: LocalCA, make_sink: MakeSink
) -> None:
    body = {
        "code": 400,
        "num_records_imported": 1,
        "failed_records": [{"insert_id": "not-in-the-batch", "message": "invalid"}],
    }
    with canned_import(local_ca, body) as server:
        sink = make_sink(
            {
                "sink": "ingestion",
                "project_token": TOKEN,
                "api_url": server.url,
                "ca_bundle": str(local_ca.ca_path),
            }
        )
        with pytest.raises(ApiError, match="does not identify") as caught:
            send(sink, "events", [event(0), event(1)])
    assert not isinstance(caught.value, RetryableApiError)


def test_events_sharing_an_insert_id_but_not_a_user_are_both_kept(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    records = [
        event(1, distinct_id="u1", insert_id="id-1"),
        event(2, distinct_id="u2", insert_id="id-1"),
    ]
    assert send(sink, "events", records).imported == 2
    assert ingestion_server.contents().events_total == 2, (
        "Mixpanel deduplicates on event, time, distinct_id and $insert_id together"
    )
    assert send(sink, "events", records[:1]).imported == 1
    assert ingestion_server.contents().events_total == 2


def test_one_event_over_the_request_limit_is_rejected_not_a_failed_run(
    ingestion_server: LocalIngestion, make_sink: MakeSink
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    huge = event(1, extra={"blob": "x" * (11 * 1024 * 1024)})
    result = send(sink, "events", [huge])
    assert result.imported == 0
    [(index, reason)] = result.rejected
    assert index == 0 and reason.startswith("Mixpanel refused it as too large")


def test_a_gzip_level_past_nine_is_refused_naming_the_key(make_sink: MakeSink) -> None:
    with pytest.raises(ConfigError) as caught:
        make_sink({"sink": "ingestion", "project_token": TOKEN, "gzip_level": 10})
    message = str(caught.value)
    assert message.startswith("mixpanel.gzip_level")
    assert "less than or equal to 9" in message
