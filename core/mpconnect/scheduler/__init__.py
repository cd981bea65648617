"""Scheduling: run each configured source on its cron ``schedule`` (``mpconnect schedule``)."""

from mpconnect.scheduler.clock import Clock, SystemClock
from mpconnect.scheduler.core import Scheduler
from mpconnect.scheduler.cron import CronSchedule, format_time, load_zone
from mpconnect.scheduler.crontab import crontab_lines
from mpconnect.scheduler.plan import Plan, make_plan

__all__ = [
    "Clock",
    "CronSchedule",
    "Plan",
    "Scheduler",
    "SystemClock",
    "crontab_lines",
    "format_time",
    "load_zone",
    "make_plan",
]
