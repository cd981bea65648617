"""Failures the ingestion endpoints answer instead of doing the work.

:class:`IngestionFaults` scripts them (429 with Mixpanel's body, 5xx, any 4xx, dropped
connections, answers lost after the work is done) or draws 429s and 503s at random rates;
:func:`fault_answer` writes the answer of one.

These are not the Datasets API's :class:`~mpconnect.emulator.faults.FaultInjector`: faults
here are scripted per request and answered with Mixpanel's ingestion bodies.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from mpconnect.emulator.ingestion_answers import RATE_LIMITED, server_error
from mpconnect.emulator.responses import drop_connection

#: A scripted fault that closes the connection without an answer, doing nothing.
DROP = -1
#: A scripted fault that does the work, then closes the connection without an answer
#: (the acknowledgement is lost: a client re-sends what was already stored).
LOST_ACK = -2


@dataclass
class IngestionFaults:
    """Failures the endpoints answer instead of doing the work.

    Scripted faults (:meth:`fail_next`) come first, in order; then each request fails with
    ``rate_limit_rate`` probability as a 429 and ``error_rate`` as a 503.

    :param rate_limit_rate: share of requests answered 429.
    :param error_rate: share of requests answered 503.
    :param retry_after: a ``Retry-After`` header (seconds) on 429s; Mixpanel sends none.
    :param latency: seconds each request waits before it is answered.
    :param seed: seed of the random choices, for repeatable runs.
    """

    rate_limit_rate: float = 0.0
    error_rate: float = 0.0
    retry_after: float | None = None
    latency: float = 0.0
    seed: int | None = None
    _script: deque[tuple[str | None, int]] = field(default_factory=deque, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def fail_next(self, *statuses: int, path: str | None = None) -> None:
        """Answer the next requests with these statuses (429, 5xx, 4xx), or :data:`DROP`
        or :data:`LOST_ACK` them.

        :param path: only requests to this path (``"/import"`` or ``"/engage"``).
        """
        with self._lock:
            self._script.extend((path, status) for status in statuses)

    def pick(self, path: str) -> int | None:
        """Return the fault for a request to ``path``, or None to serve it."""
        with self._lock:
            for item in self._script:
                if item[0] in (None, path):
                    self._script.remove(item)
                    return item[1]
        draw = self._random.random()
        if draw < self.rate_limit_rate:
            return 429
        if draw < self.rate_limit_rate + self.error_rate:
            return 503
        return None


def fault_answer(
    request: web.Request, status: int, faults: IngestionFaults
) -> web.StreamResponse | None:
    """The answer to ``request`` for the fault ``status``; None for :data:`LOST_ACK`
    (do the work, then drop the answer)."""
    if status == LOST_ACK:
        return None
    if status == DROP:
        return drop_connection(request)
    if status == 429:
        headers = {}
        if faults.retry_after is not None:
            headers["Retry-After"] = f"{faults.retry_after:g}"
        return web.json_response(RATE_LIMITED, status=429, headers=headers)
    if status < 500:
        return web.json_response(
            {"code": status, "error": "injected fault", "status": "Bad Request"}, status=status
        )
    return web.json_response(server_error(status), status=status)
