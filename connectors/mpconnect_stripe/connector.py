"""The ``stripe`` connector: customers, charges, refunds, invoices, subscriptions, disputes.

Each run lists every object of the chosen streams (a full snapshot: ``/v1/events`` keeps
only 30 days), turns them into events while gathering per-customer figures, and then
yields one profile per customer. See :mod:`mpconnect_stripe.mapping` for the events,
:mod:`mpconnect_stripe.profiles` for the profiles.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar

from mpconnect import Connector, Event, Profile, RunContext
from mpconnect_stripe.identity import Identities
from mpconnect_stripe.mapping import drafts, payer
from mpconnect_stripe.profiles import CustomerBook
from mpconnect_stripe.pump import pump
from mpconnect_stripe.settings import StripeSettings

__all__ = ["StripeConnector"]


class StripeConnector(Connector):
    """Reads a Stripe account through the official ``stripe`` library."""

    name = "stripe"
    description = "Stripe customers, charges, refunds, invoices, subscriptions and disputes"
    Settings = StripeSettings
    requires = ("stripe",)
    install_hint = 'pip install "mpconnect[stripe]"'

    settings: StripeSettings
    #: How many reader threads may run at once (one per stream).
    max_threads: ClassVar[int] = 6

    def __init__(self, settings: StripeSettings) -> None:
        super().__init__(settings)
        self._book: CustomerBook | None = None
        self.counts: Counter[str] = Counter()
        self.requests = 0
        self.retries = 0

    def _reader(self, ctx: RunContext, stop: threading.Event) -> Any:
        from mpconnect_stripe.client import StripeReader

        return StripeReader(self.settings, ctx.log, stop)

    def check(self, ctx: RunContext) -> str:
        """Verify the key with one cheap call; say whether it is live or test mode."""
        return self._reader(ctx, threading.Event()).check()

    def events(self, ctx: RunContext) -> Iterator[Event]:
        """Yield the events of every configured stream, reading streams concurrently."""
        streams = list(self.settings.objects)
        identities = Identities(self.settings.identity)
        book = CustomerBook(
            with_charges="charges" in streams, with_subscriptions="subscriptions" in streams
        )
        self._book = None
        self.counts.clear()
        stop = threading.Event()
        reader = self._reader(ctx, stop)
        emit_customers = "customers" in streams
        phases: list[list[str]] = [streams]
        if identities.needs_customers_first:
            rest = [name for name in streams if name != "customers"]
            phases = [["customers"], rest] if rest else [["customers"]]
        start = self.settings.start_timestamp

        def read(stream: str) -> Iterator[list[dict[str, Any]]]:
            # Attributing by metadata needs every customer, however old.
            everyone = stream == "customers" and identities.needs_customers_first
            return reader.pages(stream, None if everyone else start)

        try:
            for phase in phases:
                for stream, page in pump(phase[: self.max_threads], read, stop):
                    for obj in page:
                        self.counts[stream] += 1
                        if stream == "customers":
                            distinct_id = identities.learn(obj)
                            if not emit_customers or (start is not None and obj["created"] < start):
                                continue
                            book.add_customer(obj, distinct_id)
                        yield from self._object_events(ctx, stream, obj, identities, book)
        finally:
            stop.set()
            self.requests, self.retries = reader.requests, reader.retries
        ctx.log.info(
            "stripe: read %s in %d requests (%d retried)",
            ", ".join(f"{self.counts[name]} {name}" for name in streams),
            self.requests,
            self.retries,
        )
        self._book = book

    def _object_events(
        self,
        ctx: RunContext,
        stream: str,
        obj: dict[str, Any],
        identities: Identities,
        book: CustomerBook,
    ) -> Iterator[Event]:
        who = payer(stream, obj)
        if who.customer_id and stream == "charges":
            book.add_charge(who.customer_id, obj)
        elif who.customer_id and stream == "subscriptions":
            book.add_subscription(who.customer_id, obj)
        found = drafts(stream, obj)
        if not found:
            return
        distinct_id = identities.resolve(who)
        if distinct_id is None:
            names = ", ".join(repr(draft.name) for draft in found)
            ctx.quarantine(
                f"stripe {stream[:-1]} {obj.get('id')}",
                f"no customer and no billing email: {names} cannot be attributed to anyone",
                obj,
            )
            return
        for draft in found:
            yield Event(
                name=draft.name,
                distinct_id=distinct_id,
                time=draft.time,
                object_id=draft.object_id,
                properties=draft.properties,
            )

    def people(self, ctx: RunContext) -> Iterator[Profile]:
        """Yield one profile per (not deleted) customer, with figures from the events."""
        if "customers" not in self.settings.objects:
            return
        if self._book is None:  # events() was not read to the end: read it now
            for _ in self.events(ctx):
                pass
        assert self._book is not None
        yield from self._book.profiles()
