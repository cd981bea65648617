"""Fault injection for the local Datasets API server: what to inject, and into which request.

:class:`Faults` holds the settings; :class:`FaultInjector` draws, with a seeded random
generator so tests are repeatable, which request gets which fault, and counts requests,
faults and client connections. The aiohttp side is in :mod:`mpconnect.emulator.middleware`.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Faults:
    """Faults to inject; all off by default. Rates are probabilities per request.

    :param fail_rate: answer 500 without doing anything (1.0: a fault that never clears).
    :param throttle_rate: answer 429 with ``Retry-After``, at random.
    :param rate_limit: answer 429 with ``Retry-After`` past this many requests per second
        (0: no limit).
    :param retry_after: the ``Retry-After`` seconds to send (default: until the next
        one-second window of the rate limit, at least 1).
    :param latency_ms: delay every answer by this many milliseconds.
    :param drop_rate: close the connection without a response, before doing anything.
    :param lost_ack_rate: do the work, then close the connection without a response
        (the acknowledgement is lost; a client re-sends what was already stored).
    :param paths: inject only into requests whose path starts with one of these
        (empty: every request).
    """

    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    rate_limit: int = 0
    retry_after: float | None = None
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    lost_ack_rate: float = 0.0
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(self.paths))
        for name in ("fail_rate", "throttle_rate", "drop_rate", "lost_ack_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in ("rate_limit", "latency_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")


@dataclass
class FaultDecision:
    """The faults one request gets: at most one of drop, throttle, fail and lost_ack.

    :param throttle: seconds of ``Retry-After`` for a 429, or None.
    :param latency: seconds to wait before answering.
    """

    drop: bool = False
    throttle: float | None = None
    fail: bool = False
    lost_ack: bool = False
    latency: float = 0.0


class FaultInjector:
    """Decides, with a seeded random generator, which requests get which fault.

    Also counts requests received (``"METHOD /path"``) and faults injected, by kind.
    Thread-safe: tests change faults and read counters while the server runs.
    """

    def __init__(self, faults: Faults | None = None, seed: int = 0) -> None:
        self._faults = faults or Faults()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()
        self._peers: set[Any] = set()
        self._window = 0
        self._window_count = 0

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self._faults

    def set(self, **changes: Any) -> Faults:
        """Change some fault settings (names as in :class:`Faults`); returns the new ones."""
        with self._lock:
            self._faults = replace(self._faults, **changes)
            return self._faults

    def reset(self) -> None:
        """Turn every fault off."""
        with self._lock:
            self._faults = Faults()

    def decide(self, method: str, path: str, peer: Any = None) -> FaultDecision:
        """Count a request (and the client connection ``peer``) and decide its fault."""
        with self._lock:
            self._requests[f"{method} {path}"] += 1
            self._peers.add(peer)
            faults = self._faults
            draws = [self._random.random() for _ in range(4)]
            if faults.paths and not path.startswith(faults.paths):
                return FaultDecision()
            decision = FaultDecision(latency=faults.latency_ms / 1000)
            if draws[0] < faults.drop_rate:
                decision.drop = True
            elif (throttle := self._throttle(faults, draws[1])) is not None:
                decision.throttle = throttle
            elif draws[2] < faults.fail_rate:
                decision.fail = True
            elif draws[3] < faults.lost_ack_rate:
                decision.lost_ack = True
            for kind, hit in (
                ("latency", decision.latency > 0),
                ("drop", decision.drop),
                ("429", decision.throttle is not None),
                ("5xx", decision.fail),
                ("lost_ack", decision.lost_ack),
            ):
                if hit:
                    self._injected[kind] += 1
            return decision

    def _throttle(self, faults: Faults, draw: float) -> float | None:
        """Seconds to ask the client to wait, or None to let the request through."""
        if faults.rate_limit:
            now = time.monotonic()
            window = math.floor(now)
            if window != self._window:
                self._window, self._window_count = window, 0
            self._window_count += 1
            if self._window_count > faults.rate_limit:
                if faults.retry_after is not None:
                    return faults.retry_after
                return float(max(1, math.ceil(window + 1 - now)))
        if draw < faults.throttle_rate:
            return faults.retry_after if faults.retry_after is not None else 1.0
        return None

    def request_counts(self) -> dict[str, int]:
        """Requests received so far, keyed ``"METHOD /path"``."""
        with self._lock:
            return dict(self._requests)

    def faults_injected(self) -> dict[str, int]:
        """Faults injected so far: ``latency``, ``drop``, ``429``, ``5xx``, ``lost_ack``."""
        with self._lock:
            return dict(self._injected)

    def connections(self) -> int:
        """How many client connections (address and port) sent requests."""
        with self._lock:
            return len(self._peers)

    def reset_counts(self) -> None:
        """Zero the request, fault and connection counters."""
        with self._lock:
            self._requests.clear()
            self._injected.clear()
            self._peers.clear()
