"""Retries with exponential backoff and jitter, and a shared request-rate limiter.

Used by the engine's upload workers and by connectors (Stripe's client does not retry
429; simple-salesforce does not retry at all). Built on ``tenacity``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

from mpconnect.errors import RetryableApiError

T = TypeVar("T")

#: The longest ``Retry-After`` honoured (longer ones are cut to this, not to ``max_wait``).
MAX_RETRY_AFTER = 900.0


class RateLimiter:
    """A thread-safe token bucket: at most ``rate`` acquisitions per second on average.

    :param rate: acquisitions per second; ``None`` or 0 means unlimited.
    :param burst: how many may go at once after a quiet spell (default: 1 second's worth,
        at least 1).
    """

    def __init__(self, rate: float | None, burst: float | None = None) -> None:
        self.rate = rate or 0.0
        self.capacity = burst if burst is not None else max(1.0, self.rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one request may be made."""
        if not self.rate:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


class _WaitBackoffOrRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with full jitter, or the server's Retry-After when it gave one."""

    def __init__(self, initial: float, maximum: float, max_retry_after: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.max_retry_after = max_retry_after

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # the server knows best, within reason
            return min(float(retry_after), self.max_retry_after) + random.uniform(0, 0.1)
        ceiling = min(self.maximum, self.initial * 2 ** (retry_state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)


def call_with_retries(
    func: Callable[[], T],
    *,
    max_retries: int = 8,
    initial_wait: float = 0.5,
    max_wait: float = 60.0,
    retry_on: tuple[type[BaseException], ...] = (RetryableApiError,),
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_retry_after: float = MAX_RETRY_AFTER,
) -> T:
    """Call ``func``, retrying on ``retry_on`` exceptions with backoff and jitter.

    A ``retry_after`` attribute on the exception (seconds, from a ``Retry-After`` header)
    is honoured up to ``max_retry_after`` (``max_wait`` caps only the backoff). After
    ``max_retries`` retries the last exception is raised.

    :param on_retry: called as ``on_retry(exception, attempt, wait_seconds)`` before each
        wait, for logging and counting.
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action:
            on_retry(state.outcome.exception(), state.attempt_number, state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        wait=_WaitBackoffOrRetryAfter(initial_wait, max_wait, max_retry_after),
        stop=tenacity.stop_after_attempt(max_retries + 1),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    return retrying(func)


def parse_retry_after(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds; None when absent or a date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
