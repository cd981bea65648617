"""Charges, refunds and disputes with neither a customer nor an email: the ``unattributed``
setting. ``import`` (the default) sends them as events tied to no user; ``skip`` leaves
them out and says how many in the log. Neither puts their money on anyone's profile."""

from __future__ import annotations

import logging

import pytest
from stripe_examples import settings_for

from mpconnect import make_insert_id
from mpconnect.testing import run_connector
from mpconnect_stripe import StripeConnector

pytestmark = pytest.mark.timeout(60)


def sent(collected, name: str, object_id: str) -> list[dict]:
    """The properties of every event ``name`` about ``object_id``."""
    insert_id = make_insert_id(object_id, name)
    return [
        e["properties"]
        for e in collected.events_named(name)
        if e["properties"]["$insert_id"] == insert_id
    ]


def test_by_default_a_charge_of_nobody_is_revenue_tied_to_no_user(stripe_api, small_world):
    api = stripe_api(small_world.world)
    collected = run_connector(StripeConnector, settings_for(api))

    (charge,) = sent(collected, "Charge Succeeded", "ch_anon")
    assert (charge["distinct_id"], charge["amount"], charge["currency"]) == ("", 42.0, "usd")
    assert charge["stripe_customer_id"] is None
    (dispute,) = sent(collected, "Dispute Created", "dp_anon")
    assert (dispute["distinct_id"], dispute["charge_id"]) == ("", "ch_anon")
    assert collected.quarantined == []


def test_no_profile_for_nobody_and_lifetime_values_unchanged(stripe_api, small_world):
    api = stripe_api(small_world.world)
    collected = run_connector(StripeConnector, settings_for(api))

    assert "" not in collected.profiles
    assert collected.profile("cus_alice")["lifetime_value"] == 59.99


def test_skip_leaves_them_out_and_counts_them_in_the_log(stripe_api, small_world, caplog):
    api = stripe_api(small_world.world)
    with caplog.at_level(logging.INFO, logger="mpconnect.source"):
        collected = run_connector(StripeConnector, settings_for(api, unattributed="skip"))

    assert not sent(collected, "Charge Succeeded", "ch_anon")
    assert not sent(collected, "Dispute Created", "dp_anon")
    assert "" not in {e["properties"]["distinct_id"] for e in collected.events}
    assert collected.quarantined == []
    assert sent(collected, "Charge Succeeded", "ch_guest")[0]["distinct_id"] == (
        "guest:guest@example.com"
    )
    assert (
        'stripe: skipped 2 objects with no customer and no email (unattributed = "skip")'
        in caplog.messages
    )


def test_an_unknown_choice_is_refused_naming_the_choices(stripe_api, small_world):
    api = stripe_api(small_world.world)
    with pytest.raises(ValueError, match="unattributed") as refused:
        run_connector(StripeConnector, settings_for(api, unattributed="quarantine"))
    assert "'import' or 'skip'" in str(refused.value)
