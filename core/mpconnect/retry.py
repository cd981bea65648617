"""Retries with exponential backoff and jitter, and a shared request-rate limiter.

Used by the engine's upload workers and by connectors (Stripe's client does not retry
429; simple-salesforce does not retry at all). Built on ``tenacity``.

A retry wait ends at once when the run is asked to stop: pass ``stop``, or run inside
:func:`stop_waits_on` (the engine does so while a connector extracts), and the wait
raises :class:`RetryWaitStopped`.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import tenacity

from mpconnect.errors import MpconnectError, RetryableApiError

T = TypeVar("T")

_RUN_STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "mpconnect_run_stop", default=None)


class RetryWaitStopped(MpconnectError):
    """The run was asked to stop while a request waited to be retried."""


@contextlib.contextmanager
def stop_waits_on(stop: threading.Event) -> Iterator[None]:
    """Make retry waits in this thread (and context) end when ``stop`` is set."""
    token = _RUN_STOP.set(stop)
    try:
        yield
    finally:
        _RUN_STOP.reset(token)


def wait_unless_stopped(seconds: float, stop: threading.Event | None = None) -> None:
    """Sleep ``seconds``, or end at once when the run's stop is set (``stop``, else the
    one :func:`stop_waits_on` gave).

    :raises RetryWaitStopped: when the stop is set before or during the wait.
    """
    stop = stop if stop is not None else _RUN_STOP.get()
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise RetryWaitStopped("stopped while waiting to retry")


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
    sleep: Callable[[float], None] | None = None,
    max_retry_after: float | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Call ``func``, retrying on ``retry_on`` exceptions with backoff and jitter.

    A ``retry_after`` attribute on the exception (seconds, from a ``Retry-After`` header)
    is honoured up to ``max_retry_after`` (default ``max_wait``: a server asking for an
    hour does not stall a run for an hour). After ``max_retries`` retries the last
    exception is raised.

    :param on_retry: called as ``on_retry(exception, attempt, wait_seconds)`` before each
        wait, for logging and counting.
    :param sleep: how to wait (default: :func:`wait_unless_stopped` on ``stop``).
    :param stop: ends a wait at once when set, raising :class:`RetryWaitStopped` (default:
        the stop of :func:`stop_waits_on`, if any).
    """

    def wait(seconds: float) -> None:
        wait_unless_stopped(seconds, stop)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action:
            on_retry(state.outcome.exception(), state.attempt_number, state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        wait=_WaitBackoffOrRetryAfter(
            initial_wait, max_wait, max_wait if max_retry_after is None else max_retry_after),
        stop=tenacity.stop_after_attempt(max_retries + 1),
        before_sleep=before_sleep,
        sleep=sleep or wait,
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
