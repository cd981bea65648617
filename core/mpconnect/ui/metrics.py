"""``/metrics``: Prometheus metrics computed from the status source at each scrape.

The runs' totals cost one grouped query of the ledger and a few indexed ones per source,
never a read of every run, and are reused for :data:`TOTALS_TTL` seconds; the sources'
freshness, the rate-limit buckets and the scheduler's heartbeat are read at each scrape."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from mpconnect.ui.ratelimit_metrics import rate_limit_families
from mpconnect.ui.status import StatusSource

#: Seconds ``/metrics`` reuses the runs' totals for (less than a usual scrape interval).
TOTALS_TTL = 5.0


class StatusCollector:
    """A prometheus-client collector over a :class:`StatusSource`.

    :param heartbeat_age: seconds since the scheduler loop last went round (None: no
        scheduler serves these metrics).
    :param totals_ttl: seconds the runs' totals are reused for (several Prometheus
        servers scraping at once cost one read of the ledger).
    :param clock: a monotonic clock.
    """

    def __init__(
        self,
        status: StatusSource,
        heartbeat_age: Callable[[], float | None] = lambda: None,
        totals_ttl: float = TOTALS_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.status = status
        self.heartbeat_age = heartbeat_age
        self.totals_ttl = totals_ttl
        self._clock = clock
        self._totals: tuple[float, dict[str, Any]] | None = None
        self._guard = threading.Lock()

    def totals(self) -> dict[str, Any]:
        """The runs' totals, read again when older than ``totals_ttl``."""
        with self._guard:
            now = self._clock()
            if self._totals is None or now - self._totals[0] >= self.totals_ttl:
                self._totals = (now, self.status.run_totals())
            return self._totals[1]

    def describe(self) -> list[Any]:
        """Nothing up front: the families depend on the sources (no check at registry)."""
        return []

    def collect(self) -> Iterator[Any]:
        """Yield every metric family."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        totals = self.totals()
        counts = {
            name: CounterMetricFamily(
                f"mpconnect_records_{name}",
                f"Records {name} by the runs of each source",
                labels=["source"],
            )
            for name in ("read", "imported", "quarantined")
        }
        retries = CounterMetricFamily(
            "mpconnect_retries",
            "Retried calls to the sink (429, 5xx, timeouts) by the runs of each source",
            labels=["source"],
        )
        throttled = CounterMetricFamily(
            "mpconnect_throttled_requests",
            "Requests the sink answered 429 (rate limited) in the runs of each source",
            labels=["source"],
        )
        uploaded = CounterMetricFamily(
            "mpconnect_upload_bytes",
            "Bytes of record JSON in the batches the sink accepted, by the runs of each source",
            labels=["source"],
        )
        outcomes = CounterMetricFamily(
            "mpconnect_runs", "Runs of each source by status", labels=["source", "status"]
        )
        duration = GaugeMetricFamily(
            "mpconnect_last_run_duration_seconds",
            "Duration of each source's latest finished run",
            labels=["source"],
        )
        success = GaugeMetricFamily(
            "mpconnect_last_success_timestamp_seconds",
            "When each source's latest successful run ended",
            labels=["source"],
        )
        sums = totals["sums"]
        statuses = totals["statuses"]
        last_duration = totals["last_duration"]
        last_success = totals["last_success"]
        for source, values in sorted(sums.items()):
            for name, family in counts.items():
                family.add_metric([source], values[name])
            retries.add_metric([source], values["retries"])
            throttled.add_metric([source], values["throttled"])
            uploaded.add_metric([source], values["uploaded_bytes"])
        for (source, status), count in sorted(statuses.items()):
            outcomes.add_metric([source, status], count)
        for source, seconds in sorted(last_duration.items()):
            duration.add_metric([source], seconds)
        for source, moment in sorted(last_success.items()):
            success.add_metric([source], moment)
        yield from counts.values()
        yield from (retries, throttled, uploaded, outcomes, duration, success)
        yield from self._sources()
        yield from rate_limit_families(self.status.rate_limits())
        age = self.heartbeat_age()
        if age is not None:
            beat = GaugeMetricFamily(
                "mpconnect_scheduler_heartbeat_age_seconds",
                "Seconds since the scheduler loop last went round",
            )
            beat.add_metric([], age)
            yield beat

    def _sources(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        stale = GaugeMetricFamily(
            "mpconnect_source_stale",
            "1 when a scheduled source has not succeeded within twice its schedule's period",
            labels=["source"],
        )
        period = GaugeMetricFamily(
            "mpconnect_source_schedule_period_seconds",
            "Seconds between two scheduled runs of each source",
            labels=["source"],
        )
        for source in self.status.sources():
            if source["period"] is None:
                continue
            stale.add_metric([source["name"]], 1.0 if source["freshness"] == "stale" else 0.0)
            period.add_metric([source["name"]], source["period"])
        yield stale
        yield period


def render_metrics(collector: StatusCollector) -> tuple[bytes, str]:
    """Return the exposition text and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
