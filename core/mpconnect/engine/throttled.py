"""Counting the requests a sink answered 429 (rate limited), for the run's ``throttled``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mpconnect.errors import ApiError

T = TypeVar("T")

#: The HTTP status of a rate-limited request.
TOO_MANY_REQUESTS = 429


def counting_throttled(call: Callable[[], T], on_throttled: Callable[[], None]) -> Callable[[], T]:
    """Return ``call`` wrapped so that each 429 it raises is counted by ``on_throttled``
    before it propagates (to be retried, or to end the run when retries are spent)."""

    def counted() -> T:
        try:
            return call()
        except ApiError as exc:
            if exc.status == TOO_MANY_REQUESTS:
                on_throttled()
            raise

    return counted
