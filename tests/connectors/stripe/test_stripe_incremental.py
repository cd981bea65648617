"""Incremental runs of the Stripe connector against the local Stripe API.

After each incremental run the records the source holds (its cached records with the
run's changes applied) are exactly those a full read of the account makes at that moment,
profiles and their aggregates included.
"""

from __future__ import annotations

import orjson
import pytest
from incremental_harness import CachedSource, full_snapshot

from mpconnect_stripe.localserver.api import RESTRICTED_KEY, TEST_KEY
from mpconnect_stripe.localserver.generate import generate
from mpconnect_stripe.localserver.world import DAY, World

pytestmark = pytest.mark.timeout(120)


def settings(api, **more):
    return {"api_key": TEST_KEY, "api_base": api.url, "max_requests_per_second": 500, **more}


@pytest.fixture
def world() -> World:
    world = generate(seed=11, customers=40)
    world.record_events()  # the generated history is older than Stripe's 30 days
    return world


def first_changes(world: World) -> None:
    """Creates, updates and deletes of every kind the connector reads."""
    now = world.now()
    people = list(world.customers.values())
    newcomer = world.add_customer(now, email="new@example.com", name="New Person")
    world.add_charge(newcomer, 2500, now)
    charge = next(
        c
        for c in world.charges.values()
        if c["customer"] and c["status"] == "succeeded" and not c["refunded"]
    )
    world.add_refund(charge, charge["amount"] // 2, now)
    world.add_dispute(next(c for c in world.charges.values() if not c["disputed"]), now)
    world.update_customer(people[0], name="Renamed", email="renamed@example.com")
    live = [s for s in world.subscriptions.values() if s["status"] == "active"]
    world.cancel_subscription(live[0], now)
    world.change_quantity(live[1], 7)
    world.delete_customer(people[3])
    world.add_charge(None, 900, now, email="guest@example.org")
    world.add_charge(people[4], 1200, now, status="failed", failure_code="card_declined")


def second_changes(world: World) -> None:
    now = world.now()
    people = list(world.customers.values())
    subscription = world.add_subscription(people[5], world.price(3000), now)
    invoice = world.add_invoice(people[5], 3000, now, subscription=subscription)
    world.add_charge(people[5], 3000, now, invoice=invoice)
    world.update_customer(people[6], metadata={"user_id": "user_renamed", "segment": "smb"})
    world.delete_customer(people[7])


def test_each_incremental_run_equals_a_full_read(stripe_api, world, tmp_path):
    api = stripe_api(world)
    source = CachedSource(settings(api), tmp_path / "state")
    first = source.run()
    assert first.full and first.reasons == []
    assert source.snapshot() == full_snapshot(settings(api), tmp_path / "full0")

    for round, change in enumerate((first_changes, second_changes), start=1):
        change(world)
        listed_before = sum(api.stats.by_path[f"/v1/{s}"] for s in ("customers", "charges"))
        outcome = source.run()
        listed_after = sum(api.stats.by_path[f"/v1/{s}"] for s in ("customers", "charges"))
        assert not outcome.full, outcome.reasons
        assert listed_after == listed_before  # no list was read again
        assert outcome.requests <= 3  # one page of events, perhaps a charge
        assert source.snapshot() == full_snapshot(settings(api), tmp_path / f"full{round}")

    before = source.snapshot()
    nothing = source.run()  # reads the events of the cursor's second again, nothing more
    assert not nothing.full and nothing.requests == 1
    assert source.snapshot() == before


def test_a_deleted_customer_leaves_with_its_profile_and_event(stripe_api, world, tmp_path):
    api = stripe_api(world)
    source = CachedSource(settings(api), tmp_path / "state")
    source.run()
    gone = next(iter(world.customers.values()))
    assert ("customer_profiles", gone["id"]) in source.cache
    world.delete_customer(gone)
    outcome = source.run()
    assert not outcome.full
    assert ("customer_profiles", gone["id"]) not in source.cache
    assert ("customers", gone["id"]) not in source.cache
    assert source.snapshot() == full_snapshot(settings(api), tmp_path / "full")


def test_lifetime_value_follows_a_refund_exactly(stripe_api, world, tmp_path):
    api = stripe_api(world)
    source = CachedSource(settings(api), tmp_path / "state")
    source.run()
    customer = next(iter(world.customers.values()))
    charge = world.add_charge(customer, 10_001, world.now())
    source.run()
    world.add_refund(charge, 3_333, world.now())
    source.run()
    (profile,) = source.cache[("customer_profiles", customer["id"])]
    (full,) = [
        line
        for line in full_snapshot(settings(api), tmp_path / "full")
        if b'"object_id":"' + customer["id"].encode() + b'"' in line and b"Profile" in line
    ]
    assert profile.set["lifetime_value"] == pytest.approx(
        sum(
            (c["amount_captured"] - c["amount_refunded"]) / 100
            for c in world.charges.values()
            if c["customer"] == customer["id"] and c["status"] == "succeeded"
        )
    )
    assert f'"lifetime_value":{profile.set["lifetime_value"]}'.encode() in full


def test_a_cursor_older_than_30_days_reads_everything_and_says_so(stripe_api, world, tmp_path):
    api = stripe_api(world)
    customer = next(iter(world.customers.values()))
    world.update_customer(customer, name="Before")  # the first run's cursor is its event
    source = CachedSource(settings(api), tmp_path / "state")
    source.run()
    world.add_charge(customer, 4200, world.now())
    world.events.advance(31 * DAY)  # the cursor's event ages out of Stripe's window
    outcome = source.run()
    assert outcome.full
    assert outcome.reasons == ["the cursor is older than Stripe keeps events (30 days)"]
    assert source.snapshot() == full_snapshot(settings(api), tmp_path / "full")
    assert not source.run().full  # and the next run is incremental again


def test_metadata_identity_reads_everything_when_a_customer_changes(stripe_api, world, tmp_path):
    api = stripe_api(world)
    options = settings(api, identity="user_id")
    source = CachedSource(options, tmp_path / "state")
    source.run()
    customer = next(c for c in world.customers.values() if c["metadata"].get("user_id"))
    world.add_charge(customer, 1500, world.now())
    assert not source.run().full
    assert source.snapshot() == full_snapshot(options, tmp_path / "full1")
    world.update_customer(customer, metadata={"user_id": "someone_else"})
    outcome = source.run()
    assert outcome.full and "identity comes from customers' metadata" in outcome.reasons[0]
    assert source.snapshot() == full_snapshot(options, tmp_path / "full2")


def test_start_date_and_some_streams(stripe_api, world, tmp_path):
    api = stripe_api(world)
    options = settings(api, objects=["customers", "charges"], start_date="2024-06-01")
    source = CachedSource(options, tmp_path / "state")
    source.run()
    first_changes(world)
    assert not source.run().full
    assert source.snapshot() == full_snapshot(options, tmp_path / "full")


def test_a_key_that_may_not_read_events_reads_everything(stripe_api, world, tmp_path, caplog):
    api = stripe_api(world)
    options = settings(api, api_key=RESTRICTED_KEY, objects=["customers", "charges"])
    source = CachedSource(options, tmp_path / "state")
    assert source.run().full
    assert "may not read events" in caplog.text
    outcome = source.run()
    assert outcome.full and "no events cursor" in outcome.reasons[0]


def test_a_failed_run_leaves_the_last_good_state(stripe_api, world, tmp_path):
    api = stripe_api(world)
    source = CachedSource(settings(api), tmp_path / "state")
    source.run()
    good = dict(source.state)
    world.add_charge(next(iter(world.customers.values())), 4200, world.now())
    api.fail_next(1, status=400)
    with pytest.raises(Exception, match="HTTP 400"):
        source.run()
    assert source.state == good
    assert [p.name for p in (tmp_path / "state").iterdir()] == [good["facts_file"]]
    outcome = source.run()
    assert not outcome.full
    assert source.snapshot() == full_snapshot(settings(api), tmp_path / "full")


def published(home, api, **more):
    from mpconnect.testing import run_source

    loaded = run_source(
        "stripe", settings(api, **more), home=home, source="billing", dataset_id="STRIPE"
    )
    events = sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in loaded.events)
    people = sorted(orjson.dumps(p, option=orjson.OPT_SORT_KEYS) for p in loaded.people)
    return loaded, events, people


def test_through_the_engine_each_run_publishes_what_a_full_run_would(stripe_api, world, tmp_path):
    api = stripe_api(world)
    home = tmp_path / "home"
    published(home, api)
    for round, change in enumerate((first_changes, second_changes), start=1):
        change(world)
        lists_before = api.stats.by_path["/v1/charges"]
        _, events, people = published(home, api)
        assert api.stats.by_path["/v1/charges"] == lists_before  # read incrementally
        _, full_events, full_people = published(tmp_path / f"full{round}", api)
        assert events == full_events
        assert people == full_people


def test_through_the_engine_an_old_cursor_reads_everything_and_says_so(stripe_api, world, tmp_path):
    api = stripe_api(world)
    customer = next(iter(world.customers.values()))
    world.update_customer(customer, name="Before")
    published(tmp_path / "home", api)
    world.add_charge(customer, 4200, world.now())
    world.events.advance(31 * DAY)
    loaded, events, people = published(tmp_path / "home", api)
    assert loaded.summary.sync_reason == "the cursor is older than Stripe keeps events (30 days)"
    _, full_events, full_people = published(tmp_path / "full", api)
    assert (events, people) == (full_events, full_people)
