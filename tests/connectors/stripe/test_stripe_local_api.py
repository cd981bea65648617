"""The local Stripe API answers as Stripe does: shapes, pagination, filters, auth, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import stripe

from mpconnect_stripe.localserver.api import RESTRICTED_KEY, TEST_KEY
from mpconnect_stripe.localserver.generate import generate
from mpconnect_stripe.localserver.world import BASE_TIME, DAY, FIXTURES_PATH

pytestmark = pytest.mark.timeout(60)

REFERENCE = Path(__file__).resolve().parents[4] / "shared/reference/stripe-fixtures3.json"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def reference_fixtures() -> dict:
    """Stripe's own example objects (the shared reference, else the copy beside the tests)."""
    path = REFERENCE if REFERENCE.exists() else FIXTURES_PATH
    return json.loads(path.read_text())["resources"]


@pytest.fixture(scope="module")
def world():
    return generate(seed=21, customers=60)


@pytest.fixture
def api(stripe_api, world):
    return stripe_api(world)


def get(api, path: str, params=None, headers=AUTH) -> requests.Response:
    return requests.get(f"{api.url}{path}", params=params, headers=headers, timeout=10)


def walk(api, path: str, limit: int, **params) -> list[str]:
    ids, after = [], None
    while True:
        query = {"limit": limit, **params, **({"starting_after": after} if after else {})}
        page = get(api, path, query).json()
        assert page["object"] == "list" and page["url"] == path
        ids += [obj["id"] for obj in page["data"]]
        if not page["has_more"]:
            return ids
        after = ids[-1]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/customers", "customer"),
        ("/v1/charges", "charge"),
        ("/v1/refunds", "refund"),
        ("/v1/invoices", "invoice"),
        ("/v1/subscriptions", "subscription"),
        ("/v1/disputes", "dispute"),
    ],
)
def test_every_object_has_at_least_the_keys_of_stripes_example(api, path, kind):
    fixtures = reference_fixtures()
    objects = get(
        api, path, {"limit": 100, "status": "all"} if kind == "subscription" else {"limit": 100}
    ).json()["data"]
    assert objects
    for obj in objects:
        assert obj["object"] == kind
        missing = set(fixtures[kind]) - set(obj)
        assert not missing, f"{obj['id']} lacks {sorted(missing)}"
        if kind == "subscription":
            item = obj["items"]["data"][0]
            assert not set(fixtures["subscription_item"]) - set(item)
            assert not set(fixtures["price"]) - set(item["price"])
            assert not set(fixtures["plan"]) - set(item["plan"])


def test_balance_has_the_keys_of_stripes_example(api):
    balance = get(api, "/v1/balance").json()
    assert not set(reference_fixtures()["balance"]) - set(balance)
    assert balance["livemode"] is False


def test_lists_newest_first_and_walk_without_gaps(api, world):
    ids = walk(api, "/v1/charges", limit=7)
    assert len(ids) == len(set(ids)) == len(world.charges)
    created = [world.charges[i]["created"] for i in ids]
    assert created == sorted(created, reverse=True)


def test_ending_before_pages_backwards(api):
    forward = walk(api, "/v1/invoices", limit=100)
    tail = forward[-10:]
    page = get(api, "/v1/invoices", {"limit": 4, "ending_before": tail[-1]}).json()
    assert [obj["id"] for obj in page["data"]] == tail[-5:-1]
    assert page["has_more"] is True
    first = get(api, "/v1/invoices", {"limit": 4, "ending_before": forward[2]}).json()
    assert [obj["id"] for obj in first["data"]] == forward[:2]
    assert first["has_more"] is False


def test_default_limit_is_ten(api):
    page = get(api, "/v1/charges").json()
    assert len(page["data"]) == 10 and page["has_more"] is True


def test_created_filters(api, world):
    cut = BASE_TIME + 90 * DAY
    since = walk(api, "/v1/charges", limit=100, **{"created[gte]": cut})
    before = walk(api, "/v1/charges", limit=100, **{"created[lt]": cut})
    assert {i for i in since} == {i for i, c in world.charges.items() if c["created"] >= cut}
    assert set(since) | set(before) == set(world.charges) and not set(since) & set(before)
    one = next(iter(world.charges.values()))
    exact = walk(api, "/v1/charges", limit=100, created=one["created"])
    assert one["id"] in exact
    assert all(world.charges[i]["created"] == one["created"] for i in exact)


