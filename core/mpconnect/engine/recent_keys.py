"""The dedup keys of the latest events of a read, to name a duplicate seen near its twin.

Two sets of at most ``window`` keys: the current one and the one filled before it. A key
is compared with both, so a repeat within ``window`` keys of its twin is always found
(one further back may be), and memory holds at most about twice ``window`` keys. Each
batch is checked with set operations that run in C, not key by key.
"""

from __future__ import annotations

#: Keys per set (a duplicate within this many events of its twin is named).
DEFAULT_WINDOW = 65_536


class RecentKeys:
    """The latest keys of a read, in two sets of up to ``window`` keys each."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = max(1, window)
        self._current: set[int] = set()
        self._previous: set[int] = set()
        # The batches in the current set, to tell what it held before a batch.
        self._batches: list[list[int]] = []

    def add(self, keys: list[int]) -> int | None:
        """Add one batch's ``keys``; return the position of the first one that is in the
        window already or earlier in ``keys``, or None."""
        current = self._current
        before = len(current)
        current.update(keys)
        repeat = None
        if len(current) - before != len(keys) or not self._previous.isdisjoint(keys):
            repeat = self._first_repeat(keys)
        self._batches.append(keys)
        if len(current) >= self.window:
            self._previous, self._current, self._batches = current, set(), []
        return repeat

    def _first_repeat(self, keys: list[int]) -> int | None:
        earlier = set().union(*self._batches)  # the current set before this batch
        previous = self._previous
        seen: set[int] = set()
        for position, key in enumerate(keys):
            if key in earlier or key in previous or key in seen:
                return position
            seen.add(key)
        return None
