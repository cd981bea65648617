"""Counting records a destination keeps only once: events sharing their dedup key.

The Datasets API and the embedded store keep one event per ``$insert_id`` in a version;
Mixpanel's ``/import`` keeps one per (``event``, ``time``, ``distinct_id``,
``$insert_id``). Two such events in one read become one, so the engine counts them.

A key is the 64-bit ``hash`` of the dedup key, taken a batch at a time. Memory stays
the same however long the read:

- the latest keys (:class:`~mpconnect.engine.recent_keys.RecentKeys`) name the first
  duplicate found near its twin in a warning, as it happens;
- every key is spilled to disk (:class:`~mpconnect.engine.key_spill.KeySpill`, under the
  spool), and :meth:`DuplicateCounter.finish` counts the duplicates exactly from there
  once the read is over, one bucket of keys at a time.

Two different keys sharing a hash (about one chance in 30 million for a million events)
would be counted as one duplicate too many.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mpconnect.engine.key_spill import DEFAULT_BUFFER_KEYS, DEFAULT_MAX_BUCKET_KEYS, KeySpill
from mpconnect.engine.recent_keys import DEFAULT_WINDOW, RecentKeys

log = logging.getLogger("mpconnect.engine")

#: The directory under a spool where a read's keys are spilled.
SPILL_DIRECTORY = "duplicate-keys"


class DuplicateCounter:
    """Counts events whose dedup key an earlier event of the read had.

    :param source: the source's name, for the warnings.
    :param full_key: key on (event, time, distinct_id, ``$insert_id``) as ``/import``
        does, instead of ``$insert_id`` alone.
    :param count: duplicates already counted (a resumed run's extraction).
    :param window: a duplicate within this many events of its twin is named in a warning
        as it is found; one further back is counted when the read ends.
    :param buffer_keys: keys held in memory before they are spilled.
    :param max_bucket_keys: keys counted at once at the end.
    """

    def __init__(
        self,
        source: str,
        *,
        full_key: bool = False,
        count: int = 0,
        window: int = DEFAULT_WINDOW,
        buffer_keys: int = DEFAULT_BUFFER_KEYS,
        max_bucket_keys: int = DEFAULT_MAX_BUCKET_KEYS,
    ) -> None:
        self.source = source
        self.full_key = full_key
        self.count = count
        self.window = window
        self.buffer_keys = buffer_keys
        self.max_bucket_keys = max_bucket_keys
        self._lock = threading.Lock()
        self._spill: KeySpill | None = None
        self._recent: RecentKeys | None = None
        self._named = False

    def add(self, count: int) -> None:
        """Count ``count`` more duplicates (safe from any thread)."""
        with self._lock:
            self.count += count

    @contextmanager
    def counting(self, spool_dir: Path) -> Iterator[None]:
        """Count the duplicates of the read done in the block, spilling its keys under
        ``spool_dir``; the exact count is added when the block ends without an error."""
        self.start(spool_dir / SPILL_DIRECTORY)
        try:
            yield
        except BaseException:
            self.discard()
            raise
        self.finish()

    def start(self, directory: Path) -> None:
        """Begin a read whose keys are spilled to ``directory`` (made empty)."""
        self.discard()
        self._spill = KeySpill(
            directory, buffer_keys=self.buffer_keys, max_bucket_keys=self.max_bucket_keys
        )
        self._recent = RecentKeys(self.window)
        self._named = False

    def see_batch(self, events: list[dict[str, Any]]) -> None:
        """Take one batch of events (Mixpanel's structure) into the count; warn, naming
        it, about the first duplicate found near its twin."""
        keys: list[int] = []
        positions: list[int] = []
        for position, event in enumerate(events):
            key = self.key(event)
            if key is not None:
                keys.append(key)
                positions.append(position)
        self.see_keys(keys, lambda index: events[positions[index]])

    def see_keys(self, keys: list[int], event_at: Callable[[int], dict[str, Any]]) -> None:
        """Take one batch's ``keys`` (from :meth:`key`) into the count; ``event_at(i)``
        gives the event of ``keys[i]``, for the warning naming a duplicate."""
        if self._spill is None:
            raise RuntimeError("DuplicateCounter.start() was not called")
        self._spill.add(keys)
        if self._recent is not None:
            repeat = self._recent.add(keys)
            if repeat is not None:
                self._recent = None  # one warning names a duplicate; the count does the rest
                self._named = True
                self._warn(event_at(repeat))

    def finish(self) -> int:
        """End the read: count its duplicates exactly, add them to :attr:`count`, warn
        with their number if none was named, and remove the spilled keys. Return the
        number found."""
        spill, self._spill, self._recent = self._spill, None, None
        if spill is None:
            return 0
        try:
            found = spill.count_repeats()
        finally:
            spill.remove()
        self.add(found)
        if found and not self._named:
            log.warning(
                "%s: duplicate events: %d events have the %s of an earlier event of this "
                "run, more than %s events before them; the destination keeps one of each "
                "(duplicates are counted in the run's summary)",
                self.source,
                found,
                "event, time, distinct_id and $insert_id" if self.full_key else "$insert_id",
                f"{self.window:,}",
            )
        return found

    def discard(self) -> None:
        """Drop the read's spilled keys without counting them (a failed read)."""
        spill, self._spill, self._recent = self._spill, None, None
        if spill is not None:
            spill.remove()

    def key(self, event: dict[str, Any]) -> int | None:
        """The hash of ``event``'s dedup key, or None if it has no ``$insert_id``."""
        try:  # the usual event, without a check per field
            properties = event["properties"]
            insert_id = properties["$insert_id"]
            if insert_id is not None:
                if self.full_key:
                    rest = (properties["time"], properties["distinct_id"], insert_id)
                    return hash((event["event"], rest))
                return hash(insert_id)
        except (KeyError, TypeError):
            pass
        properties = event.get("properties")
        if not isinstance(properties, dict):
            return None
        insert_id = properties.get("$insert_id")
        if insert_id is None:
            return None
        if self.full_key:
            rest = (properties.get("time"), properties.get("distinct_id"), insert_id)
            return hash((event.get("event"), rest))
        return hash(insert_id)

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
