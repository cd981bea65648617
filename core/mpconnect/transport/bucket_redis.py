"""The Redis backend of :class:`~mpconnect.transport.bucket.SharedBucket`: one bucket shared
by every machine that uses one Redis (the distributed run's).

Each change is an optimistic transaction (``WATCH`` the key, read, ``MULTI``/``SET``/
``EXEC``, again if another client changed it meanwhile), so the bucket logic is the same
Python code as on one machine. Needs the ``redis`` package (``pip install redis``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from mpconnect.errors import ConfigError

T = TypeVar("T")

#: Buckets idle this long (seconds) are dropped by Redis.
EXPIRE = 3600
#: Optimistic retries before a change gives up (a sign of a broken Redis, not contention).
MAX_CONFLICTS = 1000


class RedisBackend:
    """Bucket state in Redis, under ``mpconnect:bucket:KEY``.

    :param url: the Redis URL (``redis://host:port/db``); never shown with its password.
    """

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "a shared rate limit through Redis needs the redis package: "
                "pip install redis (or mpconnect[distributed])"
            ) from None
        self._redis = redis
        self._client = redis.Redis.from_url(url)
        self._where = url.split("@")[-1]

    def __repr__(self) -> str:
        return f"RedisBackend({self._where!r})"

    def update(self, key: str, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the state of ``key`` in one optimistic transaction."""
        name = f"mpconnect:bucket:{key}"
        for _ in range(MAX_CONFLICTS):
            with self._client.pipeline() as pipe:
                try:
                    pipe.watch(name)
                    raw = pipe.get(name)
                    state = orjson.loads(raw) if raw else {}
                    if not isinstance(state, dict):
                        state = {}
                    result = change(state)
                    pipe.multi()
                    pipe.set(name, orjson.dumps(state), ex=EXPIRE)
                    pipe.execute()
                    return result
                except self._redis.WatchError:
                    continue
        raise RuntimeError(f"the rate-limit bucket {key} in Redis kept changing under us")

    def close(self) -> None:
        """Close the connections to Redis."""
        self._client.close()
