"""A consistent Stripe account for the local Stripe API: built by hand or from a seed.

Objects start as copies of Stripe's own examples (``stripe_fixtures.json``, taken from
Stripe's ``stripe-fixtures3.json``), so they carry every key Stripe sends, and
the builder fills in values that agree with each other: a refund lowers its charge's
``amount_refunded``, a paid invoice has its charge, a dispute marks its charge disputed,
a deleted customer disappears from the list but not from its charges.

The builder also records the events each object stands for (:attr:`World.expected`), the
truth the connector's output is compared with, and, once :meth:`World.record_events` is
called, the Stripe events (``GET /v1/events``) of each change: creating, updating and
deleting customers, charges, refunds, disputes, subscriptions and invoices.
"""

from __future__ import annotations

from typing import Any

from .account import (
    BASE_TIME,
    DAY,
    FIXTURES,
    FIXTURES_PATH,
    MONTH,
    Account,
    Expected,
    from_fixture,
)

__all__ = [
    "BASE_TIME",
    "DAY",
    "FIXTURES",
    "FIXTURES_PATH",
    "MONTH",
    "Expected",
    "World",
    "from_fixture",
]


class World(Account):
    """A Stripe account: lists of objects, consistent with each other.

    :param seed: seeds the ids (and :func:`~.generate.generate`'s choices).
    """

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
        self.emit("customer.created", customer)
        self._expect("Customer Created", customer["id"], created, customer["id"])
        return customer

    def delete_customer(self, customer: dict[str, Any]) -> None:
        """Delete a customer: gone from the list, still named by its objects.

        When recording events (a change to a live account), its subscriptions end at
        once, as Stripe ends them.
        """
        if self.recording:
            for subscription in list(self.subscriptions.values()):
                live = subscription["status"] not in ("canceled", "incomplete_expired")
                if subscription["customer"] == customer["id"] and live:
                    self.cancel_subscription(subscription, self.now())
        del self.customers[customer["id"]]
        self.deleted[customer["id"]] = customer
        self.expected = [
            e
            for e in self.expected
            if not (e.name == "Customer Created" and e.object_id == customer["id"])
        ]
        self.emit("customer.deleted", customer)

    def update_customer(self, customer: dict[str, Any], **fields: Any) -> None:
        """Change some of a customer's fields (``name``, ``email``, ``metadata``, ...)."""
        previous = {key: customer.get(key) for key in fields}
        customer.update(fields)
        self.emit("customer.updated", customer, previous)

    def cancel_subscription(self, subscription: dict[str, Any], at: int) -> None:
        """End a subscription at ``at`` (Stripe's ``customer.subscription.deleted``)."""
        previous = {"status": subscription["status"], "canceled_at": None, "ended_at": None}
        subscription.update(status="canceled", canceled_at=at, ended_at=at)
        subscription["cancellation_details"]["reason"] = "cancellation_requested"
        self._expect("Subscription Canceled", subscription["id"], at, subscription["customer"])
        self.emit("customer.subscription.deleted", subscription, previous)

    def change_quantity(self, subscription: dict[str, Any], quantity: int) -> None:
        """Change the quantity of a subscription's first item."""
        item = subscription["items"]["data"][0]
        previous = {"items": {"data": [{"quantity": item["quantity"]}]}}
        item["quantity"] = quantity
        self.emit("customer.subscription.updated", subscription, previous)

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
        self.emit(f"charge.{status}", charge)
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
        self.emit("refund.created", refund)
        self.emit("charge.refunded", charge)
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
        self.emit("charge.dispute.created", dispute)
        email = charge["billing_details"]["email"] or charge["receipt_email"]
        self._expect("Dispute Created", dispute["id"], created, charge["customer"], email)
        return dispute
