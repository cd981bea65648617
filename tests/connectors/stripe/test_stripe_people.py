"""The people profiles the Stripe connector yields: one per customer, with derived figures."""

from __future__ import annotations

import pytest
from stripe_examples import settings_for

from mpconnect.testing import Collected, run_connector
from mpconnect_stripe import StripeConnector
from mpconnect_stripe.localserver.generate import generate
from mpconnect_stripe.localserver.world import BASE_TIME, DAY, World

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def collected(stripe_api, small_world) -> Collected:
    api = stripe_api(small_world.world)
    return run_connector(StripeConnector, settings_for(api))


def test_every_profile_field_of_a_subscriber(collected):
    assert collected.profile("cus_alice") == {
        "user_id": "u_alice",
        "tier": "gold",
        "$email": "alice@example.com",
        "$name": "Alice Liddell",
        "$phone": "+15550001",
        "$created": "2024-01-02T00:00:00",
        "stripe_customer_id": "cus_alice",
        "currency": "usd",
        "delinquent": False,
        "balance": -5.0,
        "lifetime_value": 59.99,  # 50.00 - 10.00 refunded + 19.99; failed and pending not counted
        "subscription_status": "active",
        "plan": "Pro",
        "mrr": 50.0,  # 25.00 x 2
    }


def test_canceled_subscriber_in_a_zero_decimal_currency(collected):
    bob = collected.profile("cus_bob")
    assert bob["lifetime_value"] == 12000.0
    assert (bob["subscription_status"], bob["plan"], bob["mrr"]) == ("canceled", "Annual JP", 0.0)
    assert "user_id" not in bob


def test_current_subscription_wins_and_tiered_price_has_no_mrr(collected):
    carol = collected.profile("cus_carol")
    assert (carol["subscription_status"], carol["plan"]) == ("active", "price_volume")
    assert "mrr" not in carol
    assert "$email" not in carol
    assert carol["lifetime_value"] == 0.0  # nothing in eur
    assert carol["lifetime_value_by_currency"] == {"usd": 5.0}


def test_trialing_subscription_has_no_mrr_yet(collected):
    erin = collected.profile("cus_erin")
    assert (erin["subscription_status"], erin["plan"], erin["mrr"]) == (
        "trialing",
        "price_starter",
        0.0,
    )
    assert erin["lifetime_value"] == 0.0


def test_mrr_normalises_yearly_and_weekly_prices(collected):
    frank = collected.profile("cus_frank")
    assert frank["mrr"] == 53.33  # 120.00 / 12 + 10.00 * 52 / 12
    assert frank["subscription_status"] == "active"


def test_one_profile_per_listed_customer_and_none_for_deleted(collected):
    ids = [record["$distinct_id"] for record in collected.people]
    assert ids == ["cus_frank", "cus_erin", "cus_carol", "cus_bob", "cus_alice"]
    assert all(set(record) == {"$token", "$distinct_id", "$set"} for record in collected.people)
    with pytest.raises(KeyError):
        collected.profile("cus_dave")


def test_profiles_use_the_identity_setting(stripe_api, small_world):
    api = stripe_api(small_world.world)
    collected = run_connector(StripeConnector, settings_for(api, identity="user_id"))
    ids = {record["$distinct_id"] for record in collected.people}
    assert ids == {"cus_frank", "u_erin", "u_carol", "cus_bob", "u_alice"}
    assert collected.profile("u_alice")["stripe_customer_id"] == "cus_alice"


def test_no_people_without_the_customers_stream(stripe_api, small_world):
    api = stripe_api(small_world.world)
    collected = run_connector(StripeConnector, settings_for(api, objects=["charges"]))
    assert collected.people == []
    assert collected.events_named("Charge Succeeded")


def test_figures_need_their_streams(stripe_api, small_world):
    api = stripe_api(small_world.world)
    collected = run_connector(StripeConnector, settings_for(api, objects=["customers"]))
    alice = collected.profile("cus_alice")
    for derived in ("lifetime_value", "subscription_status", "plan", "mrr"):
        assert derived not in alice
    assert alice["$email"] == "alice@example.com"


def test_lifetime_value_of_a_generated_account(stripe_api):
    world = generate(seed=3, customers=80)
    api = stripe_api(world)
    collected = run_connector(StripeConnector, settings_for(api))
    expected: dict[str, int] = {}
    for charge in world.charges.values():
        if charge["status"] == "succeeded" and charge["customer"] in world.customers:
            net = charge["amount_captured"] - charge["amount_refunded"]
            expected[charge["customer"]] = expected.get(charge["customer"], 0) + net
    assert len(collected.people) == len(world.customers)
    for customer_id, customer in world.customers.items():
        divisor = 1 if customer["currency"] == "jpy" else 100
        want = round(expected.get(customer_id, 0) / divisor, 2)
        assert collected.profile(customer_id)["lifetime_value"] == want, customer_id


def test_lifetime_value_counts_only_what_was_captured_and_kept(stripe_api):
    # Stripe reports the released, never captured part of an authorization as refunded.
    world = World(seed=3)
    partial = world.add_customer(BASE_TIME + DAY, id="cus_partial", email="a@example.com")
    expired = world.add_customer(BASE_TIME + DAY, id="cus_expired", email="b@example.com")
    refunded = world.add_customer(BASE_TIME + DAY, id="cus_refunded", email="c@example.com")
    world.add_charge(partial, 10000, BASE_TIME + 2 * DAY).update(
        amount_captured=6000, amount_refunded=4000, captured=True, refunded=False
    )
    world.add_charge(expired, 5000, BASE_TIME + 2 * DAY).update(
        amount_captured=0, amount_refunded=5000, captured=False, refunded=True
    )
    # 60.00 of 100.00 captured, then 10.00 of the capture refunded.
    world.add_charge(refunded, 10000, BASE_TIME + 2 * DAY).update(
        amount_captured=6000, amount_refunded=5000, captured=True, refunded=False
    )
    collected = run_connector(StripeConnector, settings_for(stripe_api(world)))
    assert collected.profile("cus_partial")["lifetime_value"] == 60.0
    assert collected.profile("cus_expired")["lifetime_value"] == 0.0
    assert collected.profile("cus_refunded")["lifetime_value"] == 50.0
