"""A consistent Stripe account for the local Stripe API: built by hand or from a seed.

Objects start as copies of Stripe's own examples (``stripe_fixtures.json``, taken from
Stripe's ``stripe-fixtures3.json``), so they carry every key Stripe sends, and
the builder fills in values that agree with each other: a refund lowers its charge's
``amount_refunded``, a paid invoice has its charge, a dispute marks its charge disputed,
a deleted customer disappears from the list but not from its charges.

The builder also records the events each object stands for (:attr:`World.expected`), the
truth the connector's output is compared with.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FIXTURES_PATH = Path(__file__).with_name("stripe_fixtures.json")
FIXTURES: dict[str, dict[str, Any]] = json.loads(FIXTURES_PATH.read_text())["resources"]

BASE_TIME = 1_704_067_200  # 2024-01-01T00:00:00Z
DAY = 86_400
MONTH = 30 * DAY
_ID_ALPHABET = string.ascii_letters + string.digits
_FIXTURE_BLOBS = {name: orjson.dumps(obj) for name, obj in FIXTURES.items()}


def from_fixture(kind: str, **values: Any) -> dict[str, Any]:
    """A fresh copy of Stripe's example ``kind`` object with ``values`` set."""
    obj = orjson.loads(_FIXTURE_BLOBS[kind])
    obj.update(values)
    return obj


@dataclass(frozen=True)
class Expected:
    """One event the account stands for; ``customer`` or ``email`` says whose it is."""

    name: str
    object_id: str
    time: int
    customer: str | None
    email: str | None


