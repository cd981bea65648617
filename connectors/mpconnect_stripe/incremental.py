"""An incremental run of the ``stripe`` connector: apply the changes read from the events.

For each changed object (see :mod:`mpconnect_stripe.changes`) the run yields all the
events the object stands for now, exactly as a full read would (refunds and disputes get
their charge, which a full read expands), or, when it is gone or stands for no event any
more, tells the engine to drop its records. The facts of changed charges, subscriptions
and customers go to the run's :class:`~mpconnect_stripe.facts.FactsStore`; afterwards the
profiles of every customer whose objects changed are recomputed from the stored facts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mpconnect import Event, Profile, RunContext
from mpconnect_stripe.changes import Changes
from mpconnect_stripe.facts import TABLES, FactsStore
from mpconnect_stripe.identity import Identities
from mpconnect_stripe.mapping import Digest, digest
from mpconnect_stripe.profiles import PROFILES, CustomerBook
from mpconnect_stripe.settings import StripeSettings

__all__ = ["IncrementalRead"]

ToEvents = Callable[[Digest, Identities], list[Event]]


class IncrementalRead:
    """Applies one run's changes; remembers whose profiles must be made again.

    :param retrieve: ``retrieve(stream, id)`` fetches one object (a refund's charge that
        did not change in this run).
    :param to_events: turns a digested object into its events, as a full read does.
    """

    def __init__(
        self,
        settings: StripeSettings,
        store: FactsStore,
        changes: Changes,
        identities: Identities,
        retrieve: Callable[[str, str], dict[str, Any]],
        to_events: ToEvents,
    ) -> None:
        self.settings = settings
        self.store = store
        self.changes = changes
        self.identities = identities
        self.retrieve = retrieve
        self.to_events = to_events
        self.affected: set[str] = set()
        self.fetched = 0

    def events(self, ctx: RunContext) -> Iterator[Event]:
        """Yield the events of every changed object; drop deleted objects' records."""
        start = self.settings.start_timestamp
        charges = {
            change.object_id: change.obj
            for change in self.changes.objects.values()
            if change.stream == "charges" and change.obj is not None
        }
        for change in self.changes.objects.values():
            stream, object_id, obj = change.stream, change.object_id, change.obj
            owner = self.store.owner(stream, object_id)
            if owner:
                self.affected.add(owner)
            if obj is None:
                ctx.deleted(stream, object_id)
                if stream == "customers":
                    ctx.deleted(PROFILES, object_id)
                self.store.forget(stream, object_id)
                continue
            if start is not None and (obj.get("created") or 0) < start:
                continue  # a full read does not list it either
            if stream in ("refunds", "disputes") and isinstance(obj.get("charge"), str):
                charge = charges.get(obj["charge"])
                if charge is None:
                    charge = self.retrieve("charges", obj["charge"])
                    self.fetched += 1
                obj = {**obj, "charge": charge}
            item = digest(stream, obj)
            self._keep_facts(item, object_id, start)
            events = self.to_events(item, self.identities) if self._has_events(item) else []
            if events:
                yield from events
            else:
                ctx.deleted(stream, object_id)

    def _has_events(self, item: Digest) -> bool:
        if item.stream != "customers":
            return True
        return "customers" in self.settings.objects

    def _keep_facts(self, item: Digest, object_id: str, start: int | None) -> None:
        customer_id = item.payer.customer_id
        if item.stream == "customers":
            assert item.facts is not None
            distinct_id = self.identities.learn(item.facts)
            self.store.put_customer(item.facts, distinct_id, "customers" in self.settings.objects)
            self.affected.add(object_id)
        elif item.stream in TABLES:
            if customer_id and item.facts is not None:
                self.store.put(item.stream, object_id, customer_id, item.facts)
                self.affected.add(customer_id)
            else:
                self.store.forget(item.stream, object_id)
        if customer_id and self.identities.needs_customers_first:
            known = self.store.customer(customer_id)
            if known is not None:
                self.identities.remember(customer_id, known[1])

    def profiles(self) -> Iterator[Profile]:
        """Yield the profile of each customer whose objects changed, from stored facts."""
        objects = self.settings.objects
        if "customers" not in objects:
            return
        for customer_id in sorted(self.affected):
            known = self.store.customer(customer_id)
            if known is None or not known[2]:
                continue
            facts, distinct_id, _ = known
            book = CustomerBook(
                with_charges="charges" in objects, with_subscriptions="subscriptions" in objects
            )
            book.add_customer(facts, distinct_id)
            if book.with_charges:
                for charge in self.store.facts_of("charges", customer_id):
                    book.add_charge(customer_id, charge)
            if book.with_subscriptions:
                for subscription in self.store.facts_of("subscriptions", customer_id):
                    book.add_subscription(customer_id, subscription)
            yield from book.profiles()
