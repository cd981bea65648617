"""Who a Stripe object's events belong to: the ``identity`` setting.

``identity = "customer"``: the Stripe customer id. ``identity = "<metadata key>"``: that
key of the customer's metadata, else the customer id (for customers without it, and for
deleted customers, which the list no longer returns). An object with no customer belongs
to ``guest:<billing email>``; with no email either it belongs to nobody.
"""

from __future__ import annotations

from typing import Any

from mpconnect_stripe.mapping import Payer, clean_email

CUSTOMER = "customer"


class Identities:
    """Maps customer ids to distinct_ids; holds one entry per customer, nothing more.

    :param key: the ``identity`` setting.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._by_customer: dict[str, str] = {}

    @property
    def needs_customers_first(self) -> bool:
        """True when other streams can be attributed only after reading the customers."""
        return self.key != CUSTOMER

    def learn(self, customer: dict[str, Any]) -> str:
        """Record a customer from the customers list and return its distinct_id."""
        customer_id = customer["id"]
        if self.key == CUSTOMER:
            return customer_id
        value = (customer.get("metadata") or {}).get(self.key)
        distinct_id = str(value).strip() if value is not None else ""
        if distinct_id and distinct_id != customer_id:
            self._by_customer[customer_id] = distinct_id
            return distinct_id
        return customer_id

    def remember(self, customer_id: str, distinct_id: str) -> None:
        """Record a customer's distinct_id learned in an earlier run."""
        if distinct_id != customer_id:
            self._by_customer[customer_id] = distinct_id

    def of_customer(self, customer_id: str) -> str:
        """The distinct_id of a customer id (the id itself when nothing else is known)."""
        return self._by_customer.get(customer_id, customer_id)

    def resolve(self, who: Payer) -> str | None:
        """The distinct_id for an object's payer, ``guest:<email>``, or None for nobody."""
        if who.customer_id:
            return self.of_customer(who.customer_id)
        email = clean_email(who.email)
        if email:
            return f"guest:{email.lower()}"
        return None
