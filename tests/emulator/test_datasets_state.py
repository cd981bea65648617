"""Version state on the local server, as the document gives it: ready, live, retention."""

from __future__ import annotations

import time

import pytest
from datasets_support import PROJECT_TOKEN, Api

from mpconnect.sink import ZERO_TIME

pytestmark = pytest.mark.timeout(60)

VERSIONS = "/datasets/TESTDATA/versions"


def listing(api: Api) -> list[dict]:
    """The GET versions list."""
    response = api("GET", VERSIONS, params={"token": PROJECT_TOKEN})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def by_id(api: Api) -> dict[str, dict]:
    """The versions, keyed by id."""
    return {v["version_id"]: v for v in listing(api)}


def set_state(api: Api, version_id: str, readable: bool, writable: bool) -> None:
    """PATCH both state fields."""
    state = f'{{"readable":{str(readable).lower()},"writable":{str(writable).lower()}}}'
    response = api(
        "PATCH", f"{VERSIONS}/{version_id}", data={"token": PROJECT_TOKEN, "state": state}
    )
    assert response.json() == {"data": None}


def wait_until_live(api: Api, version_id: str, timeout: float = 10.0) -> dict[str, dict]:
    """Poll until ``version_id`` is live; return the listing then."""
    deadline = time.monotonic() + timeout
    while True:
        versions = by_id(api)
        if versions[version_id]["is_live"]:
            return versions
        assert time.monotonic() < deadline, f"version {version_id} never became live"
        time.sleep(0.02)


def test_readable_makes_a_version_ready_then_live(start_server) -> None:
    api = Api(start_server(live_delay=0.3))
    version_id = api.create()

    set_state(api, version_id, readable=True, writable=False)
    ready = by_id(api)[version_id]

    assert ready["state"]["readable"] is True
    assert ready["state"]["ready"] is True
    assert ready["state"]["writable"] is False
    assert ready["state"]["readable_at"] != ZERO_TIME
    assert ready["state"]["ready_at"] != ZERO_TIME
    assert wait_until_live(api, version_id)[version_id]["state"] == ready["state"]


def test_a_zero_live_delay_is_live_at_once(start_server) -> None:
    api = Api(start_server(live_delay=0))
    version_id = api.create()

    set_state(api, version_id, readable=True, writable=False)

    assert by_id(api)[version_id]["is_live"] is True


def test_only_the_newest_ready_version_is_live(start_server) -> None:
    api = Api(start_server(live_delay=0))
    first, second, third = api.create(), api.create(), api.create()
    set_state(api, first, readable=True, writable=False)
    set_state(api, second, readable=True, writable=False)

    versions = by_id(api)

    assert [v for v, info in versions.items() if info["is_live"]] == [second]
    assert versions[third]["state"]["ready"] is False


def test_making_a_version_unreadable_again_clears_ready(api: Api) -> None:
    version_id = api.create()
    set_state(api, version_id, readable=True, writable=True)

    set_state(api, version_id, readable=False, writable=True)

    state = by_id(api)[version_id]["state"]
    assert state == {
        "readable": False,
        "readable_at": ZERO_TIME,
        "ready": False,
        "ready_at": ZERO_TIME,
        "writable": True,
    }


def test_creating_a_sixth_version_deletes_the_oldest(api: Api) -> None:
    created = [api.create() for _ in range(6)]

    kept = [v["version_id"] for v in listing(api)]

    assert kept == list(reversed(created[1:]))
    assert len(kept) == 5


def test_version_ids_are_increasing_decimal_strings(api: Api) -> None:
    created = [api.create() for _ in range(4)]

    assert all(v.isdigit() for v in created)
    assert [int(v) for v in created] == sorted(int(v) for v in created)
    assert len(set(created)) == 4


def test_datasets_are_separate(api: Api) -> None:
    mine = api.create("TESTDATA")
    api.create("SKYTRAX")

    assert [v["version_id"] for v in listing(api)] == [mine]


def test_a_deleted_version_is_gone(api: Api) -> None:
    keep, drop = api.create(), api.create()

    api("DELETE", f"{VERSIONS}/{drop}", params={"token": PROJECT_TOKEN})

    assert list(by_id(api)) == [keep]
    again = api("DELETE", f"{VERSIONS}/{drop}", params={"token": PROJECT_TOKEN})
    assert again.status_code == 404
