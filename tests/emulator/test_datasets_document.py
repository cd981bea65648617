"""The reference document's own examples, each made against the local server.

Every curl line of ``mixpanel-datasets-api.txt`` is sent with ``requests`` exactly as
curl sends it (``-d`` form fields, ``--get`` turning them into the query string), and
must return the documented shape. The five-step example workflow runs once with
``requests`` and once with the ``curl`` command itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
from datasets_support import API_SECRET, DATASET_SECRET, PROJECT_TOKEN, Api, b64

from mpconnect.sink import ZERO_TIME

pytestmark = pytest.mark.timeout(60)

#: ``-d data=...`` of "Importing an event into a dataset" (its token is "cassie").
CASSIE_EVENT = (
    "eyJldmVudCI6ICJBaXJsaW5lIFJldmlldyIsICJwcm9wZXJ0aWVzIjogeyJ0b2tlbiI6ICJjYXNzaWUiLCAiZGlzdGl"
    "uY3RfaWQiOiAidW5pcXVlIGlkZW50aWZpZXIiLCAiYWlybGluZV9uYW1lIjogImFkcmlhLWFpcndheXMiLCAidGltZSI"
    "6IDEzOTU2MTkyMDB9fQ=="
)
#: ``-d data=...`` of the example workflow's step 3 (its token is "PROJECT_TOKEN").
SKYTRAX_EVENT = (
    "eyJldmVudCI6ICJBaXJsaW5lIFJldmlldyIsICJwcm9wZXJ0aWVzIjogeyJ0b2tlbiI6ICJQUk9KRUNUX1RPS0VOIiwg"
    "ImRpc3RpbmN0X2lkIjogInVuaXF1ZSBpZGVudGlmaWVyIiwgImFpcmxpbmVfbmFtZSI6ICJhZHJpYS1haXJ3YXlzIiwg"
    "InRpbWUiOiAxMzk1NjE5MjAwfX0="
)
API_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def assert_new_version(data: dict) -> None:
    """The documented object of a version just created."""
    assert set(data) == {"created_at", "is_live", "state", "version_id"}
    assert API_TIME.match(data["created_at"])
    assert data["is_live"] is False
    assert data["state"] == {
        "readable": False,
        "readable_at": ZERO_TIME,
        "ready": False,
        "ready_at": ZERO_TIME,
        "writable": True,
    }
    assert isinstance(data["version_id"], str) and data["version_id"].isdigit()


def test_creating_a_dataset_version(api: Api) -> None:
    response = api("POST", "/datasets/TESTDATA/versions", data={"token": PROJECT_TOKEN})

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"data"}
    assert_new_version(body["data"])


def test_listing_all_dataset_versions(api: Api) -> None:
    first, second = api.create(), api.create()

    response = api("GET", "/datasets/TESTDATA/versions", params={"token": PROJECT_TOKEN})

    assert response.status_code == 200
    listed = response.json()["data"]
    assert [v["version_id"] for v in listed] == [second, first]
    for version in listed:
        assert_new_version(version)


def test_updating_a_dataset_version(api: Api) -> None:
    version_id = api.create()

    response = api(
        "PATCH",
        f"/datasets/TESTDATA/versions/{version_id}",
        data={"token": PROJECT_TOKEN, "state": '{"readable":true,"writable":true}'},
    )

    assert response.status_code == 200
    assert response.json() == {"data": None}
    state = api.server.store.get_version("TESTDATA", version_id)
    assert state is not None and state.readable and state.writable and state.ready


def test_deleting_a_dataset_version(api: Api) -> None:
    version_id = api.create()

    # curl -XDELETE --get ... -d 'token=PROJECT_TOKEN': the token is in the query string.
    response = api(
        "DELETE", f"/datasets/TESTDATA/versions/{version_id}", params={"token": PROJECT_TOKEN}
    )

    assert response.status_code == 200
    assert response.json() == {"data": None}
    assert api.server.store.list_versions("TESTDATA") == []


def test_importing_an_event_into_a_dataset(start_server) -> None:
    server = start_server(project_token="cassie")
    api = Api(server)
    response = api("POST", "/datasets/TESTDATA/versions", data={"token": "cassie"})
    version_id = response.json()["data"]["version_id"]

    response = api(
        "POST",
        "/import-events?",
        data={
            "data": CASSIE_EVENT,
            "verbose": "1",
            "dataset_id": "TESTDATA",
            "dataset_version": version_id,
        },
    )

    assert response.status_code == 200
    assert response.json() == {"error": None, "status": 1}
    [stored] = list(server.store.iter_events("TESTDATA", version_id))
    assert stored["properties"]["airline_name"] == "adria-airways"
    api.close()


def test_import_without_verbose_answers_1_or_0(api: Api) -> None:
    version_id = api.create()
    fields = {"dataset_id": "TESTDATA", "dataset_version": version_id}

    accepted = api("POST", "/import-events", data={"data": SKYTRAX_EVENT, **fields})
    refused = api("POST", "/import-events", data={"data": "not base64!", **fields})

    assert (accepted.status_code, accepted.text) == (200, "1")
    assert (refused.status_code, refused.text) == (400, "0")


def test_the_python_lines_of_step_3_make_an_importable_event(api: Api) -> None:
    data = {
        "event": "Airline Review",
        "properties": {
            "airline_name": "adria-airways",
            "distinct_id": "unique identifier",
            "time": 1395619200,
            "token": "PROJECT_TOKEN",
        },
    }
    version_id = api.create("SKYTRAX")

    response = api(
        "POST",
        "/import-events",
        data={
            "data": b64(data),
            "verbose": "1",
            "dataset_id": "SKYTRAX",
            "dataset_version": version_id,
        },
    )

    assert response.json() == {"error": None, "status": 1}


def test_the_example_workflow_with_requests(datasets_server) -> None:
    # Step 1: the SKYTRAX dataset exists; it has its own dataset secret.
    api = Api(datasets_server, secret=DATASET_SECRET)
    # Step 2: create a version.
    created = api("POST", "/datasets/SKYTRAX/versions", data={"token": PROJECT_TOKEN}).json()
    assert_new_version(created["data"])
    version_id = created["data"]["version_id"]
    # Step 3: import the base64-encoded event.
    imported = api(
        "POST",
        "/import-events",
        data={
            "data": SKYTRAX_EVENT,
            "verbose": "1",
            "dataset_id": "SKYTRAX",
            "dataset_version": version_id,
        },
    )
    assert imported.json() == {"error": None, "status": 1}
    # Step 4: update the state to readable (both fields).
    updated = api(
        "PATCH",
        f"/datasets/SKYTRAX/versions/{version_id}",
        data={"token": PROJECT_TOKEN, "state": '{"readable":true,"writable":true}'},
    )
    assert updated.json() == {"data": None}
    # Step 5: list until is_live.
    live = wait_live(
        lambda: api("GET", "/datasets/SKYTRAX/versions", params={"token": PROJECT_TOKEN}).json()
    )
    assert live["version_id"] == version_id
    assert live["state"]["readable"] is True
    assert live["state"]["ready"] is True
    assert live["state"]["writable"] is True
    assert API_TIME.match(live["state"]["readable_at"])
    assert API_TIME.match(live["state"]["ready_at"])
    assert datasets_server.store.contents("SKYTRAX", version_id).events_total == 1
    api.close()


def wait_live(listing, timeout: float = 10.0) -> dict:
    """Poll ``listing()`` (a GET versions body) until a version is live; return it."""
    deadline = time.monotonic() + timeout
    while True:
        body = listing()
        live = [v for v in body["data"] if v["is_live"]]
        if live:
            return live[0]
        assert time.monotonic() < deadline, f"no version became live: {body}"
        time.sleep(0.05)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_the_example_workflow_with_curl(datasets_server) -> None:
    base = datasets_server.url
    ca = str(datasets_server.ca_path)

    def curl(*args: str) -> dict:
        done = subprocess.run(
            ["curl", "--silent", "--show-error", "--cacert", ca, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return json.loads(done.stdout)

    # The document's lines, with its host replaced by the local server's.
    created = curl(
        "-XPOST",
        f"{base}/datasets/SKYTRAX/versions",
        "-u",
        f"{API_SECRET}:",
        "-d",
        "token=PROJECT_TOKEN",
    )
    assert_new_version(created["data"])
    version_id = created["data"]["version_id"]
    imported = curl(
        f"{base}/import-events",
        "-u",
        f"{DATASET_SECRET}:",
        "-d",
        f"data={SKYTRAX_EVENT}",
        "-d",
        "verbose=1",
        "-d",
        "dataset_id=SKYTRAX",
        "-d",
        f"dataset_version={version_id}",
    )
    assert imported == {"error": None, "status": 1}
    updated = curl(
        "-XPATCH",
        f"{base}/datasets/SKYTRAX/versions/{version_id}",
        "-u",
        f"{API_SECRET}:",
        "-d",
        "token=PROJECT_TOKEN",
        "-d",
        'state={"readable":true,"writable":true}',
    )
    assert updated == {"data": None}
    live = wait_live(
        lambda: curl(
            "--get",
            f"{base}/datasets/SKYTRAX/versions",
            "-u",
            f"{API_SECRET}:",
            "-d",
            "token=PROJECT_TOKEN",
        )
    )
    assert live["version_id"] == version_id
    assert live["state"]["ready"] is True
    deleted = curl(
        "-XDELETE",
        "--get",
        f"{base}/datasets/SKYTRAX/versions/{version_id}",
        "-u",
        f"{API_SECRET}:",
        "-d",
        "token=PROJECT_TOKEN",
    )
    assert deleted == {"data": None}
    listed = curl(
        "--get",
        f"{base}/datasets/SKYTRAX/versions",
        "-u",
        f"{API_SECRET}:",
        "-d",
        "token=PROJECT_TOKEN",
    )
    assert listed == {"data": []}


@pytest.mark.parametrize(
    "escape",
    [
        lambda d: d,  # as curl -d sends it: "+" unescaped
        lambda d: d.replace("+", "%2B"),  # as mpconnect's client sends it
        lambda d: d.replace("+", "%2b").replace("/", "%2f").replace("=", "%3d"),
    ],
)
def test_base64_data_decodes_however_it_is_escaped(api: Api, escape) -> None:
    records = [
        {
            "event": "Airline Review",
            "properties": {
                "token": PROJECT_TOKEN,
                "distinct_id": "rev>>?",
                "time": 1395619200,
                "note": "~~~>>>???",
            },
        }
    ]
    data = b64(records)
    assert "+" in data and "/" in data
    version_id = api.create()

    response = api(
        "POST",
        "/import-events",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        data=f"data={escape(data)}&verbose=1&dataset_id=TESTDATA&dataset_version={version_id}",
    )

    assert response.json() == {"error": None, "status": 1}
    [stored] = api.server.store.iter_events("TESTDATA", version_id)
    assert stored["properties"]["note"] == "~~~>>>???"
