"""The Mixpanel project's import budget, shared by every run that loads the project.

Mixpanel limits what one project may import (2 GB of uncompressed JSON a minute, about
30,000 events a second, on a rolling minute) and answers 429 past it. Each run's upload
workers take from one :class:`~mpconnect.transport.bucket.SharedBucket` per project,
keyed by a hash of the project token, before each batch: its events and its bytes of
JSON. Every run of every source on this machine (or, with ``[engine]
rate_limit_redis_url``, on every machine using that Redis) shares it, so together they
stay at ``project_rate_share`` (90 % by default) of the limit. A 429 halves the rate for
all of them; it then recovers additively.
"""

from __future__ import annotations

from pathlib import Path

from mpconnect.config import EngineConfig
from mpconnect.sink import Sink
from mpconnect.transport.bucket import SharedBucket, shared_bucket

#: Seconds' worth of the rate that may go at once after a quiet spell.
BURST_SECONDS = 1.0


def project_bucket(
    settings: EngineConfig, sink: Sink, token: str | None, home: Path
) -> SharedBucket | None:
    """The shared budget of the project ``token`` names, or None when the sink's imports
    do not count against a Mixpanel project's rate limit (the embedded store), or the
    configuration turned the budget off (``project_rate_limit = false``)."""
    if not (settings.project_rate_limit and sink.project_rate_limited and token):
        return None
    share = settings.project_rate_share
    return shared_bucket(
        "mixpanel",
        token,
        [
            settings.project_events_per_minute * share / 60.0,
            settings.project_bytes_per_minute * share / 60.0,
        ],
        redis_url=settings.rate_limit_redis_url,
        home=home,
        burst=BURST_SECONDS,
    )
