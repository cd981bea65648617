"""What changed in a Stripe account since a cursor, read from ``GET /v1/events``.

Stripe records an event for each change of an object, with a copy of the object as it was
then (``data.object``), and lists them newest first for 30 days. The cursor is the newest
event a run has seen (``{"created": ..., "id": ...}``); the next run lists the events
created since that second (the cursor's event and its second included), and keeps the
newest event of each object: its copy is the object as it is now (as of that event).
``customer.deleted`` and ``invoice.deleted`` say an object is gone;
``customer.subscription.deleted`` only says a subscription ended (it is still listed,
canceled).

When the cursor's event is no longer listed, or is older than 30 days, events have been
lost: :func:`read_changes` says so and the connector reads everything.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["RETENTION", "Change", "Changes", "event_types", "read_changes"]

#: How long Stripe keeps events.
RETENTION = 30 * 86_400
#: A cursor this close to the 30 days is treated as too old (clocks differ; a run takes time).
MARGIN = 3600
#: Stripe's most ``types[]`` in one request; with more, all events are read and sorted here.
MAX_TYPES = 20
#: The event types that touch each stream's objects.
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "customers": ("customer.created", "customer.updated", "customer.deleted"),
    "charges": (
        "charge.succeeded",
        "charge.failed",
        "charge.pending",
        "charge.captured",
        "charge.expired",
        "charge.refunded",
        "charge.updated",
    ),
    "refunds": ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"),
    "invoices": (
        "invoice.created",
        "invoice.updated",
        "invoice.deleted",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.voided",
        "invoice.marked_uncollectible",
    ),
    "subscriptions": (
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    ),
    "disputes": (
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    ),
}
#: The stream of each ``data.object.object``.
_STREAM_OF = {
    "customer": "customers",
    "charge": "charges",
    "refund": "refunds",
    "invoice": "invoices",
    "subscription": "subscriptions",
    "dispute": "disputes",
}
_DELETIONS = frozenset({"customer.deleted", "invoice.deleted"})


class EventPages(Protocol):
    """What reads the events: :meth:`mpconnect_stripe.client.StripeReader.events_page`."""

    def events_page(
        self, *, gte: int | None, after: str | None, types: list[str] | None, limit: int = ...
    ) -> tuple[list[dict[str, Any]], bool]: ...


@dataclass(frozen=True)
class Change:
    """The newest state of one changed object: ``obj`` (None when it was deleted)."""

    stream: str
    object_id: str
    obj: dict[str, Any] | None


@dataclass
class Changes:
    """The objects changed since the cursor, and the cursor to keep for the next run.

    :param lost: why events since the cursor cannot all be read (None: they were).
    """

    objects: dict[tuple[str, str], Change]
    cursor: dict[str, Any]
    events: int = 0
    lost: str | None = None


def event_types(streams: Iterable[str]) -> list[str] | None:
    """The ``types[]`` filter for ``streams``, or None when it would exceed Stripe's 20."""
    types = sorted({kind for stream in streams for kind in EVENT_TYPES[stream]})
    return types if len(types) <= MAX_TYPES else None


def newest_cursor(reader: EventPages, types: list[str] | None) -> dict[str, Any]:
    """The cursor at the start of a full read: the newest event now, so that every change
    made while the full read lists objects is read again by the next run."""
    events, _ = reader.events_page(gte=None, after=None, types=types, limit=1)
    if events:
        return {"created": events[0]["created"], "id": events[0]["id"], "types": types}
    # No event yet: from now on (a little earlier, for a clock that differs from Stripe's).
    return {"created": int(time.time()) - 300, "id": None, "types": types}


def read_changes(
    reader: EventPages, streams: Iterable[str], cursor: dict[str, Any], now: float | None = None
) -> Changes:
    """List the events since ``cursor`` and keep the newest state of each object read.

    Memory holds one copy per changed object, never one per event.
    """
    wanted = set(streams)
    types = event_types(wanted)
    created = cursor.get("created")
    if cursor.get("types", types) != types or not isinstance(created, int):
        return Changes({}, cursor, lost="the streams read changed since the last run")
    now = time.time() if now is None else now
    if created < now - RETENTION + MARGIN:
        return Changes({}, cursor, lost="the cursor is older than Stripe keeps events (30 days)")
    objects: dict[tuple[str, str], Change] = {}
    newest: dict[str, Any] | None = None
    after: str | None = None
    count = 0
    found = cursor.get("id") is None
    while True:
        # Down to the cursor's second, the cursor's event included: Stripe does not say
        # how it orders events of one second, and reading one again changes nothing.
        page, has_more = reader.events_page(gte=created, after=after, types=types)
        for event in page:
            found = found or event["id"] == cursor.get("id")
            count += 1
            if newest is None:
                newest = {"created": event["created"], "id": event["id"], "types": types}
            _keep(objects, event, wanted)
        if not has_more or not page:
            break
        after = page[-1]["id"]
    if not found:
        return Changes(
            {}, cursor, count, lost="the cursor is older than Stripe keeps events (30 days)"
        )
    return Changes(objects, newest or cursor, count)


def _keep(objects: dict[tuple[str, str], Change], event: dict[str, Any], wanted: set[str]) -> None:
    """Note the object of one event unless a newer event already did."""
    obj = (event.get("data") or {}).get("object") or {}
    stream = _STREAM_OF.get(obj.get("object", ""))
    object_id = obj.get("id")
    if stream not in wanted or not isinstance(object_id, str):
        return
    key = (stream, object_id)
    if key not in objects:
        gone = event.get("type") in _DELETIONS or obj.get("deleted") is True
        objects[key] = Change(stream, object_id, None if gone else obj)