class World:
    """A Stripe account: lists of objects, consistent with each other.

    :param seed: seeds the ids (and :func:`generate`'s choices).
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.customers: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.expected: list[Expected] = []
        self.order: dict[str, int] = {}

    # ids and bookkeeping -------------------------------------------------------------

    def new_id(self, prefix: str, length: int = 24) -> str:
        """A Stripe-looking id such as ``ch_3Mml...``, unique in this world."""
        while True:
            candidate = prefix + "".join(self.rng.choices(_ID_ALPHABET, k=length))
            if candidate not in self.order:
                return candidate

    def _register(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.order[obj["id"]] = len(self.order)
        return obj

    def _expect(
        self, name: str, obj_id: str, time: int, customer: str | None, email: str | None = None
    ) -> None:
        self.expected.append(Expected(name, obj_id, time, customer, email))

    def lists(self) -> dict[str, list[dict[str, Any]]]:
        """Every list endpoint's objects (deleted customers are not listed)."""
        return {
            "customers": list(self.customers.values()),
            "charges": list(self.charges.values()),
            "refunds": list(self.refunds.values()),
            "invoices": list(self.invoices.values()),
            "subscriptions": list(self.subscriptions.values()),
            "disputes": list(self.disputes.values()),
        }

    def find(self, object_id: str) -> dict[str, Any] | None:
        """Any object by id; a deleted customer is its ``{"deleted": true}`` stub."""
        for table in (
            self.customers,
            self.charges,
            self.refunds,
            self.invoices,
            self.subscriptions,
            self.disputes,
        ):
            if object_id in table:
                return table[object_id]
        if object_id in self.deleted:
            return from_fixture("deleted_customer", id=object_id)
        return None

    # builders ----------------------------------------------------------------------

    def add_customer(
        self,
        created: int,
        *,
        id: str | None = None,
        email: str | None = None,
        name: str | None = None,
        phone: str | None = None,
        currency: str | None = "usd",
        metadata: dict[str, str] | None = None,
        balance: int = 0,
        delinquent: bool = False,
    ) -> dict[str, Any]:
        """Add a customer."""
        customer = from_fixture(
            "customer",
            id=id or self.new_id("cus_", 14),
            created=created,
            email=email,
            name=name,
            phone=phone,
            currency=currency,
            metadata=dict(metadata or {}),
            balance=balance,
            delinquent=delinquent,
            discount=None,
            invoice_prefix=self.new_id("", 8).upper(),
            livemode=False,
        )
        self.customers[customer["id"]] = self._register(customer)
        self._expect("Customer Created", customer["id"], created, customer["id"])
        return customer

    def delete_customer(self, customer: dict[str, Any]) -> None:
        """Delete a customer: gone from the list, still named by its objects."""
        del self.customers[customer["id"]]
        self.deleted[customer["id"]] = customer
        self.expected = [
            e
            for e in self.expected
            if not (e.name == "Customer Created" and e.object_id == customer["id"])
        ]

    def price(
        self,
        unit_amount: int | None,
        *,
        id: str | None = None,
        currency: str = "usd",
        interval: str = "month",
        interval_count: int = 1,
        nickname: str | None = None,
        tiered: bool = False,
    ) -> dict[str, Any]:
        """A recurring price (embedded in subscription items, not listed)."""
        return from_fixture(
            "price",
            id=id or self.new_id("price_"),
            created=BASE_TIME - 30 * DAY,
            currency=currency,
            unit_amount=None if tiered else unit_amount,
            unit_amount_decimal=None if tiered else str(unit_amount),
            billing_scheme="tiered" if tiered else "per_unit",
            tiers_mode="graduated" if tiered else None,
            nickname=nickname,
            product=self.new_id("prod_", 14),
            recurring={
                "interval": interval,
                "interval_count": interval_count,
                "meter": None,
                "usage_type": "licensed",
                "trial_period_days": None,
            },
            custom_unit_amount=None,
            transform_quantity=None,
            livemode=False,
        )

    def add_subscription(
        self,
        customer: dict[str, Any],
        price: dict[str, Any],
        start: int,
        *,
        id: str | None = None,
        quantity: int = 1,
        status: str = "active",
        trial_days: int | None = None,
        canceled_at: int | None = None,
        ended_at: int | None = None,
        cancel_at_period_end: bool = False,
    ) -> dict[str, Any]:
        """Add a subscription to one price; trial, cancellation as given."""
        sub_id = id or self.new_id("sub_")
        plan = from_fixture(
            "plan",
            id=price["id"],
            amount=price["unit_amount"],
            amount_decimal=price["unit_amount_decimal"],
            billing_scheme=price["billing_scheme"],
            tiers_mode=price["tiers_mode"],
            created=price["created"],
            currency=price["currency"],
            interval=price["recurring"]["interval"],
            interval_count=price["recurring"]["interval_count"],
            nickname=price["nickname"],
            product=price["product"],
            livemode=False,
            metadata={},
            transform_usage=None,
        )
        period_start = start
        item = from_fixture(
            "subscription_item",
            id=self.new_id("si_", 14),
            created=start,
            price=price,
            plan=plan,
            quantity=quantity,
            subscription=sub_id,
            current_period_start=period_start,
            current_period_end=period_start + MONTH,
            billing_thresholds=None,
        )
        trial_start = start if trial_days else None
        trial_end = start + trial_days * DAY if trial_days else None
        subscription = from_fixture(
            "subscription",
            id=sub_id,
            customer=customer["id"],
            created=start,
            start_date=start,
            billing_cycle_anchor=trial_end or start,
            billing_cycle_anchor_config=None,
            currency=price["currency"],
            status=status,
            trial_start=trial_start,
            trial_end=trial_end,
            canceled_at=canceled_at,
            cancel_at=None,
            cancel_at_period_end=cancel_at_period_end,
            ended_at=ended_at,
            items={
                "object": "list",
                "data": [item],
                "has_more": False,
                "total_count": 1,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            latest_invoice=None,
            livemode=False,
            metadata={},
            next_pending_invoice_item_invoice=None,
            pause_collection=None,
            pending_invoice_item_interval=None,
            pending_update=None,
            transfer_data=None,
            billing_schedules=[],
            cancellation_details={
                "comment": None,
                "feedback": None,
                "reason": "cancellation_requested" if canceled_at else None,
            },
        )
        self.subscriptions[sub_id] = self._register(subscription)
        if status not in ("incomplete", "incomplete_expired"):  # first payment never made
            self._expect("Subscription Started", sub_id, start, customer["id"])
        if trial_start:
            self._expect("Trial Started", sub_id, trial_start, customer["id"])
        if canceled_at:
            self._expect("Subscription Canceled", sub_id, canceled_at, customer["id"])
        return subscription

    def add_invoice(
        self,
        customer: dict[str, Any],
        amount: int,
        created: int,
        *,
        id: str | None = None,
        subscription: dict[str, Any] | None = None,
        paid: bool = True,
        billing_reason: str = "manual",
        currency: str | None = None,
    ) -> dict[str, Any]:
        """Add a finalized invoice, paid an hour after it was created unless ``paid=False``."""
        inv_id = id or self.new_id("in_")
        paid_at = created + 3600 if paid else None
        currency = currency or customer.get("currency") or "usd"
        invoice = from_fixture(
            "invoice",
            id=inv_id,
            customer=customer["id"],
            customer_email=customer.get("email"),
            customer_name=customer.get("name"),
            created=created,
            currency=currency,
            amount_due=amount,
            amount_paid=amount if paid else 0,
            amount_remaining=0 if paid else amount,
            amount_overpaid=0,
            subtotal=amount,
            subtotal_excluding_tax=amount,
            total=amount,
            total_excluding_tax=amount,
            attempt_count=1,
            attempted=True,
            billing_reason=billing_reason,
            status="paid" if paid else "open",
            status_transitions={
                "finalized_at": created,
                "marked_uncollectible_at": None,
                "paid_at": paid_at,
                "voided_at": None,
            },
            subscription=subscription["id"] if subscription else None,
            parent=(
                {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {"metadata": {}, "subscription": subscription["id"]},
                }
                if subscription
                else None
            ),
            lines={
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/invoices/{inv_id}/lines",
            },
            number=f"{customer['invoice_prefix']}-{len(self.invoices) + 1:04d}",
            period_start=created,
            period_end=created,
            due_date=None,
            effective_at=created,
            from_invoice=None,
            last_finalization_error=None,
            shipping_cost=None,
            webhooks_delivered_at=created,
            next_payment_attempt=None,
            livemode=False,
            metadata={},
        )
        self.invoices[inv_id] = self._register(invoice)
        if paid_at:
            self._expect("Invoice Paid", inv_id, paid_at, customer["id"], customer.get("email"))
        return invoice

    def add_charge(
        self,
        customer: dict[str, Any] | None,
        amount: int,
        created: int,
        *,
        id: str | None = None,
        currency: str | None = None,
        status: str = "succeeded",
        invoice: dict[str, Any] | None = None,
        email: str | None = None,
        receipt_email: str | None = None,
        failure_code: str | None = None,
        payment_method_type: str = "card",
    ) -> dict[str, Any]:
        """Add a charge; ``customer=None`` makes a guest charge (``email`` is its billing email)."""
        charge_id = id or self.new_id("ch_")
        currency = currency or (customer or {}).get("currency") or "usd"
        succeeded = status == "succeeded"
        details = from_fixture("charge")["billing_details"]
        details.update(email=email, name=(customer or {}).get("name"))
        charge = from_fixture(
            "charge",
            id=charge_id,
            customer=customer["id"] if customer else None,
            created=created,
            amount=amount,
            amount_captured=amount if succeeded else 0,
            amount_refunded=0,
            captured=succeeded,
            paid=succeeded,
            refunded=False,
            disputed=False,
            currency=currency,
            status=status,
            failure_code=failure_code if status == "failed" else None,
            failure_message="Your card was declined." if status == "failed" else None,
            invoice=invoice["id"] if invoice else None,
            billing_details=details,
            receipt_email=receipt_email,
            balance_transaction=self.new_id("txn_") if succeeded else None,
            payment_intent=self.new_id("pi_"),
            payment_method=self.new_id("pm_"),
            refunds={
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/charges/{charge_id}/refunds",
            },
            receipt_url=None,
            source=None,
            transfer_data=None,
            description=None,
            livemode=False,
        )
        charge["payment_method_details"]["type"] = payment_method_type
        self.charges[charge_id] = self._register(charge)
        if status in ("succeeded", "failed"):
            name = "Charge Succeeded" if succeeded else "Charge Failed"
            self._expect(name, charge_id, created, charge["customer"], email or receipt_email)
        return charge

    def add_refund(
        self,
        charge: dict[str, Any],
        amount: int,
        created: int,
        *,
        id: str | None = None,
        reason: str | None = "requested_by_customer",
    ) -> dict[str, Any]:
        """Refund part or all of a succeeded charge."""
        refund = from_fixture(
            "refund",
            id=id or self.new_id("re_"),
            charge=charge["id"],
            customer=charge["customer"],
            payment_intent=charge["payment_intent"],
            created=created,
            amount=amount,
            currency=charge["currency"],
            reason=reason,
            status="succeeded",
            balance_transaction=self.new_id("txn_"),
            metadata={},
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        charge["refunds"]["total_count"] += 1
        self.refunds[refund["id"]] = self._register(refund)
        email = charge["billing_details"]["email"] or charge["receipt_email"]
        self._expect("Refund Created", refund["id"], created, charge["customer"], email)
        return refund

    def add_dispute(
        self,
        charge: dict[str, Any],
        created: int,
        *,
        id: str | None = None,
        reason: str = "fraudulent",
        status: str = "needs_response",
    ) -> dict[str, Any]:
        """Dispute a charge."""
        dispute = from_fixture(
            "dispute",
            id=id or self.new_id("dp_"),
            charge=charge["id"],
            payment_intent=charge["payment_intent"],
            created=created,
            amount=charge["amount"],
            currency=charge["currency"],
            reason=reason,
            status=status,
            is_charge_refundable=False,
            livemode=False,
            metadata={},
        )
        charge["disputed"] = True
        self.disputes[dispute["id"]] = self._register(dispute)
        email = charge["billing_details"]["email"] or charge["receipt_email"]
        self._expect("Dispute Created", dispute["id"], created, charge["customer"], email)
        return dispute


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
