"""Whether a run of the ``stripe`` connector reads everything or only what changed.

The source's state (kept by the engine, stored only once a run's data is safe) holds::

    {"events_cursor": {"created": 1733100000, "id": "evt_...", "types": [...] or null},
     "facts_file": "stripe-facts-....sqlite3"}

A run reads only the changes when the engine allows it (not ``--full-refresh``, not a
first run), the state has a cursor and its facts file, and the events since the cursor are
all still kept by Stripe (30 days). Otherwise it reads everything, and says why. Either
way the run ends by naming its new cursor and facts file in the state
(:meth:`Plan.finish`). Without a state directory (a connector used outside the engine)
nothing is kept and every run is a full read, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mpconnect import RunContext
from mpconnect_stripe.changes import Changes, event_types, newest_cursor, read_changes
from mpconnect_stripe.client import StripeReader, StripeRequestError
from mpconnect_stripe.facts import FactsStore
from mpconnect_stripe.settings import StripeSettings

__all__ = ["Plan", "full_plan", "plan_run", "start_cursor"]

CURSOR = "events_cursor"
FACTS = "facts_file"


@dataclass
class Plan:
    """How this run reads: ``changes`` (None: a full read) into ``store``.

    :param cursor: the cursor the next run starts from (None: Stripe's events cannot be
        read with this key; every run is then a full read).
    """

    store: FactsStore | None = None
    changes: Changes | None = None
    cursor: dict[str, Any] | None = field(default=None)

    def finish(self, ctx: RunContext) -> None:
        """The read is complete: save the facts and name them and the cursor in the state."""
        if self.store is None:
            return
        self.store.save()
        if self.changes is None:
            self.store.close()
        ctx.state[FACTS] = self.store.path.name
        cursor = self.changes.cursor if self.changes is not None else self.cursor
        if cursor is None:
            ctx.state.pop(CURSOR, None)
        else:
            ctx.state[CURSOR] = cursor


def streams_of(settings: StripeSettings, needs_customers_first: bool) -> list[str]:
    """The streams whose changes matter: the ones read, and customers when they decide
    who owns the other objects."""
    streams: list[str] = list(settings.objects)
    if needs_customers_first and "customers" not in streams:
        streams.append("customers")
    return streams


def plan_run(
    ctx: RunContext, reader: StripeReader, settings: StripeSettings, needs_customers_first: bool
) -> Plan:
    """Decide between an incremental and a full read; read the changes for the former.

    Calls ``ctx.read_everything(reason)`` when the engine allowed an incremental run but
    the changes cannot be read.
    """
    directory = ctx.state_dir
    if directory is None:
        return Plan()
    committed = ctx.state.get(FACTS)
    FactsStore.remove_others(directory, committed)
    streams = streams_of(settings, needs_customers_first)
    if not ctx.full_refresh:
        cursor = ctx.state.get(CURSOR)
        reason: str | None
        if not isinstance(cursor, dict):
            reason = "no events cursor from the last run (the key may not read events)"
        elif not FactsStore.usable(directory, committed):
            reason = "the customer figures kept by the last run are missing"
        else:
            changes = read_changes(reader, streams, cursor)
            reason = changes.lost or _customers_decide_identity(changes, needs_customers_first)
            if reason is None:
                return Plan(FactsStore.create(directory, copy_of=committed), changes)
        reason = reason or "unknown"
        ctx.log.info("stripe: reading everything: %s", reason)
        ctx.read_everything(reason)
    return Plan(FactsStore.create(directory), None, start_cursor(ctx, reader, streams))


def start_cursor(
    ctx: RunContext, reader: StripeReader, streams: list[str]
) -> dict[str, Any] | None:
    """The events cursor of a full read starting now (None: the key may not read events)."""
    try:
        return newest_cursor(reader, event_types(streams))
    except StripeRequestError as exc:
        if exc.status != 403:
            raise
        ctx.log.warning(
            "stripe: the key may not read events (%s); every run reads everything. "
            "Grant the key read access to Events for incremental runs",
            exc,
        )
        return None


def full_plan(ctx: RunContext, cursor: dict[str, Any] | None) -> Plan:
    """A full read that names ``cursor`` (taken when the partitions were planned) and its
    facts in the state: the partition of a partitioned read that keeps them."""
    if ctx.state_dir is None:
        return Plan()
    FactsStore.remove_others(ctx.state_dir, ctx.state.get(FACTS))
    return Plan(FactsStore.create(ctx.state_dir), None, cursor)


def _customers_decide_identity(changes: Changes, needs_customers_first: bool) -> str | None:
    if needs_customers_first and any(stream == "customers" for stream, _ in changes.objects):
        return "a customer changed, and identity comes from customers' metadata"
    return None
