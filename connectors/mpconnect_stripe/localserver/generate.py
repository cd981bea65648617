"""Random but consistent Stripe accounts for the local Stripe API: :func:`generate`."""

from __future__ import annotations

from typing import Any

from .account import BASE_TIME, DAY, MONTH
from .world import World

__all__ = ["generate"]

_FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Radia",
    "Tim",
    "Margaret",
    "John",
    "Sophie",
    "Linus",
    "Hedy",
    "Dennis",
]
_LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Hamilton",
    "McCarthy",
    "Wilson",
    "Torvalds",
    "Lamarr",
]
_FAILURES = ["card_declined", "expired_card", "insufficient_funds", "incorrect_cvc"]
_REFUND_REASONS = ["requested_by_customer", "duplicate", "fraudulent", None]
_DISPUTE_REASONS = ["fraudulent", "product_not_received", "duplicate", "general"]


def generate(
    seed: int = 1,
    customers: int = 60,
    *,
    guests: int = 10,
    one_off_charges: tuple[int, int] = (0, 3),
    days: int = 365,
) -> World:
    """Build a random but consistent account from ``seed``.

    Customers (70 % with a ``user_id`` in their metadata, a few in eur or zero-decimal
    jpy) with subscriptions (active, trialing, past_due, canceled), monthly invoices each
    paid by a charge, one-off charges (some failed), refunds, disputes, some deleted
    customers, and guest charges with and without a billing email.
    """
    world = World(seed)
    rng = world.rng
    end = BASE_TIME + days * DAY
    catalogue = {
        "usd": [
            world.price(1500, currency="usd", nickname="Starter"),
            world.price(4900, currency="usd", nickname="Pro"),
            world.price(49000, currency="usd", interval="year", nickname="Pro Annual"),
            world.price(900, currency="usd"),
        ],
        "eur": [
            world.price(1200, currency="eur", nickname="Starter EU"),
            world.price(None, currency="eur", tiered=True, nickname="Volume EU"),
        ],
        "jpy": [world.price(2000, currency="jpy", nickname="Starter JP")],
    }
    people = []
    for i in range(customers):
        created = BASE_TIME + rng.randrange(days * DAY // 2)
        currency = rng.choice(["usd"] * 8 + ["eur", "jpy"])
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        metadata = {"user_id": f"user_{i:05d}"} if rng.random() < 0.7 else {}
        if rng.random() < 0.3:
            metadata["segment"] = rng.choice(["smb", "mid-market", "enterprise"])
        customer = world.add_customer(
            created,
            email=f"{first}.{last}.{i}@example.com".lower(),
            name=f"{first} {last}",
            phone=f"+1555{i:07d}" if rng.random() < 0.5 else None,
            currency=currency,
            metadata=metadata,
            balance=rng.choice([0, 0, 0, -500, 1200]),
            delinquent=False,
        )
        people.append(customer)
        if rng.random() < 0.65:
            _subscribe(world, customer, rng.choice(catalogue[currency]), end)
        for _ in range(rng.randint(*one_off_charges)):
            when = rng.randrange(created, end)
            failed = rng.random() < 0.15
            amount = rng.randrange(500, 20000) // (10 if currency == "jpy" else 1)
            _charge(world, customer, amount, when, failed=failed)
    for i in range(guests):
        when = BASE_TIME + rng.randrange(days * DAY)
        email = f"Guest{i}@Example.org" if i % 3 else None
        charge = world.add_charge(None, rng.randrange(500, 9000), when, email=email)
        if i % 4 == 0:
            world.add_refund(charge, charge["amount"], when + DAY, reason="requested_by_customer")
    for customer in rng.sample(people, k=max(1, customers // 20)):
        world.delete_customer(customer)
    return world


def _charge(
    world: World,
    customer: dict[str, Any],
    amount: int,
    when: int,
    *,
    failed: bool = False,
    invoice: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rng = world.rng
    if failed:
        return world.add_charge(
            customer,
            amount,
            when,
            status="failed",
            invoice=invoice,
            failure_code=rng.choice(_FAILURES),
        )
    charge = world.add_charge(
        customer,
        amount,
        when,
        invoice=invoice,
        email=customer["email"] if rng.random() < 0.5 else None,
    )
    roll = rng.random()
    if roll < 0.10:
        part = amount if rng.random() < 0.5 else amount // 2
        world.add_refund(
            charge, part, when + rng.randrange(DAY, 20 * DAY), reason=rng.choice(_REFUND_REASONS)
        )
    elif roll < 0.13:
        world.add_dispute(
            charge, when + rng.randrange(DAY, 30 * DAY), reason=rng.choice(_DISPUTE_REASONS)
        )
    return charge


def _subscribe(world: World, customer: dict[str, Any], price: dict[str, Any], end: int) -> None:
    rng = world.rng
    start = customer["created"] + rng.randrange(0, 10 * DAY)
    trial_days = 14 if rng.random() < 0.3 else None
    status = rng.choices(["active", "trialing", "past_due", "canceled"], [5, 1, 1, 2])[0]
    if status == "trialing":
        trial_days = 14
        start = end - 5 * DAY
    canceled_at = ended_at = None
    if status == "canceled":
        canceled_at = ended_at = start + rng.randrange(1, 6) * MONTH
    subscription = world.add_subscription(
        customer,
        price,
        start,
        quantity=rng.choice([1, 1, 1, 2, 5]),
        status=status,
        trial_days=trial_days,
        canceled_at=canceled_at,
        ended_at=ended_at,
    )
    if status == "trialing" or price["unit_amount"] is None:
        return
    step = 12 * MONTH if price["recurring"]["interval"] == "year" else MONTH
    amount = price["unit_amount"] * subscription["items"]["data"][0]["quantity"]
    when = start + (trial_days or 0) * DAY
    stop = ended_at or end
    first = True
    while when < stop:
        last = when + step >= stop
        unpaid = status == "past_due" and last
        invoice = world.add_invoice(
            customer,
            amount,
            when,
            subscription=subscription,
            paid=not unpaid,
            billing_reason="subscription_create" if first else "subscription_cycle",
        )
        _charge(world, customer, amount, when + 60, failed=unpaid, invoice=invoice)
        first = False
        when += step
