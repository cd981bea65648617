"""The ``stripe`` connector: customers, charges, refunds, invoices, subscriptions, disputes.

A full read lists every object of the chosen streams, turns them into events while
gathering per-customer figures, and then yields one profile per customer. An incremental
run (the default once a full read has been made) reads only what changed, from Stripe's
events (:mod:`mpconnect_stripe.changes`, :mod:`mpconnect_stripe.incremental`). See
:mod:`mpconnect_stripe.mapping` for the events, :mod:`mpconnect_stripe.profiles` for the
profiles.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing, suppress
from typing import Any, ClassVar

from mpconnect import Connector, Event, Partition, Profile, RunContext
from mpconnect_stripe.facts import TABLES, FactsStore
from mpconnect_stripe.identity import Identities
from mpconnect_stripe.incremental import IncrementalRead
from mpconnect_stripe.mapping import Digest, digest
from mpconnect_stripe.ordered import ordered_pump
from mpconnect_stripe.partitioning import PartitionSpec, plan_partitions, sub_windows
from mpconnect_stripe.plan import Plan, full_plan, plan_run, start_cursor, streams_of
from mpconnect_stripe.profiles import CustomerBook
from mpconnect_stripe.pump import Window, pump
from mpconnect_stripe.settings import StripeSettings

__all__ = ["StripeConnector"]


class StripeConnector(Connector):
    """Reads a Stripe account through the official ``stripe`` library."""

    name = "stripe"
    description = "Stripe customers, charges, refunds, invoices, subscriptions and disputes"
    Settings = StripeSettings
    requires = ("stripe",)
    install_hint = 'pip install "mpconnect[stripe]"'
    incremental = True

    settings: StripeSettings
    #: The most worker threads reading at once.
    max_workers: ClassVar[int] = 16
    #: Seconds one list request takes on Stripe (with some margin): the workers needed
    #: to use the whole rate limit are about the rate times this.
    request_seconds: ClassVar[float] = 0.5

    def workers(self) -> int:
        """How many workers can keep the request rate busy."""
        wanted = math.ceil(self.settings.request_rate * self.request_seconds)
        return max(len(self.settings.objects), min(self.max_workers, wanted))

    def __init__(self, settings: StripeSettings) -> None:
        super().__init__(settings)
        self._book: CustomerBook | None = None
        # The books of partitions read by this instance, by key (one instance may read
        # every partition's events before any partition's people).
        self._books: dict[str, CustomerBook] = {}
        self._changes: IncrementalRead | None = None
        self.counts: Counter[str] = Counter()
        self.requests = 0
        self.retries = 0
        # The running read, so close() can stop it when the generator is left suspended.
        self._stop: threading.Event | None = None
        self._pages: Generator[tuple[str, list[Any]], None, None] | None = None

    def _reader(self, ctx: RunContext, stop: threading.Event) -> Any:
        from mpconnect_stripe.client import StripeReader

        return StripeReader(
            self.settings,
            ctx.log,
            stop,
            url_key=ctx.setting_key("api_base"),
            count_retry=ctx.count_retry,
        )

    def check(self, ctx: RunContext) -> str:
        """Verify the key with one cheap call; say whether it is live or test mode."""
        return self._reader(ctx, threading.Event()).check()

    def partitions(self, ctx: RunContext) -> list[Partition]:
        """A full read: the profiles partition and ``created`` ranges of the other streams,
        all bounded now (see :mod:`mpconnect_stripe.partitioning`). Otherwise one."""
        if ctx.partition is not None:
            return [ctx.partition]  # called again inside a partition: read only that one
        if not ctx.full_refresh:
            return [Partition("all")]
        stop = threading.Event()
        reader = self._reader(ctx, stop)
        first = Identities(self.settings.identity).needs_customers_first

        def probe(stream: str, gte: int, lt: int) -> bool:
            page, _ = reader.list_page(stream, gte=gte, lt=lt, limit=1)
            return bool(page)

        def newest(stream: str, lt: int) -> int | None:
            page, _ = reader.list_page(stream, lt=lt, limit=1)
            return int(page[0]["created"]) if page else None

        try:
            cursor = start_cursor(ctx, reader, streams_of(self.settings, first))
            return plan_partitions(
                list(self.settings.objects),
                self.settings.start_timestamp,
                self.settings.partitions_per_stream,
                int(time.time()),
                probe,
                cursor,
                newest,
            )
        finally:
            stop.set()

    @classmethod
    def merge_states(cls, states: list[tuple[Partition, dict[str, Any]]]) -> dict[str, Any]:
        """The state of a partitioned full read: the one the partition that keeps it left
        (its events cursor, taken when the partitions were planned, before anything was
        listed, and its facts file); the other partitions leave the state as it was."""
        kept = [
            state
            for partition, state in states
            if (spec := PartitionSpec.of(partition)) is not None and spec.keeps_state
        ]
        if len(kept) != 1:
            return super().merge_states(states)
        return kept[0]

    def events(self, ctx: RunContext) -> Iterator[Event]:
        """Yield the events of every configured stream, reading streams concurrently.

        In a partition (:meth:`partitions`): only its streams and ``created`` range, cut
        into windows yielded in a fixed order, so that a partition read again yields the
        same records in the same order.
        """
        part = PartitionSpec.of(ctx.partition)
        streams = list(self.settings.objects) if part is None else part.streams
        identities = Identities(self.settings.identity)
        book = CustomerBook(
            with_charges="charges" in streams, with_subscriptions="subscriptions" in streams
        )
        self._book = None
        self._changes = None
        self.counts.clear()
        stop = self._stop = threading.Event()
        reader = self._reader(ctx, stop)
        try:
            plan = (
                plan_run(ctx, reader, self.settings, identities.needs_customers_first)
                if part is None
                else full_plan(ctx, part.cursor)
                if part.keeps_state
                else Plan()
            )
        except BaseException:
            self._stop_reader(reader)
            raise
        if plan.changes is not None:
            yield from self._apply(ctx, reader, plan, identities)
            return
        store = plan.store
        phases: list[Sequence[str]] = [streams]
        if identities.needs_customers_first:
            rest: list[str] = [name for name in streams if name != "customers"]
            phases = [["customers"], rest] if rest else [["customers"]]
        start = self.settings.start_timestamp

        def window(stream: str) -> Window:
            # Attributing by metadata needs every customer, however old.
            everyone = stream == "customers" and identities.needs_customers_first
            if part is None:
                return Window(stream, gte=None if everyone else start)
            gte = None if everyone else part.gte if part.gte is not None else start
            return Window(stream, gte=gte, lt=part.lt)

        def windows(phase: Sequence[str]) -> list[Window]:
            if part is None:
                return [window(stream) for stream in phase]
            return [
                Window(stream, gte, lt)
                for stream in phase
                for whole in [window(stream)]
                for gte, lt in sub_windows(
                    whole.gte,
                    part.lt,
                    part.oldest.get(stream),
                    self.workers(),
                    part.newest.get(stream),
                )
            ]

        def fetch(part: Window) -> tuple[list[dict[str, Any]], bool]:
            return reader.list_page(part.stream, gte=part.gte, lt=part.lt, after=part.after)

        try:
            for phase in phases:
                pages = (
                    pump(windows(phase), fetch, stop, self.workers(), reader.saturated, digest)
                    if part is None
                    else ordered_pump(windows(phase), fetch, stop, self.workers(), digest)
                )
                self._pages = pages
                with closing(pages):
                    for stream, page in pages:
                        for item in page:
                            self.counts[stream] += 1
                            yield from self._item_events(
                                item, identities, book, start, store, "customers" in streams
                            )
        except BaseException:
            if store is not None:
                store.discard()
            raise
        finally:
            self._stop_reader(reader)
        plan.finish(ctx)
        ctx.log.info(
            "stripe: read %s in %d requests (%d retried)",
            ", ".join(f"{self.counts[name]} {name}" for name in streams),
            self.requests,
            self.retries,
        )
        if self.counts["unattributed skipped"]:
            ctx.log.info(
                'stripe: skipped %d objects with no customer and no email (unattributed = "skip")',
                self.counts["unattributed skipped"],
            )
        self._book = book
        if ctx.partition is not None:
            self._books[ctx.partition.key] = book

    def _apply(
        self, ctx: RunContext, reader: Any, plan: Plan, identities: Identities
    ) -> Iterator[Event]:
        """An incremental run: yield the events of the objects that changed."""
        assert plan.changes is not None and plan.store is not None
        changes = IncrementalRead(
            self.settings, plan.store, plan.changes, identities, reader.retrieve, self._to_events
        )
        try:
            yield from changes.events(ctx)
        except BaseException:
            plan.store.discard()
            raise
        finally:
            self._stop_reader(reader)
        plan.finish(ctx)
        self._changes = changes  # its store stays open until people() has read it
        ctx.log.info(
            "stripe: %d events since the last run changed %d objects; read in %d requests",
            plan.changes.events,
            len(plan.changes.objects),
            self.requests,
        )

    def _stop_reader(self, reader: Any) -> None:
        if self._stop is not None:
            self._stop.set()
        self.requests, self.retries = reader.requests, reader.retries

    def _item_events(
        self,
        item: Digest,
        identities: Identities,
        book: CustomerBook,
        start: int | None,
        store: FactsStore | None,
        listed: bool,
    ) -> Iterator[Event]:
        customer_id = item.payer.customer_id
        if item.stream == "customers":
            assert item.facts is not None
            distinct_id = identities.learn(item.facts)
            if not listed or (start is not None and item.facts["created"] < start):
                if store is not None:
                    store.put_customer(item.facts, distinct_id, False)
                return
            book.add_customer(item.facts, distinct_id)
            if store is not None:
                store.put_customer(item.facts, distinct_id, True)
        elif customer_id and item.stream == "charges":
            book.add_charge(customer_id, item.facts or {})
        elif customer_id and item.stream == "subscriptions":
            book.add_subscription(customer_id, item.facts or {})
        if store is not None and customer_id and item.stream in TABLES and item.facts:
            store.put(item.stream, item.facts["id"], customer_id, item.facts)
        yield from self._to_events(item, identities)

    def _to_events(self, item: Digest, identities: Identities) -> list[Event]:
        """The events of one digested object (none when it is skipped as unattributed)."""
        if not item.drafts:
            return []
        person = identities.resolve(item.payer)
        if person is None and self.settings.unattributed == "skip":
            self.counts["unattributed skipped"] += 1
            return []
        owner = person or ""  # "": tied to no user (no customer and no email)
        return [
            Event(
                name=draft.name,
                distinct_id=owner,
                time=draft.time,
                object_id=draft.object_id,
                properties=draft.properties,
                unattributed=person is None,
                stream=item.stream,
            )
            for draft in item.drafts
        ]

    def close(self) -> None:
        """Stop the reading threads and wait for them, even if ``events()`` was left open.

        The engine calls this after a failure that left the generator suspended (and
        perhaps kept alive by a traceback), so its own clean-up has not run.
        """
        if self._stop is not None:
            self._stop.set()
        if self._changes is not None:
            self._changes.store.close()
        pages, self._pages = self._pages, None
        if pages is not None:
            # ValueError: it is being read on another thread, where the stop event ends it.
            with suppress(ValueError):
                pages.close()  # joins the workers

    def people(self, ctx: RunContext) -> Iterator[Profile]:
        """Yield one profile per (not deleted) customer, with figures from the events.

        After an incremental read: the profiles of the customers whose objects changed.
        """
        part = PartitionSpec.of(ctx.partition)
        if "customers" not in (self.settings.objects if part is None else part.streams):
            return
        if self._changes is not None:
            yield from self._changes.profiles()
            self._changes.store.close()
            return
        if ctx.partition is not None and ctx.partition.key in self._books:
            self._book = self._books.pop(ctx.partition.key)
        elif self._book is None or ctx.partition is not None:
            # events() was not read to the end, or was read for another partition
            for _ in self.events(ctx):
                pass
        assert self._book is not None
        yield from self._book.profiles()
