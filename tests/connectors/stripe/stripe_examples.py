"""The hand-made Stripe account of the connector tests, and settings for a local API."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mpconnect_stripe.localserver.api import TEST_KEY, StripeAPI
from mpconnect_stripe.localserver.world import BASE_TIME, DAY, World

T0 = BASE_TIME


def settings_for(api: StripeAPI, **extra: Any) -> dict[str, Any]:
    """Connector settings pointing at ``api``, fast enough for tests."""
    return {"api_key": TEST_KEY, "api_base": api.url, "max_requests_per_second": 500, **extra}


def build_small_world() -> SimpleNamespace:
    """A hand-made account where every figure is known.

    - alice (usd, metadata user_id=u_alice): Pro x2 with a 14-day trial; a paid invoice
      of 50.00 with its charge, 10.00 of it refunded; a 19.99 charge that is disputed; a
      failed 30.00 charge; a pending 7.00 charge. Lifetime value 59.99, MRR 50.00.
    - bob (jpy, no metadata): a canceled yearly plan paid once, 12000 yen.
    - carol (eur, no email): an active tiered subscription (no MRR can be derived), an
      older canceled one, an open invoice, and a 5.00 usd charge.
    - dave: deleted, but his 12.00 charge remains.
    - erin (usd): trialing on a price without a nickname.
    - frank (usd, blank user_id): yearly 120.00 and weekly 10.00 plans (MRR 53.33).
    - guests: a charge with a billing email (refunded), one with only a receipt email
      (disputed), and one with no email at all (disputed too).
    """
    w = World(seed=7)
    ns = SimpleNamespace(world=w)
    ns.alice = w.add_customer(
        T0 + DAY,
        id="cus_alice",
        email="alice@example.com",
        name="Alice Liddell",
        phone="+15550001",
        currency="usd",
        metadata={"user_id": "u_alice", "tier": "gold"},
        balance=-500,
    )
    pro = w.price(2500, id="price_pro", nickname="Pro")
    ns.sub_alice = w.add_subscription(
        ns.alice, pro, T0 + 2 * DAY, id="sub_alice", quantity=2, trial_days=14
    )
    ns.in_alice = w.add_invoice(
        ns.alice,
        5000,
        T0 + 16 * DAY,
        id="in_alice",
        subscription=ns.sub_alice,
        billing_reason="subscription_create",
    )
    ns.ch_alice1 = w.add_charge(
        ns.alice, 5000, T0 + 16 * DAY + 60, id="ch_alice1", invoice=ns.in_alice
    )
    ns.re_alice = w.add_refund(ns.ch_alice1, 1000, T0 + 20 * DAY, id="re_alice")
    ns.ch_alice2 = w.add_charge(ns.alice, 1999, T0 + 25 * DAY, id="ch_alice2")
    ns.ch_alice3 = w.add_charge(
        ns.alice, 3000, T0 + 26 * DAY, id="ch_alice3", status="failed", failure_code="card_declined"
    )
    ns.ch_alice4 = w.add_charge(ns.alice, 700, T0 + 27 * DAY, id="ch_alice4", status="pending")
    ns.dp_alice = w.add_dispute(ns.ch_alice2, T0 + 30 * DAY, id="dp_alice")

    ns.bob = w.add_customer(
        T0 + 3 * DAY, id="cus_bob", email="bob@example.jp", name="Bob", currency="jpy"
    )
    annual = w.price(
        12000, id="price_annual_jp", currency="jpy", interval="year", nickname="Annual JP"
    )
    ns.sub_bob = w.add_subscription(
        ns.bob,
        annual,
        T0 + 4 * DAY,
        id="sub_bob",
        status="canceled",
        canceled_at=T0 + 40 * DAY,
        ended_at=T0 + 40 * DAY,
    )
    ns.in_bob = w.add_invoice(
        ns.bob,
        12000,
        T0 + 4 * DAY,
        id="in_bob",
        subscription=ns.sub_bob,
        billing_reason="subscription_create",
    )
    ns.ch_bob = w.add_charge(ns.bob, 12000, T0 + 4 * DAY + 60, id="ch_bob", invoice=ns.in_bob)

    ns.carol = w.add_customer(
        T0 + 5 * DAY, id="cus_carol", name="Carol", currency="eur", metadata={"user_id": "u_carol"}
    )
    basic = w.price(1000, id="price_basic_eur", currency="eur", nickname="Basic EU")
    ns.sub_carol_old = w.add_subscription(
        ns.carol,
        basic,
        T0 + 5 * DAY,
        id="sub_carol_old",
        status="canceled",
        canceled_at=T0 + 6 * DAY,
        ended_at=T0 + 6 * DAY,
    )
    volume = w.price(None, id="price_volume", currency="eur", tiered=True)
    ns.sub_carol = w.add_subscription(ns.carol, volume, T0 + 6 * DAY, id="sub_carol")
    ns.in_carol = w.add_invoice(ns.carol, 800, T0 + 7 * DAY, id="in_carol", paid=False)
    ns.ch_carol = w.add_charge(ns.carol, 500, T0 + 8 * DAY, id="ch_carol", currency="usd")

    ns.dave = w.add_customer(
        T0 + 7 * DAY, id="cus_dave", email="dave@example.com", metadata={"user_id": "u_dave"}
    )
    ns.ch_dave = w.add_charge(ns.dave, 1200, T0 + 8 * DAY, id="ch_dave")
    w.delete_customer(ns.dave)

    ns.erin = w.add_customer(
        T0 + 50 * DAY, id="cus_erin", email="erin@example.com", metadata={"user_id": "u_erin"}
    )
    starter = w.price(1500, id="price_starter")
    ns.sub_erin = w.add_subscription(
        ns.erin, starter, T0 + 51 * DAY, id="sub_erin", status="trialing", trial_days=14
    )

    ns.frank = w.add_customer(
        T0 + 60 * DAY, id="cus_frank", email="frank@example.com", metadata={"user_id": "  "}
    )
    yearly = w.price(12000, id="price_yearly", interval="year", nickname="Yearly")
    weekly = w.price(1000, id="price_weekly", interval="week", nickname="Weekly")
    w.add_subscription(ns.frank, yearly, T0 + 61 * DAY, id="sub_frank_yearly")
    w.add_subscription(ns.frank, weekly, T0 + 62 * DAY, id="sub_frank_weekly")

    ns.ch_guest = w.add_charge(None, 2500, T0 + 9 * DAY, id="ch_guest", email="Guest@Example.COM")
    ns.re_guest = w.add_refund(ns.ch_guest, 2500, T0 + 10 * DAY, id="re_guest", reason="duplicate")
    ns.ch_receipt = w.add_charge(
        None, 3100, T0 + 11 * DAY, id="ch_receipt", receipt_email="receipt@example.net"
    )
    ns.dp_receipt = w.add_dispute(
        ns.ch_receipt,
        T0 + 12 * DAY,
        id="dp_receipt",
        reason="product_not_received",
        status="under_review",
    )
    ns.ch_anon = w.add_charge(None, 4200, T0 + 12 * DAY, id="ch_anon")
    ns.dp_anon = w.add_dispute(ns.ch_anon, T0 + 13 * DAY, id="dp_anon")
    return ns
