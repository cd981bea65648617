"""Stripe objects → Mixpanel event drafts, and who each object belongs to.

Pure functions over the plain dicts the API returns; no requests, no state. A draft is an
event without its distinct_id: the connector resolves the person (see
:mod:`mpconnect_stripe.identity`); objects that belong to nobody become events tied to no
user, or are skipped (the ``unattributed`` setting).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from mpconnect_stripe.money import to_major

__all__ = [
    "Digest",
    "Draft",
    "Payer",
    "clean_email",
    "digest",
    "drafts",
    "item_price",
    "payer",
    "plan_name",
]


class Draft(NamedTuple):
    """An event before attribution: name, epoch time, source object id, properties."""

    name: str
    time: int
    object_id: str
    properties: dict[str, Any]


class Payer(NamedTuple):
    """Whose object it is: the Stripe customer id, else a billing email (or neither).

    The email is already stripped (see :func:`clean_email`); blank counts as none.
    """

    customer_id: str | None
    email: str | None


def _id(value: Any) -> str | None:
    """The id of an expandable field: a string id or an expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def clean_email(value: Any) -> str | None:
    """An email address without surrounding spaces; None when absent or blank."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _charge_email(charge: dict[str, Any]) -> str | None:
    billing = clean_email(_dig(charge, "billing_details", "email"))
    return billing or clean_email(charge.get("receipt_email"))


def first_item(subscription: dict[str, Any]) -> dict[str, Any]:
    """The subscription's first item (its main price), or an empty dict."""
    items = _dig(subscription, "items", "data") or []
    return items[0] if items else {}


def item_price(item: dict[str, Any]) -> dict[str, Any]:
    """The item's price, else its legacy plan, as a dict (possibly empty)."""
    return item.get("price") or item.get("plan") or {}


def plan_name(item: dict[str, Any]) -> str | None:
    """Price nickname, else plan nickname, else price id, else plan id."""
    price, plan = item.get("price") or {}, item.get("plan") or {}
    return price.get("nickname") or plan.get("nickname") or price.get("id") or plan.get("id")


def _interval(price: dict[str, Any]) -> tuple[str | None, int | None]:
    recurring = price.get("recurring") or {}
    interval = recurring.get("interval") or price.get("interval")
    count = recurring.get("interval_count") or price.get("interval_count")
    return interval, count


def _customer_drafts(customer: dict[str, Any]) -> list[Draft]:
    props = {"stripe_customer_id": customer["id"], "currency": customer.get("currency")}
    return [Draft("Customer Created", customer["created"], customer["id"], props)]


def _charge_drafts(charge: dict[str, Any]) -> list[Draft]:
    status = charge.get("status")
    if status == "succeeded":
        name = "Charge Succeeded"
    elif status == "failed":
        name = "Charge Failed"
    else:  # pending: not yet an outcome; it becomes one in a later snapshot
        return []
    currency = charge.get("currency")
    props = {
        "amount": to_major(charge.get("amount"), currency),
        "currency": currency,
        "charge_id": charge["id"],
        "invoice": _id(charge.get("invoice")),
        "payment_method_type": _dig(charge, "payment_method_details", "type"),
        "failure_code": charge.get("failure_code"),
        "stripe_customer_id": _id(charge.get("customer")),
    }
    return [Draft(name, charge["created"], charge["id"], props)]


def _charge_follow_up(stream: str, obj: dict[str, Any], event: str, id_name: str) -> list[Draft]:
    """The one event of a refund or a dispute: an amount, a reason and a status about a
    charge."""
    currency = obj.get("currency")
    props = {
        "amount": to_major(obj.get("amount"), currency),
        "currency": currency,
        "reason": obj.get("reason"),
        "status": obj.get("status"),
        id_name: obj["id"],
        "charge_id": _id(obj.get("charge")),
        "stripe_customer_id": payer(stream, obj).customer_id,
    }
    return [Draft(event, obj["created"], obj["id"], props)]


def _refund_drafts(refund: dict[str, Any]) -> list[Draft]:
    return _charge_follow_up("refunds", refund, "Refund Created", "refund_id")


def _invoice_drafts(invoice: dict[str, Any]) -> list[Draft]:
    paid_at = _dig(invoice, "status_transitions", "paid_at")
    if not paid_at:
        return []
    currency = invoice.get("currency")
    subscription = _id(invoice.get("subscription")) or _id(
        _dig(invoice, "parent", "subscription_details", "subscription")
    )
    props = {
        "amount_paid": to_major(invoice.get("amount_paid"), currency),
        "currency": currency,
        "invoice_id": invoice["id"],
        "subscription_id": subscription,
        "billing_reason": invoice.get("billing_reason"),
        "stripe_customer_id": _id(invoice.get("customer")),
    }
    return [Draft("Invoice Paid", paid_at, invoice["id"], props)]


