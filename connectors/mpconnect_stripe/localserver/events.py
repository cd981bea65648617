"""The account's event log, as Stripe's ``GET /v1/events`` serves it.

Stripe records an event each time an object is created, updated or deleted: its ``data.object``
is a copy of the object as it was then (``data.previous_attributes`` holds what an update
changed). The list is newest first and goes back 30 days only: older events are gone.

The log's clock is the real one plus :attr:`EventLog.offset`, so a test can let time pass
(:meth:`EventLog.advance`) and watch events age out of the window.
"""

from __future__ import annotations

import fnmatch
import itertools
import time
from typing import Any

import orjson

from .listing import created_bounds, invalid, page_size

__all__ = ["RETENTION", "EventLog", "list_events"]

#: How long Stripe keeps events: 30 days.
RETENTION = 30 * 86_400
#: The API version events are rendered in (the local server's own).
API_VERSION = "2024-06-20"


class EventLog:
    """The events of one account, oldest first; :meth:`kept` is what Stripe still lists."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.offset = 0
        self._numbers = itertools.count(1)

    def now(self) -> int:
        """The account's clock: epoch seconds (the real time, plus :attr:`offset`)."""
        return int(time.time()) + self.offset

    def advance(self, seconds: int) -> None:
        """Let ``seconds`` pass on the account's clock."""
        self.offset += seconds

    def record(
        self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append a ``kind`` event (``"charge.succeeded"``) carrying a copy of ``obj``."""
        number = next(self._numbers)
        data: dict[str, Any] = {"object": orjson.loads(orjson.dumps(obj))}
        if previous:
            data["previous_attributes"] = previous
        event = {
            "id": f"evt_1Mpc{number:020d}",
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        self.items.append(event)
        return event

    def kept(self) -> list[dict[str, Any]]:
        """The events of the last 30 days, newest first (ties: the later one first)."""
        oldest = self.now() - RETENTION
        kept = [event for event in reversed(self.items) if event["created"] >= oldest]
        kept.sort(key=lambda event: event["created"], reverse=True)  # stable: later first
        return kept

    def matching(self, kind: str | None, kinds: list[str] | None) -> list[dict[str, Any]]:
        """The kept events of type ``kind`` (``*`` wildcards allowed) or of one of ``kinds``."""
        events = self.kept()
        if kind is not None:
            events = [event for event in events if fnmatch.fnmatchcase(event["type"], kind)]
        if kinds is not None:
            wanted = set(kinds)
            events = [event for event in events if event["type"] in wanted]
        return events


#: The query parameters ``GET /v1/events`` takes.
_EVENT_PARAMS = frozenset(
    {"limit", "starting_after", "ending_before", "created", "type", "types", "delivery_success"}
)
#: Stripe's most ``types[]`` in one request.
MAX_TYPES = 20


def list_events(log: EventLog, query: dict[str, Any]) -> dict[str, Any]:
    """Answer ``GET /v1/events`` with ``query`` (parsed as :func:`.listing.parse_query` does).

    :raises StripeApiError: for unknown parameters, ``type`` with ``types``, more than 20
        types, and a cursor that names no event Stripe still keeps (404).
    """
    for name in query:
        if name not in _EVENT_PARAMS:
            raise invalid(f"Received unknown parameter: {name}", param=name)
    limit = page_size(query.get("limit", "10"))
    kind, kinds = query.get("type"), query.get("types")
    if isinstance(kinds, str):
        kinds = [kinds]
    if kind is not None and kinds is not None:
        raise invalid("You may only specify one of these parameters: type, types.", param="types")
    if kinds is not None and len(kinds) > MAX_TYPES:
        raise invalid(f"You may pass at most {MAX_TYPES} types.", param="types")
    bounds = created_bounds(query.get("created"))
    events = [e for e in log.matching(kind, kinds) if _within(e["created"], bounds)]
    after, before = query.get("starting_after"), query.get("ending_before")
    if after and before:
        raise invalid(
            "You may only specify one of these parameters: starting_after, ending_before.",
            param="ending_before",
        )
    if after:
        start = _position(events, after, "starting_after") + 1
        chosen, has_more = events[start : start + limit], start + limit < len(events)
    elif before:
        end = _position(events, before, "ending_before")
        chosen, has_more = events[max(0, end - limit) : end], end - limit > 0
    else:
        chosen, has_more = events[:limit], limit < len(events)
    return {"object": "list", "data": chosen, "has_more": has_more, "url": "/v1/events"}


def _within(created: int, bounds: dict[str, int]) -> bool:
    return (
        created > bounds.get("gt", created - 1)
        and created >= bounds.get("gte", created)
        and created < bounds.get("lt", created + 1)
        and created <= bounds.get("lte", created)
    )


def _position(events: list[dict[str, Any]], event_id: str, param: str) -> int:
    for position, event in enumerate(events):
        if event["id"] == event_id:
            return position
    raise invalid(f"No such event: '{event_id}'", param=param, code="resource_missing", status=404)
