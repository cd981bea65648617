"""A scheduled source's place in the scheduler: its cron, next time and retry state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mpconnect.scheduler.cron import CronSchedule


@dataclass
class Slot:
    """A scheduled source: its cron, next scheduled time and retry state."""

    cron: CronSchedule
    next_due: datetime
    retry_at: datetime | None = None
    failures: int = 0
