"""Is a source fresh? Its last success compared with its schedule's period."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from mpconnect.errors import MpconnectError

#: A source whose last success is older than this many schedule periods is stale.
STALE_AFTER_PERIODS = 2


def schedule_times(
    expression: str | None, zone: ZoneInfo, now: datetime
) -> tuple[datetime | None, float | None]:
    """Return (next run, period in seconds) of a cron ``expression``; (None, None) without
    a schedule, or when it cannot be read (croniter missing, an invalid expression)."""
    if not expression:
        return None, None
    from mpconnect.scheduler.cron import CronSchedule

    try:
        cron = CronSchedule(expression, zone)
    except MpconnectError:
        return None, None
    first = cron.next_after(now)
    second = cron.next_after(first)
    return first, (second - first).total_seconds()


def freshness(last_success: float | None, period: float | None, now: float) -> str:
    """``fresh``, ``stale`` (no success within twice the period, or never) or
    ``unscheduled`` (no period to judge by)."""
    if period is None:
        return "unscheduled"
    if last_success is None or now - last_success > STALE_AFTER_PERIODS * period:
        return "stale"
    return "fresh"
