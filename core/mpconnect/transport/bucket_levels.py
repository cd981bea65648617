"""The level of every shared rate-limit bucket, read without changing it (for the status
page and ``/metrics``).

A bucket's state (:mod:`mpconnect.transport.bucket`) lives under a key that is a hash of
the token or API key it limits, so what this module returns names no secret. The state is
projected to now with the bucket's own arithmetic (the rate recovers, tokens refill) but
never written back: reading does not disturb the runs that spend it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Any

import orjson

from mpconnect.transport.bucket import CEILING_RECOVERY, RECOVERY_PER_SECOND

#: The dimensions each kind of bucket measures, in the order of its rates.
DIMENSIONS = {"mixpanel": ("events", "bytes"), "stripe": ("requests",)}


def level(key: str, state: dict[str, Any], now: float) -> dict[str, Any]:
    """One bucket's level at ``now``: its kind, the share of its ceiling in use
    (``factor``), the learned ceiling, and per dimension the configured ceiling, the rate
    now and the tokens available (negative: in debt); ``throttled`` counts the 429s it was
    told of. Rates are None for a bucket last written by an mpconnect that did not record
    them."""
    kind = key.split("-", 1)[0]
    at = _number(state.get("at"), now)
    elapsed = max(0.0, now - at)
    ceiling = min(1.0, _number(state.get("ceiling"), 1.0) + elapsed * CEILING_RECOVERY)
    recovery = _number(state.get("recovery"), RECOVERY_PER_SECOND)
    factor = min(ceiling, _number(state.get("factor"), 1.0) + elapsed * recovery)
    rates = _numbers(state.get("rates"))
    tokens = _numbers(state.get("tokens"))
    taken = _numbers(state.get("taken"))
    burst = _number(state.get("burst"), 1.0)
    names = DIMENSIONS.get(kind, ())
    dimensions = []
    for index, rate in enumerate(rates or []):
        have = tokens[index] if tokens and index < len(tokens) else None
        if have is not None:
            have = min(rate * burst, have + elapsed * rate * factor)
        dimensions.append(
            {
                "dimension": names[index] if index < len(names) else f"dimension{index}",
                "ceiling": rate,
                "rate": rate * factor,
                "tokens": have,
                "taken": taken[index] if taken and index < len(taken) else 0.0,
            }
        )
    return {
        "key": key,
        "kind": kind,
        "factor": factor,
        "learned_ceiling": ceiling,
        "throttled": int(_number(state.get("refused"), 0.0)),
        "paused_for": max(0.0, _number(state.get("paused_until"), 0.0) - now),
        "updated_at": at,
        "dimensions": dimensions,
    }


def file_levels(directory: Path, now: float | None = None) -> list[dict[str, Any]]:
    """The level of each bucket in ``directory`` (``$MPCONNECT_HOME/rate-limits``), by
    key; an unreadable file is left out."""
    now = time.time() if now is None else now
    result = []
    paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
    for path in paths:
        state = _read_locked(path)
        if state is not None:
            result.append(level(path.stem, state, now))
    return result


def redis_levels(url: str, now: float | None = None) -> list[dict[str, Any]]:
    """The level of each bucket in the Redis at ``url``, by key."""
    import redis

    now = time.time() if now is None else now
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    prefix = "mpconnect:bucket:"
    try:
        names = sorted(name.decode() for name in client.scan_iter(match=prefix + "*"))
        result = []
        for name in names:
            raw = client.get(name)
            state = _parsed(raw if isinstance(raw, bytes) else None)
            if state is not None:
                result.append(level(name[len(prefix) :], state, now))
        return result
    finally:
        client.close()


def _read_locked(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_SH)  # a writer truncates then writes under LOCK_EX
        raw = b""
        while chunk := os.read(fd, 65536):
            raw += chunk
        return _parsed(raw)
    finally:
        os.close(fd)


def _parsed(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        state = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return state if isinstance(state, dict) else None


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
        return None
    return [float(v) for v in value]
