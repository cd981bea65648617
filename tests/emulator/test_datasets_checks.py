"""Every request the local server refuses, with the document's error shape and text.

Version endpoints answer ``{"error": "..."}``; the import endpoints answer
``{"error": "...", "status": 0}`` (``verbose=1``). A refused import stores nothing.
"""

from __future__ import annotations

import base64

import pytest
import requests
from datasets_support import DATASET_SECRET, PROJECT_TOKEN, Api, b64, event, person

from mpconnect.emulator.server import HTTPS_REQUIRED

pytestmark = pytest.mark.timeout(60)

VERSIONS = "/datasets/TESTDATA/versions"


def refused(response: requests.Response, status: int, *, imports: bool = False) -> str:
    """Assert the error shape and status; return the error text."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ({"error", "status"} if imports else {"error"})
    if imports:
        assert body["status"] == 0
    return body["error"]


# -- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,fields",
    [
        ("POST", VERSIONS, {"token": PROJECT_TOKEN}),
        ("GET", VERSIONS, {"token": PROJECT_TOKEN}),
        ("PATCH", VERSIONS + "/1", {"token": PROJECT_TOKEN, "state": "{}"}),
        ("DELETE", VERSIONS + "/1", {"token": PROJECT_TOKEN}),
    ],
)
def test_missing_credentials_are_refused(datasets_server, method, path, fields) -> None:
    api = Api(datasets_server, secret=None)
    response = api(method, path, data=fields)

    assert refused(response, 401) == (
        "missing credentials: use Basic auth with the project secret or the dataset secret "
        "as the user name"
    )
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_missing_credentials_on_import_are_refused(datasets_server) -> None:
    api = Api(datasets_server, secret=None)
    response = api.import_("events", "TESTDATA", "1", [event()])

    assert refused(response, 401, imports=True).startswith("missing credentials")


def test_a_wrong_secret_is_refused(datasets_server) -> None:
    api = Api(datasets_server, secret="not-the-secret")
    response = api("GET", VERSIONS, params={"token": PROJECT_TOKEN})

    assert refused(response, 401) == (
        "invalid credentials: the user name is neither the project secret nor a dataset secret"
    )
    assert "not-the-secret" not in response.text


def test_an_authorization_that_is_not_basic_is_refused(datasets_server) -> None:
    response = Api(datasets_server, secret=None)(
        "GET",
        VERSIONS,
        params={"token": PROJECT_TOKEN},
        headers={"Authorization": "Bearer API_SECRET"},
    )

    assert refused(response, 401).startswith("unsupported authorization scheme")


def test_a_malformed_basic_header_is_refused(datasets_server) -> None:
    response = Api(datasets_server, secret=None)(
        "GET", VERSIONS, params={"token": PROJECT_TOKEN}, headers={"Authorization": "Basic %%%"}
    )

    assert refused(response, 401) == "malformed Basic authorization header"


def test_a_dataset_secret_works_for_its_own_dataset_only(datasets_server) -> None:
    api = Api(datasets_server, secret=DATASET_SECRET)

    own = api("POST", "/datasets/SKYTRAX/versions", data={"token": PROJECT_TOKEN})
    other = api("POST", VERSIONS, data={"token": PROJECT_TOKEN})

    assert own.status_code == 200
    assert refused(other, 403) == (
        "the dataset secret given is not the secret of dataset TESTDATA; use that dataset's "
        "secret or the project secret"
    )
    version_id = own.json()["data"]["version_id"]
    imported = api.import_("events", "TESTDATA", version_id, [event()])
    assert refused(imported, 403, imports=True).startswith(
        "the dataset secret given is not the secret of dataset TESTDATA"
    )


# -- token -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_missing_token_is_refused(api: Api, method: str) -> None:
    response = api(method, VERSIONS)

    assert refused(response, 400) == (
        "token is required: the project token, as a form field or in the query string"
    )


def test_a_wrong_token_is_refused(api: Api) -> None:
    response = api("POST", VERSIONS, data={"token": "another-project"})

    assert refused(response, 403) == "token 'another-project' is not this project's token"


def test_a_wrong_token_field_on_import_is_refused(api: Api) -> None:
    version_id = api.create()
    response = api.import_("events", "TESTDATA", version_id, [event()], token="another")

    assert refused(response, 403, imports=True) == "token 'another' is not this project's token"


# -- datasets and versions -----------------------------------------------------------------


def test_an_unknown_dataset_is_refused(api: Api) -> None:
    created = api("POST", "/datasets/NOSUCH/versions", data={"token": PROJECT_TOKEN})
    listed = api("GET", "/datasets/NOSUCH/versions", params={"token": PROJECT_TOKEN})
    imported = api.import_("events", "NOSUCH", "1", [event()])

    assert refused(created, 404) == "dataset NOSUCH does not exist"
    assert refused(listed, 404) == "dataset NOSUCH does not exist"
    assert refused(imported, 404, imports=True) == "dataset NOSUCH does not exist"


def test_an_unknown_version_is_refused(api: Api) -> None:
    state = '{"readable":true,"writable":false}'
    patched = api("PATCH", VERSIONS + "/42", data={"token": PROJECT_TOKEN, "state": state})
    deleted = api("DELETE", VERSIONS + "/42", params={"token": PROJECT_TOKEN})
    imported = api.import_("people", "TESTDATA", "42", [person()])

    assert refused(patched, 404) == "version 42 of dataset TESTDATA does not exist"
    assert refused(deleted, 404) == "version 42 of dataset TESTDATA does not exist"
    assert refused(imported, 404, imports=True) == "version 42 of dataset TESTDATA does not exist"


def test_a_dataset_id_over_255_characters_is_refused(api: Api) -> None:
    long_id = "A" * 256
    in_path = api("POST", f"/datasets/{long_id}/versions", data={"token": PROJECT_TOKEN})
    in_field = api.import_("events", long_id, "1", [event()])

    expected = (
        f"dataset_id '{'A' * 40}...' is longer than 255 characters: it must be an "
        "alphanumeric string less than 256 characters"
    )
    assert refused(in_path, 400) == expected
    assert refused(in_field, 400, imports=True) == expected
    at_limit = api("POST", f"/datasets/{'A' * 255}/versions", data={"token": PROJECT_TOKEN})
    assert refused(at_limit, 404).endswith("does not exist")


@pytest.mark.parametrize("dataset_id", ["TEST-DATA", "test_data", "données"])
def test_a_dataset_id_that_is_not_alphanumeric_is_refused(api: Api, dataset_id: str) -> None:
    response = api("GET", f"/datasets/{dataset_id}/versions", params={"token": PROJECT_TOKEN})

    assert refused(response, 400) == (
        f"dataset_id {dataset_id!r} is not alphanumeric: it must be an alphanumeric string "
        "less than 256 characters"
    )


# -- updating state ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state,message",
    [
        (None, 'state is required: a JSON object with both "readable" and "writable"'),
        (
            '{"readable": true}',
            "state.writable is missing: updates to state must include both "
            '"readable" and "writable"',
        ),
        (
            '{"writable": false}',
            "state.readable is missing: updates to state must include both "
            '"readable" and "writable"',
        ),
        (
            '{"readable": true, "writable": false, "ready": true}',
            "state.ready is read-only; only readable and writable can be changed",
        ),
        (
            '{"readable": true, "writable": false, "ready_at": "2017-08-22T06:05:38Z"}',
            "state.ready_at is read-only; only readable and writable can be changed",
        ),
        (
            '{"readable": true, "writable": false, "readable_at": "2017-08-22T06:05:38Z"}',
            "state.readable_at is read-only; only readable and writable can be changed",
        ),
        (
            '{"readable": true, "writable": false, "is_live": true}',
            "state.is_live is not a field of the dataset version state; only readable and "
            "writable can be changed",
        ),
        ('{"readable": "yes", "writable": false}', "state.readable must be true or false"),
        ("[true, false]", 'state must be a JSON object with "readable" and "writable"'),
    ],
)
def test_a_bad_state_update_is_refused(api: Api, state: str | None, message: str) -> None:
    version_id = api.create()
    fields = {"token": PROJECT_TOKEN} | ({} if state is None else {"state": state})

    response = api("PATCH", f"{VERSIONS}/{version_id}", data=fields)

    assert refused(response, 400) == message
    unchanged = api.server.store.get_version("TESTDATA", version_id)
    assert unchanged is not None and not unchanged.readable and unchanged.writable


def test_state_that_is_not_json_is_refused(api: Api) -> None:
    version_id = api.create()
    response = api(
        "PATCH", f"{VERSIONS}/{version_id}", data={"token": PROJECT_TOKEN, "state": "readable=true"}
    )

    assert refused(response, 400).startswith("state is not valid JSON: ")


# -- imports ---------------------------------------------------------------------------------


def test_an_import_to_a_version_that_is_not_writable_is_refused(api: Api) -> None:
    version_id = api.create()
    api(
        "PATCH",
        f"{VERSIONS}/{version_id}",
        data={"token": PROJECT_TOKEN, "state": '{"readable":true,"writable":false}'},
    )

    response = api.import_("events", "TESTDATA", version_id, [event()])

    assert refused(response, 400, imports=True) == (
        f"version {version_id} of dataset TESTDATA is not writable"
    )


def test_data_that_is_not_base64_is_refused(api: Api) -> None:
    version_id = api.create()
    response = api(
        "POST",
        "/import-events",
        data={
            "data": "{not base64}",
            "verbose": "1",
            "dataset_id": "TESTDATA",
            "dataset_version": version_id,
        },
    )

    assert refused(response, 400, imports=True).startswith("data is not valid base64: ")


def test_data_that_is_not_json_is_refused(api: Api) -> None:
    version_id = api.create()
    response = api(
        "POST",
        "/import-events",
        data={
            "data": "bm90IGpzb24=",
            "verbose": "1",
            "dataset_id": "TESTDATA",
            "dataset_version": version_id,
        },
    )

    assert refused(response, 400, imports=True).startswith(
        "data is not valid JSON once base64-decoded: "
    )


def test_data_holding_neither_object_nor_array_is_refused(api: Api) -> None:
    version_id = api.create()
    response = api.import_("events", "TESTDATA", version_id, "Airline Review")

    assert refused(response, 400, imports=True) == (
        "data must hold a JSON object or an array of objects"
    )


def test_more_than_1000_records_are_refused_and_1000_accepted(api: Api) -> None:
    version_id = api.create()

    over = api.import_("events", "TESTDATA", version_id, [event(i) for i in range(1001)])
    at_limit = api.import_("events", "TESTDATA", version_id, [event(i) for i in range(1000)])

    assert refused(over, 400, imports=True) == (
        "data holds 1001 records; the limit is 1000 per request"
    )
    assert at_limit.json() == {"error": None, "status": 1}
    assert api.server.store.contents("TESTDATA", version_id).events_total == 1000


def test_missing_import_fields_are_refused(api: Api) -> None:
    version_id = api.create()
    no_version = api(
        "POST",
        "/import-events",
        data={"data": b64([event()]), "verbose": "1", "dataset_id": "TESTDATA"},
    )
    no_dataset = api(
        "POST",
        "/import-events",
        data={"data": b64([event()]), "verbose": "1", "dataset_version": version_id},
    )
    no_data = api(
        "POST",
        "/import-events",
        data={"verbose": "1", "dataset_id": "TESTDATA", "dataset_version": version_id},
    )

    assert refused(no_version, 400, imports=True) == (
        "dataset_version is required: the version_id to import into"
    )
    assert refused(no_dataset, 400, imports=True) == "dataset_id is required"
    assert refused(no_data, 400, imports=True) == (
        "data is required: base64 of a JSON array of at most 1000 records"
    )


def _without(record: dict, *path: str) -> dict:
    if len(path) == 1:
        return {k: v for k, v in record.items() if k != path[0]}
    return {**record, path[0]: _without(record[path[0]], *path[1:])}


@pytest.mark.parametrize(
    "bad,message",
    [
        (
            _without(event(1), "properties", "token"),
            "record 1: properties.token is missing: every record needs the project token",
        ),
        (
            _without(event(1), "properties", "distinct_id"),
            "record 1: properties.distinct_id is missing",
        ),
        (
            event(1, token="another-project"),
            "record 1: properties.token is not this project's token",
        ),
        (
            _without(event(1), "event"),
            'record 1: event is missing: every event needs an "event" name',
        ),
        (_without(event(1), "properties"), "record 1: properties is missing or not an object"),
        ("Airline Review", "record 1: is not a JSON object"),
    ],
)
def test_a_bad_event_refuses_its_whole_batch(api: Api, bad: object, message: str) -> None:
    version_id = api.create()

    response = api.import_("events", "TESTDATA", version_id, [event(0), bad, event(2)])

    assert refused(response, 400, imports=True) == message
    contents = api.server.store.contents("TESTDATA", version_id)
    assert (contents.events_total, contents.events_received) == (0, 0)


@pytest.mark.parametrize(
    "bad,message",
    [
        (
            _without(person(1), "$token"),
            "record 1: $token is missing: every record needs the project token",
        ),
        (_without(person(1), "$distinct_id"), "record 1: $distinct_id is missing"),
        (person(1, token="another-project"), "record 1: $token is not this project's token"),
        ([person(1)], "record 1: is not a JSON object"),
    ],
)
def test_a_bad_people_record_refuses_its_whole_batch(api: Api, bad: object, message: str) -> None:
    version_id = api.create()

    response = api.import_("people", "TESTDATA", version_id, [person(0), bad])

    assert refused(response, 400, imports=True) == message
    assert api.server.store.contents("TESTDATA", version_id).people_total == 0


def test_parameters_are_read_from_the_query_string_too(api: Api) -> None:
    version_id = api.create()

    response = api(
        "POST",
        "/import-people",
        params={
            "verbose": "1",
            "dataset_id": "TESTDATA",
            "dataset_version": version_id,
        },
        data={"data": b64([person(0), person(1)])},
    )

    assert response.json() == {"error": None, "status": 1}
    assert api.server.store.contents("TESTDATA", version_id).profiles == 2


def test_an_unknown_path_or_method_answers_the_error_shape(api: Api) -> None:
    unknown = api("GET", "/datasets", params={"token": PROJECT_TOKEN})
    wrong_method = api("PUT", f"{VERSIONS}/1", data={"token": PROJECT_TOKEN})

    assert refused(unknown, 404) == "no endpoint GET /datasets"
    assert refused(wrong_method, 405) == (
        "method PUT is not allowed on /datasets/TESTDATA/versions/1"
    )


# -- HTTPS only ----------------------------------------------------------------------------


def test_the_http_listener_answers_https_required(start_server) -> None:
    server = start_server(http=True)

    response = requests.post(
        server.http_url + "/datasets/TESTDATA/versions",
        auth=("API_SECRET", ""),
        data={"token": PROJECT_TOKEN},
        timeout=10,
    )

    assert refused(response, 403) == f"{HTTPS_REQUIRED}; use {server.url}"
    imported = requests.post(server.http_url + "/import-events", data={"verbose": "1"}, timeout=10)
    assert refused(imported, 403, imports=True).startswith("HTTPS is required")
    assert server.request_counts() == {}


# -- malformed input found in review: each a 400 (or 401), never a 500 ----------------------


def test_a_secret_with_non_ascii_characters_is_refused_not_a_crash(datasets_server) -> None:
    api = Api(datasets_server, secret=None)
    header = "Basic " + base64.b64encode("sécret:".encode()).decode()
    response = api(
        "GET", VERSIONS, params={"token": PROJECT_TOKEN}, headers={"Authorization": header}
    )
    assert refused(response, 401).startswith("invalid credentials")


@pytest.mark.parametrize(
    "props,problem",
    [
        ({"time": {"a": 1}}, "properties.time must be a number of seconds since 1970"),
        ({"time": [1]}, "properties.time must be a number of seconds since 1970"),
        ({"time": 2**63}, "properties.time must be a number of seconds since 1970"),
        ({"$insert_id": {"x": 1}}, "properties.$insert_id must be a string"),
    ],
)
def test_an_event_field_of_the_wrong_type_is_refused(api, props, problem) -> None:
    version = api.create()
    response = api.import_("events", "TESTDATA", version, [event(0, **props)])
    assert refused(response, 400, imports=True) == f"record 0: {problem}"


def test_a_malformed_multipart_body_is_refused(api) -> None:
    response = api(
        "POST",
        "/import-events",
        data=b"--x\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        params={"verbose": "1"},
    )
    assert response.status_code == 400
    assert "the multipart body is malformed" in response.text


def test_a_dataset_id_with_a_trailing_newline_is_not_alphanumeric(api) -> None:
    response = api("POST", "/datasets/TESTDATA%0A/versions", data={"token": PROJECT_TOKEN})
    assert "is not alphanumeric" in refused(response, 400)
