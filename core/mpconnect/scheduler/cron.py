"""Cron expressions of ``[sources.NAME] schedule``, read with croniter in a time zone.

Accepted forms:

- five fields, standard cron: ``minute hour day-of-month month day-of-week``
  (``"0 2 * * *"`` is 02:00 every day);
- six fields, a **seconds field first**: ``second minute hour day month weekday``
  (``"*/30 * * * * *"`` is every 30 seconds), as Quartz, Spring and node-cron write it;
- the aliases ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``,
  ``@midnight`` and ``@hourly``.

Times are computed in ``[scheduler] timezone`` (an IANA name, UTC by default), so
``"0 2 * * *"`` with ``timezone = "Europe/Paris"`` is 02:00 Paris time, summer and winter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mpconnect.errors import ConfigError, MpconnectError

ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_TINY = timedelta(microseconds=1)


def require_croniter() -> Any:
    """Return the ``croniter`` class, or raise a clear error naming the extra to install."""
    try:
        from croniter import croniter
    except ImportError:
        raise MpconnectError(
            'scheduling needs the croniter package: pip install "mpconnect[schedule]"'
        ) from None
    return croniter


def load_zone(name: str, where: str = "scheduler.timezone") -> ZoneInfo:
    """Return the time zone ``name`` or raise ConfigError naming the key ``where``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}: unknown time zone {name!r}; use an IANA name such as "
            '"UTC", "Europe/Paris" or "America/New_York"'
        ) from None


class CronSchedule:
    """One validated cron expression in one time zone.

    :param expression: the cron text (5 fields, 6 with seconds first, or an alias).
    :param zone: the time zone its fields are read in.
    :param where: the configuration key, for error messages (``sources.NAME.schedule``).
    :raises ConfigError: when the expression is not valid, naming ``where``.
    """

    def __init__(self, expression: str, zone: ZoneInfo, where: str = "schedule") -> None:
        croniter = require_croniter()
        text = " ".join(expression.split())
        fields = text.split(" ") if text else []
        if len(fields) == 1 and fields[0].lower() in ALIASES:
            self.has_seconds = False
        elif len(fields) in (5, 6):
            self.has_seconds = len(fields) == 6
        else:
            raise ConfigError(
                f"{where}: {expression!r} is not a cron expression: write 5 fields "
                '(minute hour day month weekday, such as "0 2 * * *"), 6 with a seconds '
                'field first (such as "*/30 * * * * *"), or one of ' + ", ".join(ALIASES)
            )
        self.expression = text
        self.zone = zone
        self._croniter = croniter
        try:
            self._iter(datetime.now(zone)).get_next(datetime)
        except (ValueError, KeyError) as exc:  # croniter's errors derive from ValueError
            raise ConfigError(
                f"{where}: {expression!r} is not a valid cron expression: {exc}"
            ) from None

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.zone.key!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CronSchedule)
            and other.expression == self.expression
            and other.zone.key == self.zone.key
        )

    def __hash__(self) -> int:
        return hash((self.expression, self.zone.key))

    def _iter(self, start: datetime) -> Any:
        return self._croniter(
            self.expression, start.astimezone(self.zone), second_at_beginning=self.has_seconds
        )

    def next_after(self, moment: datetime) -> datetime:
        """Return the first scheduled time strictly after ``moment`` (aware, in the zone).

        When clocks go back, a wall time comes twice; a time that repeats the wall time of
        ``moment`` is skipped, so a daily 02:30 runs once that night, as cron does.
        """
        times = self._iter(moment)
        candidate = times.get_next(datetime)
        wall = moment.astimezone(self.zone).replace(tzinfo=None)
        if candidate.astimezone(self.zone).replace(tzinfo=None) == wall:
            candidate = times.get_next(datetime)
        return candidate

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """Return the last scheduled time at or before ``moment`` (aware, in the zone)."""
        return self._iter(moment + _TINY).get_prev(datetime)


def format_time(moment: datetime, zone: ZoneInfo) -> str:
    """Show ``moment`` in ``zone`` as ``2024-05-01 02:00:00 CEST``."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
