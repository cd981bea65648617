"""Counting records a destination keeps only once: events sharing their dedup key.

The Datasets API and the embedded store keep one event per ``$insert_id`` in a version;
Mixpanel's ``/import`` keeps one per (``event``, ``time``, ``distinct_id``,
``$insert_id``). Two such events in one run become one, so the engine counts them.

The keys seen are kept as 64-bit hashes in :class:`HashSet`, an open-addressing table in
one ``array`` (11 to 21 bytes a key), not as a Python set (measured for a million
``$insert_id`` strings: 69 MB as a set of their hashes, about 130 MB as a set of the
strings kept alive; the table: 16 MB). Two different keys sharing a hash (about one
chance in 30 million for a million events) would be counted as one duplicate too many.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mpconnect.engine")

_EMPTY = 0
_FIRST_CAPACITY = 1 << 12


class HashSet:
    """A set of 64-bit integers in one array (linear probing), doubling when 3/4 full."""

    def __init__(self) -> None:
        self._slots = array("q", bytes(8 * _FIRST_CAPACITY))
        self._mask = _FIRST_CAPACITY - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, value: int) -> bool:
        """Add ``value`` (0 is stored as 1); return True if it was there already."""
        value = value or 1
        slots, mask = self._slots, self._mask
        index = value & mask
        while True:
            found = slots[index]
            if found == _EMPTY:
                slots[index] = value
                self._count += 1
                if self._count * 4 > mask * 3:
                    self._grow()
                return False
            if found == value:
                return True
            index = (index + 1) & mask

    def add_many(self, values: list[int]) -> list[int]:
        """Add each of ``values`` in order; return the positions of those that were there
        already (an earlier value of the list counts). One call per batch: the probing
        runs inline, without a method call per value."""
        self.reserve(len(values))
        slots, mask = self._slots, self._mask
        present: list[int] = []
        added = 0
        for position, value in enumerate(values):
            value = value or 1
            index = value & mask
            while True:
                found = slots[index]
                if found == _EMPTY:
                    slots[index] = value
                    added += 1
                    break
                if found == value:
                    present.append(position)
                    break
                index = (index + 1) & mask
        self._count += added
        return present

    def reserve(self, more: int) -> None:
        """Grow now if adding ``more`` values would fill the table past 3/4."""
        while (self._count + more) * 4 > self._mask * 3:
            self._grow()

    def _grow(self) -> None:
        old = self._slots
        capacity = 2 * len(old)
        slots = self._slots = array("q", bytes(8 * capacity))
        mask = self._mask = capacity - 1
        for value in old:
            if value != _EMPTY:
                index = value & mask
                while slots[index] != _EMPTY:
                    index = (index + 1) & mask
                slots[index] = value


class DuplicateCounter:
    """Counts events whose dedup key an earlier event of the run had; warns once.

    :param source: the source's name, for the warning.
    :param full_key: key on (event, time, distinct_id, ``$insert_id``) as ``/import``
        does, instead of ``$insert_id`` alone.
    :param count: duplicates already counted (a resumed run's extraction).
    """

    def __init__(self, source: str, *, full_key: bool = False, count: int = 0) -> None:
        self.source = source
        self.full_key = full_key
        self.count = count
        self._seen = HashSet()

    def key(self, event: dict[str, Any]) -> int | None:
        """The hash of ``event``'s dedup key, or None if it has no ``$insert_id``."""
        properties = event.get("properties")
        if not isinstance(properties, dict):
            return None
        insert_id = properties.get("$insert_id")
        if insert_id is None:
            return None
        if self.full_key:
            return hash(
                (
                    event.get("event"),
                    properties.get("time"),
                    properties.get("distinct_id"),
                    insert_id,
                )
            )
        return hash(insert_id)

    def see_keys(self, keys: list[int], event_at: Callable[[int], dict[str, Any]]) -> None:
        """Count the duplicates among one batch's ``keys`` (from :meth:`key`);
        ``event_at(i)`` gives the event of ``keys[i]``, for the warning on the first."""
        present = self._seen.add_many(keys)
        if present:
            first = self.count == 0
            self.count += len(present)
            if first:
                self._warn(event_at(present[0]))

    def see(self, event: dict[str, Any]) -> None:
        """Count ``event`` (Mixpanel's structure) if its key was seen before in the run."""
        key = self.key(event)
        if key is not None and self._seen.add(key):
            self.count += 1
            if self.count == 1:
                self._warn(event)

    def _warn(self, event: dict[str, Any]) -> None:
        properties = event.get("properties") or {}
        log.warning(
            "%s: duplicate events: event %r (distinct_id %r) has $insert_id %s like "
            "an earlier event of this run; the destination keeps one of them "
            "(duplicates are counted in the run's summary)",
            self.source,
            event.get("event"),
            properties.get("distinct_id"),
            properties.get("$insert_id"),
        )