def test_subscriptions_hide_canceled_unless_status_all(api, world):
    default = walk(api, "/v1/subscriptions", limit=100)
    everything = walk(api, "/v1/subscriptions", limit=100, status="all")
    canceled = {i for i, s in world.subscriptions.items() if s["status"] == "canceled"}
    assert canceled and not canceled & set(default)
    assert set(everything) == set(world.subscriptions)


def test_expand_charge_on_refunds(api):
    page = get(api, "/v1/refunds", {"limit": 3, "expand[]": "data.charge"}).json()
    assert all(
        isinstance(r["charge"], dict) and r["charge"]["object"] == "charge" for r in page["data"]
    )
    bad = get(api, "/v1/refunds", {"expand[]": "data.nothing"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "This property cannot be expanded (data.nothing)."


def test_the_official_client_pages_through_the_local_api(api, world):
    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": api.url})
    listed = client.v1.customers.list(params={"limit": 5})
    ids = [customer.id for customer in listed.auto_paging_iter()]
    assert sorted(ids) == sorted(world.customers)


def test_basic_auth_and_bearer(api):
    assert get(api, "/v1/customers", headers={}).status_code == 401
    basic = requests.get(f"{api.url}/v1/customers", auth=(TEST_KEY, ""), timeout=10)
    assert basic.status_code == 200


def test_missing_and_bad_keys_get_stripes_401(api):
    missing = get(api, "/v1/charges", headers={})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert missing.json()["error"]["message"].startswith("You did not provide an API key.")
    bad = get(api, "/v1/charges", headers={"Authorization": "Bearer sk_test_wrongwrongwrong1234"})
    assert bad.status_code == 401
    assert bad.json() == {
        "error": {
            "type": "invalid_request_error",
            "message": f"Invalid API Key provided: sk_test_{'*' * 15}1234",
        }
    }
    assert bad.headers["Request-Id"].startswith("req_")


def test_restricted_key_without_permission_gets_403(api):
    answer = get(api, "/v1/refunds", headers={"Authorization": f"Bearer {RESTRICTED_KEY}"})
    assert answer.status_code == 403
    assert "rak_refunds_read" in answer.json()["error"]["message"]


def test_bad_parameters_get_400_naming_the_parameter(api):
    assert get(api, "/v1/charges", {"limit": 101}).json()["error"]["param"] == "limit"
    unknown = get(api, "/v1/charges", {"colour": "red"}).json()["error"]
    assert unknown == {
        "type": "invalid_request_error",
        "param": "colour",
        "message": "Received unknown parameter: colour",
    }
    missing = get(api, "/v1/charges", {"starting_after": "ch_nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    assert get(api, "/v1/payouts").status_code == 404


def test_rate_limit_answers_429_with_stripes_error(api):
    api.set_rate_limit(1, burst=2)
    statuses = [get(api, "/v1/customers", {"limit": 1}).status_code for _ in range(3)]
    assert statuses[:2] == [200, 200] and statuses[2] == 429
    error = get(api, "/v1/customers").json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "rate_limit"
    assert error["message"].startswith("Request rate limit exceeded.")


def test_failures_on_demand(api):
    api.fail_next(2, status=500, should_retry="true")
    first = get(api, "/v1/customers")
    assert first.status_code == 500
    assert first.headers["Stripe-Should-Retry"] == "true"
    assert first.json()["error"]["type"] == "api_error"
    assert get(api, "/v1/customers").status_code == 500
    assert get(api, "/v1/customers").status_code == 200


def test_storm_throttles_everything_for_a_while(api):
    api.storm(30)
    assert get(api, "/v1/balance").status_code == 429
    api.storm(0)
    assert get(api, "/v1/balance").status_code == 200


def test_generator_is_deterministic_and_consistent():
    one, two = generate(seed=4, customers=40), generate(seed=4, customers=40)
    assert one.lists() == two.lists()
    assert generate(seed=5, customers=40).lists() != one.lists()
    for refund in one.refunds.values():
        charge = one.charges[refund["charge"]]
        assert charge["status"] == "succeeded" and charge["amount_refunded"] >= refund["amount"]
    for charge in one.charges.values():
        if charge["invoice"]:
            assert one.invoices[charge["invoice"]]["customer"] == charge["customer"]
    assert one.deleted and not set(one.deleted) & set(one.customers)
    guests = [c for c in one.charges.values() if c["customer"] is None]
    assert any(c["billing_details"]["email"] for c in guests)
    assert any(not c["billing_details"]["email"] and not c["receipt_email"] for c in guests)
    statuses = {c["status"] for c in one.charges.values()}
    assert {"succeeded", "failed"} <= statuses
