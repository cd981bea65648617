"""The project's import rate limit, as Mixpanel enforces it, for the local server.

Mixpanel limits what one project may import to 2 GB of uncompressed JSON a minute (about
30,000 events a second), on a rolling one-minute window, and answers 429 past it
(``reference/mixpanel-ingestion-api.md``). :class:`ProjectLimit` does the same for the
local server's project: every import (``/import``, ``/engage``, ``/import-events``,
``/import-people``) counts its records and bytes of JSON against a rolling window; a
request that would exceed either budget is refused with 429 and a ``Retry-After`` saying
when enough of the window will have rolled off. It is off unless configured
(``LocalDatasetsServer(project_limit=...)``, ``mpconnect serve mixpanel
--limit-events``).

Its counters (records and bytes accepted, requests refused, per second) are what tests
and benchmarks read to know the rate the project really received.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: Mixpanel's documented limit: bytes of uncompressed JSON per project per minute.
DOCUMENTED_BYTES_PER_MINUTE = 2_000_000_000
#: Mixpanel's documented limit, in events per second (2 GB a minute of typical events).
DOCUMENTED_EVENTS_PER_SECOND = 30_000


@dataclass
class ProjectLimit:
    """A rolling-window import budget for one project.

    :param events: records accepted per window (0: no limit on records).
    :param bytes: bytes of JSON accepted per window (0: no limit on bytes).
    :param window: the rolling window, in seconds (Mixpanel's is 60).
    :param clock: the time in seconds.
    """

    events: int = 0
    bytes: int = 0
    window: float = 60.0
    clock: Callable[[], float] = field(default=time.time, repr=False)
    _recent: deque[tuple[float, int, int]] = field(default_factory=deque, init=False, repr=False)
    _in_window: list[int] = field(default_factory=lambda: [0, 0], init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: Records accepted, per whole second of :attr:`clock`.
    accepted_by_second: Counter[int] = field(default_factory=Counter, init=False)
    #: Bytes of JSON accepted, per whole second.
    bytes_by_second: Counter[int] = field(default_factory=Counter, init=False)
    #: Requests refused with 429, per whole second.
    refused_by_second: Counter[int] = field(default_factory=Counter, init=False)
    #: Each accepted import: when, and how many records.
    accepted_log: list[tuple[float, int]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.events < 0 or self.bytes < 0:
            raise ValueError("a project limit cannot be negative")
        if self.window <= 0:
            raise ValueError("the window of a project limit must be above 0 seconds")

    @property
    def enabled(self) -> bool:
        """True when a budget is set."""
        return bool(self.events or self.bytes)

    def admit(self, records: int, size: int) -> float | None:
        """Count an import of ``records`` records and ``size`` bytes of JSON; return None
        when it is within the budget (it is then counted as accepted), else the seconds
        after which to retry (the request is counted as refused)."""
        now = self.clock()
        with self._lock:
            while self._recent and self._recent[0][0] <= now - self.window:
                _, old_records, old_size = self._recent.popleft()
                self._in_window[0] -= old_records
                self._in_window[1] -= old_size
            over_events = self.events and self._in_window[0] + records > self.events
            over_bytes = self.bytes and self._in_window[1] + size > self.bytes
            if not (over_events or over_bytes):
                self._accept(now, records, size)
                return None
            self.refused_by_second[int(now)] += 1
            return self._retry_after(now, records, size)

    def _accept(self, now: float, records: int, size: int) -> None:
        self._recent.append((now, records, size))
        self._in_window[0] += records
        self._in_window[1] += size
        self.accepted_by_second[int(now)] += records
        self.bytes_by_second[int(now)] += size
        self.accepted_log.append((now, records))

    def _retry_after(self, now: float, records: int, size: int) -> float:
        """Seconds until enough of the window has rolled off for this request (at least
        1; the whole window when the request alone is larger than the budget)."""
        have_events, have_bytes = self._in_window
        for at, old_records, old_size in self._recent:
            have_events -= old_records
            have_bytes -= old_size
            fits_events = not self.events or have_events + records <= self.events
            fits_bytes = not self.bytes or have_bytes + size <= self.bytes
            if fits_events and fits_bytes:
                return max(1.0, math.ceil(at + self.window - now))
        return max(1.0, math.ceil(self.window))

    def accepted(self) -> int:
        """Records accepted in all."""
        with self._lock:
            return sum(self.accepted_by_second.values())

    def refused(self) -> int:
        """Requests refused with 429 in all."""
        with self._lock:
            return sum(self.refused_by_second.values())

    def accepted_between(self, start: float, end: float) -> int:
        """Records accepted in the whole seconds from ``start`` up to (not including)
        ``end``."""
        with self._lock:
            return sum(n for second, n in self.accepted_by_second.items() if start <= second < end)

    def refused_since(self, start: float) -> int:
        """Requests refused with 429 from the whole second ``start`` on."""
        with self._lock:
            return sum(n for second, n in self.refused_by_second.items() if second >= start)

    def sustained_rate(self) -> float:
        """Records accepted per second from the first accepted import to the last: the
        records of all but the first, over the time between them (0 with fewer than 2)."""
        with self._lock:
            log = list(self.accepted_log)
        if len(log) < 2 or log[-1][0] <= log[0][0]:
            return 0.0
        return sum(n for _, n in log[1:]) / (log[-1][0] - log[0][0])

    def busiest_window(self) -> int:
        """The most records accepted in any rolling window (by whole seconds)."""
        with self._lock:
            seconds = sorted(self.accepted_by_second)
            width = max(1, int(self.window))
            return max(
                (
                    sum(self.accepted_by_second.get(s, 0) for s in range(start, start + width))
                    for start in seconds
                ),
                default=0,
            )
