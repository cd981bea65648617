"""What the local Stripe API counts (:class:`Stats`) and how it limits the request rate."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Stats", "TokenBucket"]


@dataclass
class Stats:
    """What the server saw: counts by path and outcome, and the time of each request."""

    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    served_at: list[float] = field(default_factory=list)
    queries: list[tuple[str, str]] = field(default_factory=list)

    @property
    def throttled(self) -> int:
        """How many requests got a 429."""
        return self.by_status[429]


class TokenBucket:
    """Stripe-like limiter: ``rate`` requests per second, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else rate
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> bool:
        """Take one token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
