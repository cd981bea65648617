"""The scheduler's sense of time, injectable so tests need not wait for minutes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Protocol

#: The longest the system clock sleeps in one go, so wall-clock jumps (NTP, a laptop
#: waking up) are noticed within this many seconds.
MAX_SLEEP = 30.0


class Clock(Protocol):
    """What the scheduler needs from a clock."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds passed; return whether it was set."""
        ...


class SystemClock:
    """The real clock: wall time for schedules, ``Event.wait`` for sleeping."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Sleep on ``event`` for at most ``timeout`` (and at most :data:`MAX_SLEEP`) seconds."""
        return event.wait(min(max(timeout, 0.0), MAX_SLEEP))
