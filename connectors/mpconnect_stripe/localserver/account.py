"""The base of the local Stripe account: fixtures, ids, lists, events, subscriptions, invoices.

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

from .events import EventLog

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


class Account:
    """A Stripe account's lists, ids and event log; :class:`~.world.World` builds on it.

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
        #: Stripe's event log; events are recorded once :attr:`recording` is True.
        self.events = EventLog()
        self.recording = False
        #: Counts changes, so the server knows when to sort its lists again.
        self.version = 0

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

    def now(self) -> int:
        """The account's clock (see :meth:`EventLog.now`)."""
        return self.events.now()

    def record_events(self) -> None:
        """From now on, record an event for each change, as Stripe does.

        :func:`~.generate.generate` builds its history without events (it is older than
        the 30 days Stripe keeps them); tests call this before changing the account.
        """
        self.recording = True

    def emit(self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        """Note a change of ``obj``: a ``kind`` event when recording."""
        self.version += 1
        if self.recording:
            self.events.record(kind, obj, previous)

    # subscriptions and invoices ----------------------------------------------------

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
        self.emit("customer.subscription.created", subscription)
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
        self.emit("invoice.created", invoice)
        if paid:
            self.emit("invoice.paid", invoice)
        if paid_at:
            self._expect("Invoice Paid", inv_id, paid_at, customer["id"], customer.get("email"))
        return invoice
