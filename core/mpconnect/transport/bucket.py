"""A token bucket shared by every run (and process) that spends one rate limit.

Mixpanel limits what one *project* may import per minute; Stripe limits the requests of
one *account* per second. Runs of several sources, partitions and processes that load the
same project (or read the same account) at once must share one budget, or each would
take the whole of it. :class:`SharedBucket` is that budget:

- it measures one or more dimensions at once (Mixpanel: events/s and bytes/s; Stripe:
  requests/s), each with its rate and a burst of ``burst`` seconds' worth;
- :meth:`SharedBucket.take` reserves what one request will spend and says how long to wait
  before sending it (reservations may run into debt, so a batch larger than the burst
  waits its turn instead of starving);
- :meth:`SharedBucket.throttled` is told of each 429: the rate is cut multiplicatively
  (once per ``cooldown``, however many concurrent requests were refused together), the
  ``Retry-After`` is honoured by everyone, and the rate then recovers additively, a share
  of the ceiling per second (AIMD). It recovers up to a learned ceiling, 70 % of the rate
  that was refused, which itself creeps back to the configured ceiling over minutes: told a
  limit above the project's real one, the runs stop meeting 429s after a few cuts.

The state lives in a backend keyed by a hash (never a token or key in clear):
:class:`FileBackend`, a small JSON file per key under ``$MPCONNECT_HOME/rate-limits``
locked with ``fcntl`` (every process on one machine), or
:class:`~mpconnect.transport.bucket_redis.RedisBackend` (every machine using one Redis).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

T = TypeVar("T")

#: The share of the rate kept after a 429.
DECREASE = 0.5
#: The share of the ceiling recovered per second after a cut.
RECOVERY_PER_SECOND = 0.02
#: The lowest share of the ceiling a run of 429s can cut the rate to.
MIN_FACTOR = 0.05
#: Seconds after a cut during which further 429s do not cut again (they were sent at the
#: old rate).
COOLDOWN = 2.0
#: After a 429, the rate recovers only up to this share of the rate that was refused (the
#: learned ceiling), so a configured limit above the project's real one stops causing
#: 429s after a few cuts.
CEILING_DECREASE = 0.7
#: The share of the configured ceiling the learned ceiling regains per second (it probes
#: upwards slowly: from half to all of it in about eight minutes).
CEILING_RECOVERY = 0.001


def bucket_key(kind: str, secret: str) -> str:
    """The key of the bucket of ``secret`` (a project token, an API key): ``kind`` and a
    hash of it, so the secret itself is never written anywhere."""
    digest = hashlib.sha256(f"mpconnect-bucket:{kind}:{secret}".encode()).hexdigest()[:24]
    return f"{kind}-{digest}"


class Backend(Protocol):
    """Where a bucket's state lives: an atomic read-modify-write of a JSON object."""

    def update(self, key: str, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the state of ``key`` (``{}`` at first) atomically; return
        what it returned."""
        ...  # pragma: no cover


class FileBackend:
    """Bucket state in ``DIRECTORY/KEY.json``, one ``fcntl`` lock per change: shared by
    every thread and process of this machine that uses the same directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"FileBackend({str(self.directory)!r})"

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[int]:
        with self._guard:
            thread_lock = self._locks.setdefault(key, threading.Lock())
        with thread_lock:  # flock is per open file: threads of one process queue here
            fd = os.open(self.directory / f"{key}.json", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield fd
            finally:
                os.close(fd)  # closing releases the lock

    def update(self, key: str, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the state of ``key`` under an exclusive lock."""
        with self._locked(key) as fd:
            raw = b""
            while chunk := os.read(fd, 65536):
                raw += chunk
            try:
                state = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                state = {}  # a torn or foreign file: start afresh rather than fail a run
            if not isinstance(state, dict):
                state = {}
            result = change(state)
            data = orjson.dumps(state)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, data)
            return result


class SharedBucket:
    """A token bucket over one or more dimensions, shared through ``backend``.

    :param key: the bucket's name in the backend (see :func:`bucket_key`).
    :param rates: the ceiling of each dimension, per second (such as events/s and
        bytes/s).
    :param backend: where the state is kept (:class:`FileBackend`, a Redis backend).
    :param burst: seconds' worth of each rate that may go at once after a quiet spell.
    :param decrease: the share of the rate kept after a 429.
    :param recovery: the share of the ceiling recovered per second after a cut.
    :param clock: the time in seconds (shared by every process: wall-clock time).
    """

    def __init__(
        self,
        key: str,
        rates: Sequence[float],
        backend: Backend,
        *,
        burst: float = 1.0,
        decrease: float = DECREASE,
        recovery: float = RECOVERY_PER_SECOND,
        cooldown: float = COOLDOWN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not rates or any(rate <= 0 for rate in rates):
            raise ValueError("every rate of a bucket must be above 0")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        self.key = key
        self.rates = [float(rate) for rate in rates]
        self.backend = backend
        self.burst = burst
        self.decrease = decrease
        self.recovery = recovery
        self.cooldown = cooldown
        self.clock = clock

    def __repr__(self) -> str:
        return f"<SharedBucket {self.key} rates={self.rates}>"

    def _refill(self, state: dict[str, Any], now: float) -> list[float]:
        """Bring ``state`` up to ``now``: recover the rate, add the tokens earned."""
        caps = [rate * self.burst for rate in self.rates]
        tokens = state.get("tokens")
        if not isinstance(tokens, list) or len(tokens) != len(self.rates):
            tokens = list(caps)
            state["at"] = now
        elapsed = max(0.0, now - float(state.get("at", now)))
        ceiling = min(1.0, float(state.get("ceiling", 1.0)) + elapsed * CEILING_RECOVERY)
        factor = min(ceiling, float(state.get("factor", 1.0)) + elapsed * self.recovery)
        tokens = [
            min(cap, float(have) + elapsed * rate * factor)
            for have, rate, cap in zip(tokens, self.rates, caps, strict=True)
        ]
        at = max(now, float(state.get("at", now)))
        # The rates and burst are kept beside the state so the status page can tell the
        # bucket's level without the secret that names it.
        state.update(
            tokens=tokens,
            at=at,
            factor=factor,
            ceiling=ceiling,
            rates=self.rates,
            burst=self.burst,
            recovery=self.recovery,
        )
        return tokens

    def take(self, *amounts: float) -> float:
        """Reserve ``amounts`` (one per dimension, such as events and bytes) and return how
        many seconds to wait before sending what they measure."""
        if len(amounts) != len(self.rates):
            raise ValueError(f"take() needs {len(self.rates)} amounts, got {len(amounts)}")

        def reserve(state: dict[str, Any]) -> float:
            now = self.clock()
            tokens = self._refill(state, now)
            factor = state["factor"]
            tokens = [have - amount for have, amount in zip(tokens, amounts, strict=True)]
            state["tokens"] = tokens
            taken = state.get("taken")
            if not isinstance(taken, list) or len(taken) != len(amounts):
                taken = [0.0] * len(amounts)
            state["taken"] = [t + a for t, a in zip(taken, amounts, strict=True)]
            wait = max(
                [0.0]
                + [-have / (rate * factor) for have, rate in zip(tokens, self.rates, strict=True)]
            )
            return max(wait, float(state.get("paused_until", 0.0)) - now)

        return self.backend.update(self.key, reserve)

    def throttled(self, retry_after: float | None = None) -> None:
        """Tell the bucket a request was refused with 429: cut the rate (once per
        cooldown), empty the bucket and make everyone wait ``retry_after`` seconds."""

        def cut(state: dict[str, Any]) -> None:
            now = self.clock()
            tokens = self._refill(state, now)
            state["tokens"] = [min(0.0, have) for have in tokens]
            state["refused"] = int(state.get("refused", 0)) + 1
            if now - float(state.get("cut_at", 0.0)) >= self.cooldown:
                state["ceiling"] = max(MIN_FACTOR, state["factor"] * CEILING_DECREASE)
                state["factor"] = max(MIN_FACTOR, state["factor"] * self.decrease)
                state["cut_at"] = now
            if retry_after:
                until = max(float(state.get("paused_until", 0.0)), now + retry_after)
                state["paused_until"] = until

        self.backend.update(self.key, cut)

    def snapshot(self) -> dict[str, Any]:
        """The state now: ``factor`` (the share of the ceiling in use), ``ceiling`` (the
        most it recovers to), ``tokens``, ``taken`` (all reserved so far, per dimension)
        and ``refused`` (429s reported)."""

        def read(state: dict[str, Any]) -> dict[str, Any]:
            self._refill(state, self.clock())
            return dict(state)

        return self.backend.update(self.key, read)

    def current_rates(self) -> list[float]:
        """The rate of each dimension now (the ceilings times the recovering factor)."""
        factor = float(self.snapshot()["factor"])
        return [rate * factor for rate in self.rates]


def local_backend(home: Path) -> FileBackend:
    """The backend every run on this machine shares: ``HOME/rate-limits``."""
    return FileBackend(Path(home) / "rate-limits")


def shared_bucket(
    kind: str,
    secret: str,
    rates: Sequence[float],
    *,
    redis_url: str | None = None,
    home: Path | None = None,
    burst: float = 1.0,
) -> SharedBucket:
    """The bucket of ``secret`` (a project token, an API key) for ``kind`` (``"mixpanel"``,
    ``"stripe"``), shared through Redis when ``redis_url`` is given, else by every
    process on this machine (under ``$MPCONNECT_HOME``, or ``home``).

    :param rates: the ceiling of each dimension, per second.
    """
    backend: Backend
    if redis_url:
        from mpconnect.transport.bucket_redis import RedisBackend

        backend = RedisBackend(redis_url)
    else:
        if home is None:
            from mpconnect.paths import home_dir

            home = home_dir()
        backend = local_backend(home)
    return SharedBucket(bucket_key(kind, secret), rates, backend, burst=burst)
