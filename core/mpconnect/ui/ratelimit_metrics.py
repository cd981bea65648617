"""The shared rate-limit buckets as Prometheus metric families.

Each bucket is labelled by its ``key`` (its kind and a hash of the token or API key it
limits, such as ``mixpanel-3f2a…``: never the secret) and its ``kind``; per-dimension
families add ``dimension`` (``events``, ``bytes``, ``requests``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def rate_limit_families(levels: list[dict[str, Any]]) -> Iterator[Any]:
    """Yield the families of the buckets' ``levels`` (see
    :func:`mpconnect.transport.bucket_levels.level`); nothing when there are none."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    levels = [item for item in levels if "key" in item]
    if not levels:
        return
    per_bucket = ["key", "kind"]
    per_dimension = ["key", "kind", "dimension"]
    rate = GaugeMetricFamily(
        "mpconnect_rate_limit_rate",
        "The rate each shared bucket allows now, per second (its ceiling times its factor)",
        labels=per_dimension,
    )
    ceiling = GaugeMetricFamily(
        "mpconnect_rate_limit_ceiling",
        "The configured ceiling of each shared bucket, per second",
        labels=per_dimension,
    )
    tokens = GaugeMetricFamily(
        "mpconnect_rate_limit_tokens",
        "What each shared bucket holds now (negative: reserved ahead, requests wait)",
        labels=per_dimension,
    )
    taken = CounterMetricFamily(
        "mpconnect_rate_limit_taken",
        "All that requests reserved from each shared bucket (resets when a bucket expires)",
        labels=per_dimension,
    )
    factor = GaugeMetricFamily(
        "mpconnect_rate_limit_factor_ratio",
        "The share of its ceiling each shared bucket allows now (below 1 after a 429)",
        labels=per_bucket,
    )
    learned = GaugeMetricFamily(
        "mpconnect_rate_limit_learned_ceiling_ratio",
        "The share of its ceiling each shared bucket recovers to after a 429",
        labels=per_bucket,
    )
    throttled = CounterMetricFamily(
        "mpconnect_rate_limit_throttled",
        "Responses 429 the runs sharing each bucket met",
        labels=per_bucket,
    )
    paused = GaugeMetricFamily(
        "mpconnect_rate_limit_paused_seconds",
        "Seconds each shared bucket still waits for a server's Retry-After",
        labels=per_bucket,
    )
    for item in sorted(levels, key=lambda level: str(level["key"])):
        labels = [str(item["key"]), str(item["kind"])]
        factor.add_metric(labels, item["factor"])
        learned.add_metric(labels, item["learned_ceiling"])
        throttled.add_metric(labels, item["throttled"])
        paused.add_metric(labels, item["paused_for"])
        for dimension in item["dimensions"]:
            named = [*labels, str(dimension["dimension"])]
            rate.add_metric(named, dimension["rate"])
            ceiling.add_metric(named, dimension["ceiling"])
            taken.add_metric(named, dimension["taken"])
            if dimension["tokens"] is not None:
                tokens.add_metric(named, dimension["tokens"])
    yield from (rate, ceiling, tokens, taken, factor, learned, throttled, paused)
