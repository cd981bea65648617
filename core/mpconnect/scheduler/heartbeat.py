"""The scheduler loop's heartbeat: ``/healthz`` answers 503 when it stops beating."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mpconnect.scheduler.clock import MAX_SLEEP

#: Seconds without a beat after which the loop counts as stuck: it beats at least every
#: :data:`MAX_SLEEP` seconds while waiting, so three missed sleeps mean it is blocked.
STUCK_AFTER = 3 * MAX_SLEEP


class Heartbeat:
    """When the loop last went round, on a monotonic clock (injectable for tests)."""

    def __init__(
        self, stuck_after: float = STUCK_AFTER, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.stuck_after = stuck_after
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: float | None = None

    def beat(self) -> None:
        """The loop went round."""
        with self._lock:
            self._last = self._monotonic()

    def age(self) -> float | None:
        """Seconds since the last beat (None: never beat)."""
        with self._lock:
            last = self._last
        return None if last is None else max(self._monotonic() - last, 0.0)

    def alive(self) -> bool:
        """True when the loop beat within :attr:`stuck_after` seconds."""
        age = self.age()
        return age is not None and age <= self.stuck_after
