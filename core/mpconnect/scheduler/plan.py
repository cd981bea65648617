"""A configuration checked for scheduling: each scheduled source's cron, in the time zone."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from mpconnect.config import Config, connector_settings
from mpconnect.engine.lifecycle import check_sink
from mpconnect.errors import ConfigError, MpconnectError
from mpconnect.plugins import Plugins
from mpconnect.scheduler.cron import CronSchedule, load_zone


@dataclass(frozen=True)
class Plan:
    """What the scheduler runs: the configuration and its scheduled sources' crons."""

    config: Config
    zone: ZoneInfo
    crons: dict[str, CronSchedule]


def make_plan(config: Config, plugins: Plugins | None = None) -> Plan:
    """Check ``config`` for scheduling and return its plan.

    Checks the time zone, every ``schedule`` and, when ``plugins`` is given, that each
    scheduled source's connector is installed and its settings are valid, and that the
    ``[mixpanel]`` table is one a run accepts.

    :raises MpconnectError: naming the file and the key (the first problem found).
    """
    where = config.path or "<built-in>"
    try:
        zone = load_zone(config.scheduler.timezone)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    crons: dict[str, CronSchedule] = {}
    for name, source in sorted(config.sources.items()):
        if source.schedule is None:
            continue
        try:
            crons[name] = CronSchedule(source.schedule, zone, f"sources.{name}.schedule")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if plugins is not None:
            try:
                entry = plugins.connector(source.connector)
            except MpconnectError as exc:
                raise type(exc)(f"{where}: sources.{name}.connector: {exc}") from None
            connector_settings(config, source, entry.cls.Settings)
    if plugins is not None and crons:
        check_sink(config, plugins)
    return Plan(config=config, zone=zone, crons=crons)
