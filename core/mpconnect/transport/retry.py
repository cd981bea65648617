"""Retries with exponential backoff and jitter, and a shared request-rate limiter.

Used by the engine's upload workers and by connectors (Stripe's client does not retry
429; simple-salesforce does not retry at all). Built on ``tenacity``.

A retry wait ends at once when the run is asked to stop: pass ``stop``, or run inside
:func:`stop_waits_on` (the engine does so while a connector extracts), and the wait
raises :class:`RetryWaitStopped`.

A server that cannot be reached at all (the connection is refused, the host name does not
resolve) is not worth a long backoff: an error marked with :func:`mark_unreachable` is
retried at most :data:`UNREACHABLE_RETRIES` times, :data:`UNREACHABLE_WAIT` seconds apart
(doubling). 5xx answers and timeouts keep the full budget. Inside :func:`short_retries`
(``mpconnect check``) every budget is cut to one quick retry.

Every retry is logged the same way, by :func:`log_retry`: one WARNING line
``WHAT: ERROR; retry N of M in X s``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import tenacity

from mpconnect.errors import MpconnectError, RetryableApiError
from mpconnect.transport.failures import unreachable_message, why_unreachable

__all__ = [
    "RateLimiter",
    "RetryWaitStopped",
    "SharedUnreachableRetries",
    "attempts_of",
    "call_with_retries",
    "log_retry",
    "mark_unreachable",
    "parse_retry_after",
    "retry_budget",
    "retry_line",
    "short_retries",
    "stop_waits_on",
    "unreachable_message",
    "unreachable_reason",
    "wait_unless_stopped",
    "why_unreachable",
]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

#: Retries of a request whose server cannot be reached (refused, name not resolved).
UNREACHABLE_RETRIES = 2
#: The first wait before retrying an unreachable server, in seconds (it doubles).
UNREACHABLE_WAIT = 0.5
#: The retry budget and longest wait inside :func:`short_retries`.
SHORT_RETRIES = 1
SHORT_MAX_WAIT = 2.0

_SHORT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "mpconnect_short_retries", default=False
)

_RUN_STOP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "mpconnect_run_stop", default=None
)


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


def mark_unreachable(error: E, reason: str) -> E:
    """Mark ``error`` as "the server cannot be reached" (``reason``, such as
    ``"connection refused"``): :func:`call_with_retries` retries it only a few times,
    quickly. Returns ``error``."""
    error.unreachable = reason  # type: ignore[attr-defined]
    return error


def unreachable_reason(error: BaseException | None) -> str | None:
    """Why the server of ``error`` cannot be reached, or None when it is another failure."""
    reason = getattr(error, "unreachable", None)
    return reason if isinstance(reason, str) else None


@contextlib.contextmanager
def short_retries() -> Iterator[None]:
    """Within this block (and context), every :func:`call_with_retries` retries at most
    once and waits at most :data:`SHORT_MAX_WAIT` s: for ``mpconnect check``, which should
    answer within seconds."""
    token = _SHORT.set(True)
    try:
        yield
    finally:
        _SHORT.reset(token)


def retry_budget(error: BaseException | None, max_retries: int) -> int:
    """How many retries ``error`` gets when the caller allows ``max_retries``: fewer for
    an unreachable server (:func:`mark_unreachable`) and inside :func:`short_retries`."""
    budget = max_retries
    if unreachable_reason(error) is not None:
        budget = min(budget, UNREACHABLE_RETRIES)
    if _SHORT.get():
        budget = min(budget, SHORT_RETRIES)
    return budget


def retry_line(what: str, error: BaseException, attempt: int, budget: int, wait: float) -> str:
    """The one line every retry is reported with: ``WHAT: ERROR; retry N of M in X s``."""
    return f"{what}: {error}; retry {attempt} of {budget} in {wait:.1f} s"


def log_retry(
    log: logging.Logger, what: str, error: BaseException, attempt: int, budget: int, wait: float
) -> None:
    """Log a retry at WARNING, as :func:`retry_line` words it: the same for every
    connector and sink."""
    log.warning("%s", retry_line(what, error, attempt, budget, wait))


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
        if unreachable_reason(exc) is not None:
            return UNREACHABLE_WAIT * 2 ** (retry_state.attempt_number - 1)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # the server knows best, within reason
            return min(float(retry_after), self.max_retry_after) + random.uniform(0, 0.1)
        ceiling = min(self.maximum, self.initial * 2 ** (retry_state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)


class SharedUnreachableRetries:
    """One budget of :data:`UNREACHABLE_RETRIES` retries for the concurrent calls to one
    server (a connector's workers, the upload workers): when it cannot be reached, the
    run gives up after a few retries in all, not a few per worker."""

    def __init__(self, limit: int = UNREACHABLE_RETRIES) -> None:
        self.left = limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Use one retry; False when none is left."""
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def attempts_of(error: BaseException) -> int | None:
    """How many attempts :func:`call_with_retries` made before it gave up with ``error``."""
    attempts = getattr(error, "attempts", None)
    return attempts if isinstance(attempts, int) else None


class _StopAfterBudget(tenacity.stop.stop_base):
    """Stop once the failure's own budget (:func:`retry_budget`) of retries is used, or the
    shared budget of unreachable retries; the exception keeps the number of attempts."""

    def __init__(self, max_retries: int, shared: SharedUnreachableRetries | None) -> None:
        self.max_retries = max_retries
        self.shared = shared

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        attempts = retry_state.attempt_number
        done = attempts > retry_budget(exc, self.max_retries) or (
            self.shared is not None
            and unreachable_reason(exc) is not None
            and not self.shared.take()
        )
        if done and exc is not None:
            exc.attempts = attempts  # type: ignore[attr-defined]
        return done


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
    shared_unreachable: SharedUnreachableRetries | None = None,
) -> T:
    """Call ``func``, retrying on ``retry_on`` exceptions with backoff and jitter.

    A ``retry_after`` attribute on the exception (seconds, from a ``Retry-After`` header)
    is honoured up to ``max_retry_after`` (default ``max_wait``: a server asking for an
    hour does not stall a run for an hour). After ``max_retries`` retries the last
    exception is raised; an error marked by :func:`mark_unreachable` gets only
    :data:`UNREACHABLE_RETRIES` quick ones, and :func:`short_retries` cuts every budget
    (see :func:`retry_budget`).

    :param on_retry: called as ``on_retry(exception, attempt, wait_seconds)`` before each
        wait, for logging and counting; :func:`retry_budget` of the exception says how
        many retries it gets in all.
    :param sleep: how to wait (default: :func:`wait_unless_stopped` on ``stop``).
    :param stop: ends a wait at once when set, raising :class:`RetryWaitStopped` (default:
        the stop of :func:`stop_waits_on`, if any).
    :param shared_unreachable: a budget of unreachable-server retries shared with the
        other calls to the same server.
    """

    def wait(seconds: float) -> None:
        wait_unless_stopped(seconds, stop)

    if _SHORT.get():
        max_wait = min(max_wait, SHORT_MAX_WAIT)
        max_retry_after = min(
            max_retry_after if max_retry_after is not None else max_wait, SHORT_MAX_WAIT
        )

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is None or state.outcome is None or not state.next_action:
            return
        error = state.outcome.exception()
        if error is not None:  # tenacity retries on exceptions only
            on_retry(error, state.attempt_number, state.next_action.sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        wait=_WaitBackoffOrRetryAfter(
            initial_wait, max_wait, max_wait if max_retry_after is None else max_retry_after
        ),
        stop=_StopAfterBudget(max_retries, shared_unreachable),
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
