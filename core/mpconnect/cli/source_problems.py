"""What ``mpconnect check`` would refuse in a source, found without contacting it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mpconnect.errors import MpconnectError

if TYPE_CHECKING:
    from mpconnect.config import Config
    from mpconnect.plugins import Plugins


def source_problems(config: Config, plugins: Plugins, name: str) -> list[str]:
    """The configuration problems of source ``name``: an unknown or unavailable connector,
    unset variables, a secret written in clear, settings the connector refuses.

    The schedule is checked by the caller, which shows the next run. Each problem is the
    one-line error ``mpconnect run`` would print.
    """
    from mpconnect.config import connector_settings, require_connector

    source = config.source(name)
    try:
        require_connector(config, source, plugins.connectors)
        entry = plugins.connector(source.connector)
        connector_settings(config, source, entry.cls.Settings)
    except MpconnectError as exc:
        return [str(exc)]
    return []
