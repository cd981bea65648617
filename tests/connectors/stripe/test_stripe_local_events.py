"""The local Stripe API's ``GET /v1/events`` and retrieving one object, as Stripe documents them."""

from __future__ import annotations

import pytest
import requests

from mpconnect_stripe.localserver.api import RESTRICTED_KEY, TEST_KEY
from mpconnect_stripe.localserver.generate import generate
from mpconnect_stripe.localserver.world import DAY, World

pytestmark = pytest.mark.timeout(60)
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def get(api, path: str, params=None, key: str = TEST_KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return requests.get(f"{api.url}{path}", params=params, headers=headers, timeout=10)


@pytest.fixture
def world() -> World:
    world = generate(seed=3, customers=8)
    world.record_events()
    customer = world.add_customer(world.now(), email="ada@example.com")
    charge = world.add_charge(customer, 5000, world.now())
    world.events.advance(10)
    world.add_refund(charge, 1000, world.now())
    world.update_customer(customer, name="Ada")
    world.events.advance(10)
    world.delete_customer(customer)
    return world


def all_events(api, **params) -> list[dict]:
    events, after = [], None
    while True:
        query = {"limit": 2, **params, **({"starting_after": after} if after else {})}
        page = get(api, "/v1/events", query).json()
        assert page["object"] == "list" and page["url"] == "/v1/events"
        events += page["data"]
        if not page["has_more"]:
            return events
        after = page["data"][-1]["id"]


def test_events_are_listed_newest_first_and_page_with_starting_after(stripe_api, world):
    api = stripe_api(world)
    events = all_events(api)
    assert [e["type"] for e in events] == [
        "customer.deleted",
        "customer.updated",
        "charge.refunded",
        "refund.created",
        "charge.succeeded",
        "customer.created",
    ]
    assert [e["created"] for e in events] == sorted((e["created"] for e in events), reverse=True)
    updated = events[1]
    assert updated["object"] == "event" and updated["id"].startswith("evt_")
    assert updated["data"]["object"]["name"] == "Ada"
    assert updated["data"]["previous_attributes"] == {"name": None}
    assert events[2]["data"]["object"]["amount_refunded"] == 1000
    before = get(api, "/v1/events", {"ending_before": events[2]["id"]}).json()
    assert [e["id"] for e in before["data"]] == [e["id"] for e in events[:2]]


def test_events_filter_by_created_and_by_type(stripe_api, world):
    api = stripe_api(world)
    newest = all_events(api)[0]["created"]
    assert [e["type"] for e in all_events(api, **{"created[gte]": newest})] == ["customer.deleted"]
    older = all_events(api, **{"created[lt]": newest - 10})
    assert {e["type"] for e in older} == {"charge.succeeded", "customer.created"}
    charges = all_events(api, type="charge.*")
    assert [e["type"] for e in charges] == ["charge.refunded", "charge.succeeded"]
    chosen = all_events(api, **{"types[]": ["customer.created", "refund.created"]})
    assert [e["type"] for e in chosen] == ["refund.created", "customer.created"]


def test_events_are_kept_30_days(stripe_api, world):
    api = stripe_api(world)
    world.events.advance(30 * DAY - 15)
    kept = ["customer.deleted", "customer.updated", "charge.refunded", "refund.created"]
    assert [e["type"] for e in all_events(api)] == kept
    world.events.advance(30)
    assert all_events(api) == []
    gone = get(api, "/v1/events", {"starting_after": world.events.items[0]["id"]})
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "resource_missing"


def test_events_refuse_what_stripe_refuses(stripe_api, world):
    api = stripe_api(world)
    both = get(api, "/v1/events", {"type": "charge.*", "types[]": ["customer.created"]})
    assert both.status_code == 400 and both.json()["error"]["param"] == "types"
    many = get(api, "/v1/events", {"types[]": [f"charge.t{n}" for n in range(21)]})
    assert many.status_code == 400
    unknown = get(api, "/v1/events", {"colour": "red"})
    assert unknown.json()["error"]["message"] == "Received unknown parameter: colour"
    assert get(api, "/v1/events", {"limit": 101}).status_code == 400
    assert get(api, "/v1/events", key=RESTRICTED_KEY).status_code == 403


def test_one_object_by_id(stripe_api, world):
    api = stripe_api(world)
    charge = next(iter(world.charges.values()))
    assert get(api, f"/v1/charges/{charge['id']}").json()["id"] == charge["id"]
    deleted = next(iter(world.deleted))
    assert get(api, f"/v1/customers/{deleted}").json()["deleted"] is True
    missing = get(api, "/v1/charges/ch_nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    assert get(api, f"/v1/refunds/{charge['id']}").status_code == 404


def test_lists_follow_changes(stripe_api):
    world = generate(seed=4, customers=3)
    api = stripe_api(world)
    before = len(get(api, "/v1/charges", {"limit": 100}).json()["data"])
    world.add_charge(None, 700, world.now(), email="late@example.com")
    assert len(get(api, "/v1/charges", {"limit": 100}).json()["data"]) == before + 1