#: Subscriptions whose first payment has not succeeded (yet, or ever): not started.
_NEVER_STARTED = frozenset({"incomplete", "incomplete_expired"})


def _subscription_drafts(subscription: dict[str, Any]) -> list[Draft]:
    item = first_item(subscription)
    price = item_price(item)
    currency = price.get("currency") or subscription.get("currency")
    interval, interval_count = _interval(price)
    unit_amount = price.get("unit_amount", price.get("amount"))
    base = {
        "subscription_id": subscription["id"],
        "status": subscription.get("status"),
        "plan": plan_name(item),
        "price_id": price.get("id"),
        "price": to_major(unit_amount, currency),
        "currency": currency,
        "quantity": item.get("quantity"),
        "interval": interval,
        "interval_count": interval_count,
        "stripe_customer_id": _id(subscription.get("customer")),
    }
    sub_id = subscription["id"]
    out = []
    if subscription.get("start_date") and subscription.get("status") not in _NEVER_STARTED:
        out.append(Draft("Subscription Started", subscription["start_date"], sub_id, base))
    if subscription.get("trial_start"):
        props = {**base, "trial_end": subscription.get("trial_end")}
        out.append(Draft("Trial Started", subscription["trial_start"], sub_id, props))
    if subscription.get("canceled_at"):
        props = {
            **base,
            "cancel_at_period_end": subscription.get("cancel_at_period_end"),
            "ended_at": subscription.get("ended_at"),
            "cancellation_reason": _dig(subscription, "cancellation_details", "reason"),
        }
        out.append(Draft("Subscription Canceled", subscription["canceled_at"], sub_id, props))
    return out


def _dispute_drafts(dispute: dict[str, Any]) -> list[Draft]:
    return _charge_follow_up("disputes", dispute, "Dispute Created", "dispute_id")


_DRAFTERS: dict[str, Callable[[dict[str, Any]], list[Draft]]] = {
    "customers": _customer_drafts,
    "charges": _charge_drafts,
    "refunds": _refund_drafts,
    "invoices": _invoice_drafts,
    "subscriptions": _subscription_drafts,
    "disputes": _dispute_drafts,
}


def drafts(stream: str, obj: dict[str, Any]) -> list[Draft]:
    """Return the events one object of ``stream`` stands for (often one, maybe none)."""
    return _DRAFTERS[stream](obj)


def payer(stream: str, obj: dict[str, Any]) -> Payer:
    """Return whose object it is.

    Refunds and disputes are read with their charge expanded, so the charge's customer
    and billing email are at hand without a lookup.
    """
    if stream == "customers":
        return Payer(obj["id"], None)
    if stream == "charges":
        return Payer(_id(obj.get("customer")), _charge_email(obj))
    if stream in ("refunds", "disputes"):
        charge = obj.get("charge")
        if isinstance(charge, dict):
            customer = _id(charge.get("customer")) or _id(obj.get("customer"))
            return Payer(customer, _charge_email(charge))
        return Payer(_id(obj.get("customer")), None)
    if stream == "invoices":
        return Payer(_id(obj.get("customer")), clean_email(obj.get("customer_email")))
    return Payer(_id(obj.get("customer")), None)


class Digest(NamedTuple):
    """What the connector keeps of one object: a few hundred bytes instead of its JSON.

    :param facts: the fields the per-customer figures need (customers, charges and
        subscriptions only).
    """

    stream: str
    payer: Payer
    drafts: list[Draft]
    facts: dict[str, Any] | None


_CUSTOMER_FACTS = (
    "id",
    "created",
    "email",
    "name",
    "phone",
    "currency",
    "delinquent",
    "balance",
    "metadata",
)
_CHARGE_FACTS = ("id", "status", "amount", "amount_captured", "amount_refunded", "currency")


def _facts(stream: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    if stream == "customers":
        return {key: obj.get(key) for key in _CUSTOMER_FACTS}
    if stream == "charges":
        return {key: obj.get(key) for key in _CHARGE_FACTS}
    if stream == "subscriptions":
        items = [
            {"price": item.get("price"), "plan": item.get("plan"), "quantity": item.get("quantity")}
            for item in _dig(obj, "items", "data") or []
        ]
        return {
            "id": obj.get("id"),
            "status": obj.get("status"),
            "start_date": obj.get("start_date"),
            "created": obj.get("created"),
            "items": {"data": items},
        }
    return None


def digest(stream: str, obj: dict[str, Any]) -> Digest:
    """Reduce one object of ``stream`` to its events, its payer and the facts needed."""
    return Digest(stream, payer(stream, obj), drafts(stream, obj), _facts(stream, obj))
