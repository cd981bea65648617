"""Per-customer figures gathered while reading events, and the profiles made from them.

Everything here is keyed by customer id and small, so memory grows with the number of
customers, never with the number of charges or invoices.

- ``lifetime_value``: over the customer's succeeded charges, the amount captured minus
  the amount refunded, in major units of the customer's currency (other currencies are
  given in ``lifetime_value_by_currency``).
- ``subscription_status`` / ``plan``: of the current subscription (the best status:
  active, trialing, past_due, unpaid, paused, incomplete, canceled, incomplete_expired;
  then the latest start); ``"none"`` without subscriptions.
- ``mrr``: over active and past_due subscriptions, each item's unit amount times quantity
  per month (yearly / 12, weekly * 52/12, daily * 365/12, / interval count); discounts and
  taxes are not applied. Omitted when an item is priced by tiers or usage, where no
  monthly figure can be derived.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mpconnect import Profile
from mpconnect_stripe.mapping import first_item, item_price, plan_name
from mpconnect_stripe.money import to_major

_STATUS_RANK = {
    status: rank
    for rank, status in enumerate(
        [
            "active",
            "trialing",
            "past_due",
            "unpaid",
            "paused",
            "incomplete",
            "canceled",
            "incomplete_expired",
        ]
    )
}
#: The stream name of customer profiles in the source-object cache: a profile gathers
#: figures from many objects, so it is cached apart from the customer's own event.
PROFILES = "customer_profiles"
_MRR_STATUSES = frozenset({"active", "past_due"})
_MONTHS_PER = {"month": 1.0, "year": 12.0, "week": 12 / 52, "day": 12 / 365}


@dataclass(slots=True)
class _Facts:
    ltv: dict[str, int] = field(default_factory=dict)
    current: tuple[int, int, str] | None = None
    status: str | None = None
    plan: str | None = None
    # Each item's monthly amount, summed with math.fsum: the same whatever the order.
    mrr: dict[str, list[float]] = field(default_factory=dict)
    mrr_unknown: bool = False


def _monthly(item: dict[str, Any]) -> tuple[str, float] | None:
    """``(currency, minor units per month)`` of one subscription item, if derivable."""
    price = item_price(item)
    recurring = price.get("recurring") or {}
    interval = recurring.get("interval") or price.get("interval")
    count = recurring.get("interval_count") or price.get("interval_count") or 1
    usage = recurring.get("usage_type") or price.get("usage_type")
    unit_amount = price.get("unit_amount", price.get("amount"))
    if (
        price.get("billing_scheme") == "tiered"
        or usage == "metered"
        or not isinstance(unit_amount, int)
        or interval not in _MONTHS_PER
    ):
        return None
    quantity = item.get("quantity") or 1
    return price.get("currency") or "", unit_amount * quantity / (_MONTHS_PER[interval] * count)


def _in_currency(
    amounts: Mapping[str, float], currency: str | None
) -> tuple[float | None, dict[str, float | None] | None]:
    """Return the amount in ``currency`` (major units), and all currencies if several."""
    if not amounts:
        return 0.0, None
    main = currency or (next(iter(amounts)) if len(amounts) == 1 else None)
    value = to_major(amounts.get(main, 0), main) if main else None
    every = None
    if len(amounts) > 1 or main not in amounts:
        every = {code: to_major(amount, code) for code, amount in sorted(amounts.items())}
    return value, every


class CustomerBook:
    """Customers' profile properties and running figures, keyed by customer id.

    :param with_charges: the charges stream is read (``lifetime_value`` is known).
    :param with_subscriptions: the subscriptions stream is read (status, plan, mrr).
    """

    def __init__(self, *, with_charges: bool, with_subscriptions: bool) -> None:
        self.with_charges = with_charges
        self.with_subscriptions = with_subscriptions
        self._customers: dict[str, tuple[str, dict[str, Any]]] = {}
        self._facts: dict[str, _Facts] = {}

    def __len__(self) -> int:
        return len(self._customers)

    def _facts_of(self, customer_id: str) -> _Facts:
        facts = self._facts.get(customer_id)
        if facts is None:
            facts = self._facts[customer_id] = _Facts()
        return facts

    def add_customer(self, customer: dict[str, Any], distinct_id: str) -> None:
        """Remember a listed customer's own profile properties."""
        properties: dict[str, Any] = dict(customer.get("metadata") or {})
        currency = customer.get("currency")
        properties.update(
            {
                "$email": customer.get("email"),
                "$name": customer.get("name"),
                "$phone": customer.get("phone"),
                "$created": datetime.fromtimestamp(customer["created"], UTC),
                "stripe_customer_id": customer["id"],
                "currency": currency,
                "delinquent": customer.get("delinquent"),
                "balance": to_major(customer.get("balance"), currency),
            }
        )
        for key in ("$email", "$name", "$phone"):
            if properties[key] is None:
                del properties[key]
        self._customers[customer["id"]] = (distinct_id, properties)

    def add_charge(self, customer_id: str, charge: dict[str, Any]) -> None:
        """Count a succeeded charge's captured amount, less refunds, toward lifetime value.

        Stripe reports the part of an authorization that was never captured (released
        after a partial capture, or when the authorization expired) as refunded, so only
        what ``amount_refunded`` holds beyond that part was refunded from the capture.
        """
        if charge.get("status") != "succeeded":
            return
        amount = charge.get("amount") or 0
        captured = charge.get("amount_captured")
        if captured is None:
            captured = amount
        uncaptured = max(0, amount - captured)
        net = captured - max(0, (charge.get("amount_refunded") or 0) - uncaptured)
        currency = charge.get("currency") or ""
        ltv = self._facts_of(customer_id).ltv
        ltv[currency] = ltv.get(currency, 0) + net

    def add_subscription(self, customer_id: str, subscription: dict[str, Any]) -> None:
        """Weigh a subscription for the current status and plan, and add its MRR."""
        facts = self._facts_of(customer_id)
        status = subscription.get("status") or ""
        rank = (
            -_STATUS_RANK.get(status, len(_STATUS_RANK)),
            subscription.get("start_date") or subscription.get("created") or 0,
            subscription.get("id") or "",  # ties: the same winner in every run
        )
        if facts.current is None or rank > facts.current:
            facts.current = rank
            facts.status = status
            facts.plan = plan_name(first_item(subscription))
        if status not in _MRR_STATUSES:
            return
        for item in (subscription.get("items") or {}).get("data") or []:
            monthly = _monthly(item)
            if monthly is None:
                facts.mrr_unknown = True
                continue
            currency, amount = monthly
            facts.mrr.setdefault(currency, []).append(amount)

    def profiles(self) -> Iterator[Profile]:
        """Yield one profile per listed customer, with the figures gathered so far.

        The figures do not depend on the order objects were added in, so a profile
        recomputed from stored facts equals the one a full read makes.
        """
        for customer_id, (distinct_id, properties) in self._customers.items():
            facts = self._facts.get(customer_id) or _Facts()
            values = dict(properties)
            currency = properties.get("currency")
            if self.with_charges:
                values["lifetime_value"], by_currency = _in_currency(facts.ltv, currency)
                if by_currency:
                    values["lifetime_value_by_currency"] = by_currency
            if self.with_subscriptions:
                values["subscription_status"] = facts.status or "none"
                if facts.plan is not None:
                    values["plan"] = facts.plan
                if not facts.mrr_unknown:
                    sums = {code: math.fsum(parts) for code, parts in facts.mrr.items()}
                    mrr, by_currency = _in_currency(sums, currency)
                    if mrr is not None and by_currency is None:
                        values["mrr"] = mrr
            yield Profile(
                distinct_id=distinct_id, set=values, object_id=customer_id, stream=PROFILES
            )
