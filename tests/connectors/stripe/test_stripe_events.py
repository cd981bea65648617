"""Every event the Stripe connector yields, read from the local Stripe API."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from stripe_examples import T0, settings_for

from mpconnect import make_insert_id
from mpconnect.testing import Collected, run_connector
from mpconnect_stripe import StripeConnector
from mpconnect_stripe.localserver.world import DAY, World

pytestmark = pytest.mark.timeout(60)


def one(collected: Collected, name: str, object_id: str) -> dict[str, Any]:
    """The properties of the one event ``name`` about ``object_id``."""
    insert_id = make_insert_id(object_id, name)
    found = [e for e in collected.events_named(name) if e["properties"]["$insert_id"] == insert_id]
    assert len(found) == 1, f"{name} of {object_id}: {len(found)} events"
    props = dict(found[0]["properties"])
    assert props.pop("token") == "test-token"
    assert props.pop("$insert_id") == insert_id
    return props


@pytest.fixture
def collected(stripe_api, small_world) -> Collected:
    api = stripe_api(small_world.world)
    return run_connector(StripeConnector, settings_for(api))


def test_customer_created(collected):
    assert one(collected, "Customer Created", "cus_alice") == {
        "distinct_id": "cus_alice",
        "time": T0 + DAY,
        "stripe_customer_id": "cus_alice",
        "currency": "usd",
    }
    names = {e["properties"]["distinct_id"] for e in collected.events_named("Customer Created")}
    assert names == {"cus_alice", "cus_bob", "cus_carol", "cus_erin", "cus_frank"}  # no dave


def test_charge_succeeded_in_major_units_with_its_invoice(collected):
    assert one(collected, "Charge Succeeded", "ch_alice1") == {
        "distinct_id": "cus_alice",
        "time": T0 + 16 * DAY + 60,
        "amount": 50.0,
        "currency": "usd",
        "charge_id": "ch_alice1",
        "invoice": "in_alice",
        "payment_method_type": "card",
        "failure_code": None,
        "stripe_customer_id": "cus_alice",
    }
    assert one(collected, "Charge Succeeded", "ch_alice2")["amount"] == 19.99


def test_zero_decimal_currency_is_not_divided(collected):
    props = one(collected, "Charge Succeeded", "ch_bob")
    assert (props["amount"], props["currency"]) == (12000.0, "jpy")


def test_charge_failed_carries_the_failure_code(collected):
    assert one(collected, "Charge Failed", "ch_alice3") == {
        "distinct_id": "cus_alice",
        "time": T0 + 26 * DAY,
        "amount": 30.0,
        "currency": "usd",
        "charge_id": "ch_alice3",
        "invoice": None,
        "payment_method_type": "card",
        "failure_code": "card_declined",
        "stripe_customer_id": "cus_alice",
    }


def test_pending_charge_has_no_event_yet(collected):
    ids = {e["properties"].get("charge_id") for e in collected.events}
    assert "ch_alice4" not in ids
    assert not any(q.what.endswith("ch_alice4") for q in collected.quarantined)


def test_refund_created(collected):
    assert one(collected, "Refund Created", "re_alice") == {
        "distinct_id": "cus_alice",
        "time": T0 + 20 * DAY,
        "amount": 10.0,
        "currency": "usd",
        "reason": "requested_by_customer",
        "status": "succeeded",
        "refund_id": "re_alice",
        "charge_id": "ch_alice1",
        "stripe_customer_id": "cus_alice",
    }


def test_invoice_paid_at_paid_at(collected):
    assert one(collected, "Invoice Paid", "in_alice") == {
        "distinct_id": "cus_alice",
        "time": T0 + 16 * DAY + 3600,
        "amount_paid": 50.0,
        "currency": "usd",
        "invoice_id": "in_alice",
        "subscription_id": "sub_alice",
        "billing_reason": "subscription_create",
        "stripe_customer_id": "cus_alice",
    }
    assert not [
        e
        for e in collected.events_named("Invoice Paid")
        if e["properties"]["invoice_id"] == "in_carol"
    ]  # open, not paid


def test_subscription_started_and_trial_started(collected):
    plan = {
        "subscription_id": "sub_alice",
        "status": "active",
        "plan": "Pro",
        "price_id": "price_pro",
        "price": 25.0,
        "currency": "usd",
        "quantity": 2,
        "interval": "month",
        "interval_count": 1,
        "stripe_customer_id": "cus_alice",
    }
    assert one(collected, "Subscription Started", "sub_alice") == {
        "distinct_id": "cus_alice",
        "time": T0 + 2 * DAY,
        **plan,
    }
    assert one(collected, "Trial Started", "sub_alice") == {
        "distinct_id": "cus_alice",
        "time": T0 + 2 * DAY,
        "trial_end": T0 + 16 * DAY,
        **plan,
    }


def test_subscription_canceled(collected):
    props = one(collected, "Subscription Canceled", "sub_bob")
    assert props["time"] == T0 + 40 * DAY
    assert props["distinct_id"] == "cus_bob"
    assert (props["plan"], props["interval"], props["price"]) == ("Annual JP", "year", 12000.0)
    assert props["status"] == "canceled"
    assert props["cancellation_reason"] == "cancellation_requested"
    canceled = {
        e["properties"]["subscription_id"] for e in collected.events_named("Subscription Canceled")
    }
    assert canceled == {"sub_bob", "sub_carol_old"}  # canceled subscriptions are listed too


def test_plan_falls_back_to_price_id_without_nickname(collected):
    assert one(collected, "Subscription Started", "sub_carol")["plan"] == "price_volume"


def test_dispute_created(collected):
    assert one(collected, "Dispute Created", "dp_alice") == {
        "distinct_id": "cus_alice",
        "time": T0 + 30 * DAY,
        "amount": 19.99,
        "currency": "usd",
        "reason": "fraudulent",
        "status": "needs_response",
        "dispute_id": "dp_alice",
        "charge_id": "ch_alice2",
        "stripe_customer_id": "cus_alice",
    }


def test_deleted_customer_keeps_its_events_under_its_id(collected):
    assert one(collected, "Charge Succeeded", "ch_dave")["distinct_id"] == "cus_dave"


def test_guest_with_billing_email_is_attributed_to_guest_email(collected):
    charge = one(collected, "Charge Succeeded", "ch_guest")
    assert charge["distinct_id"] == "guest:guest@example.com"
    assert charge["stripe_customer_id"] is None
    assert one(collected, "Refund Created", "re_guest")["distinct_id"] == "guest:guest@example.com"


def test_guest_with_only_a_receipt_email(collected):
    assert one(collected, "Charge Succeeded", "ch_receipt")["distinct_id"] == (
        "guest:receipt@example.net"
    )
    assert one(collected, "Dispute Created", "dp_receipt")["distinct_id"] == (
        "guest:receipt@example.net"
    )


def test_guest_without_email_is_imported_tied_to_no_user(collected):
    assert collected.quarantined == []
    assert one(collected, "Charge Succeeded", "ch_anon")["distinct_id"] == ""
    assert one(collected, "Dispute Created", "dp_anon")["distinct_id"] == ""


def test_a_subscription_whose_first_payment_never_succeeded_has_not_started(stripe_api):
    world = World(seed=3)
    customer = world.add_customer(T0 + DAY, id="cus_sca", email="sca@example.com")
    price = world.price(2500, id="price_pro", nickname="Pro")
    world.add_subscription(customer, price, T0 + 2 * DAY, id="sub_waiting", status="incomplete")
    world.add_subscription(
        customer, price, T0 + 3 * DAY, id="sub_expired", status="incomplete_expired"
    )
    world.add_subscription(customer, price, T0 + 4 * DAY, id="sub_paid")
    api = stripe_api(world)
    collected = run_connector(StripeConnector, settings_for(api, objects=["subscriptions"]))
    started = [
        e["properties"]["subscription_id"] for e in collected.events_named("Subscription Started")
    ]
    assert started == ["sub_paid"]
    assert collected.quarantined == []


def test_blank_billing_email_is_no_email(stripe_api):
    world = World(seed=3)
    world.add_charge(None, 1000, T0 + 2 * DAY, id="ch_blank", email="   ")
    world.add_charge(
        None,
        2000,
        T0 + 2 * DAY,
        id="ch_blank_receipt",
        email=" ",
        receipt_email=" Receipt@Example.net ",
    )
    api = stripe_api(world)
    collected = run_connector(StripeConnector, settings_for(api, objects=["charges"]))
    assert collected.quarantined == []
    assert one(collected, "Charge Succeeded", "ch_blank")["distinct_id"] == ""
    assert one(collected, "Charge Succeeded", "ch_blank_receipt")["distinct_id"] == (
        "guest:receipt@example.net"
    )


def test_every_expected_event_exactly_once(collected, small_world):
    expected = Counter()
    for e in small_world.world.expected:
        expected[(e.name, make_insert_id(e.object_id, e.name), e.time)] += 1
    got = Counter(
        (e["event"], e["properties"]["$insert_id"], e["properties"]["time"])
        for e in collected.events
    )
    assert got == expected


def test_insert_ids_are_the_same_on_every_run(stripe_api, small_world):
    api = stripe_api(small_world.world)
    first = run_connector(StripeConnector, settings_for(api))
    second = run_connector(StripeConnector, settings_for(api))
    assert sorted(e["properties"]["$insert_id"] for e in first.events) == sorted(
        e["properties"]["$insert_id"] for e in second.events
    )
    assert len({e["properties"]["$insert_id"] for e in first.events}) == len(first.events)


def test_identity_from_metadata_key_everywhere(stripe_api, small_world):
    api = stripe_api(small_world.world)
    collected = run_connector(StripeConnector, settings_for(api, identity="user_id"))
    alice = {e["event"] for e in collected.events if e["properties"]["distinct_id"] == "u_alice"}
    assert alice == {
        "Customer Created",
        "Subscription Started",
        "Trial Started",
        "Invoice Paid",
        "Charge Succeeded",
        "Charge Failed",
        "Refund Created",
        "Dispute Created",
    }
    assert not [e for e in collected.events if e["properties"]["distinct_id"] == "cus_alice"]
    assert one(collected, "Customer Created", "cus_bob")["distinct_id"] == "cus_bob"  # no key
    assert one(collected, "Customer Created", "cus_frank")["distinct_id"] == "cus_frank"  # blank
    assert one(collected, "Charge Succeeded", "ch_dave")["distinct_id"] == "cus_dave"  # deleted
    assert one(collected, "Charge Succeeded", "ch_guest")["distinct_id"] == (
        "guest:guest@example.com"
    )


def test_start_date_keeps_only_objects_created_since(stripe_api, small_world):
    api = stripe_api(small_world.world)
    start = T0 + 10 * DAY
    collected = run_connector(StripeConnector, settings_for(api, start_date="2024-01-11"))
    world = small_world.world
    expected = {
        (e.name, e.object_id) for e in world.expected if world.find(e.object_id)["created"] >= start
    }
    got = set()
    for e in collected.events:
        props = e["properties"]
        object_id = next(
            oid
            for oid in (
                props.get("charge_id"),
                props.get("refund_id"),
                props.get("invoice_id"),
                props.get("subscription_id"),
                props.get("dispute_id"),
                props.get("stripe_customer_id"),
            )
            if oid and make_insert_id(oid, e["event"]) == props["$insert_id"]
        )
        got.add((e["event"], object_id))
    assert got == expected
    assert ("Charge Succeeded", "ch_alice2") in got
    assert ("Charge Succeeded", "ch_alice1") in got  # created on day 16
    assert ("Customer Created", "cus_alice") not in got
    assert all(q.data["created"] >= start for q in collected.quarantined)
    queries = [q for path, q in api.stats.queries if path == "/v1/charges"]
    assert queries and all(f"created[gte]={start}" in q for q in queries)


def test_start_date_with_metadata_identity_still_knows_older_customers(stripe_api, small_world):
    api = stripe_api(small_world.world)
    collected = run_connector(
        StripeConnector, settings_for(api, start_date="2024-01-11", identity="user_id")
    )
    assert one(collected, "Charge Succeeded", "ch_alice2")["distinct_id"] == "u_alice"
    assert [p["$distinct_id"] for p in collected.people] == ["cus_frank", "u_erin"]


def test_objects_limits_the_streams(stripe_api, small_world):
    api = stripe_api(small_world.world)
    collected = run_connector(StripeConnector, settings_for(api, objects=["refunds", "disputes"]))
    assert set(Counter(e["event"] for e in collected.events)) == {
        "Refund Created",
        "Dispute Created",
    }
    assert collected.people == []
    assert set(api.stats.by_path) == {"/v1/refunds", "/v1/disputes"}
