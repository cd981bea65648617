"""mpconnect: load business data into Mixpanel dataset versions, through plugins.

The public API for plugin authors::

    import mpconnect

    class AcmeConnector(mpconnect.Connector):
        name = "acme"
        ...

    @mpconnect.hookimpl
    def register_connectors(register):
        register(AcmeConnector)
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import pluggy

from mpconnect.connector_ref import ConnectorRef
from mpconnect.errors import (
    ApiError,
    ConfigError,
    ConnectorUnavailable,
    MpconnectError,
    PluginError,
    RecordError,
    RetryableApiError,
    RunFailed,
    RunLocked,
    SinkError,
    SourceError,
)
from mpconnect.records import Event, Profile, make_insert_id, to_epoch_seconds

if TYPE_CHECKING:
    from mpconnect.connector import Connector, ConnectorSettings, RunContext

hookimpl = pluggy.HookimplMarker("mpconnect")

try:
    __version__ = version("mpconnect")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ApiError",
    "ConfigError",
    "Connector",
    "ConnectorRef",
    "ConnectorSettings",
    "ConnectorUnavailable",
    "Event",
    "MpconnectError",
    "PluginError",
    "Profile",
    "RecordError",
    "RetryableApiError",
    "RunContext",
    "RunFailed",
    "RunLocked",
    "SinkError",
    "SourceError",
    "__version__",
    "hookimpl",
    "make_insert_id",
    "to_epoch_seconds",
]


def __getattr__(name: str) -> Any:
    """The connector contract, imported on first use: it needs pydantic, which commands
    such as ``mpconnect --help`` and ``mpconnect runs`` do without."""
    if name in ("Connector", "ConnectorSettings", "RunContext"):
        from mpconnect import connector

        return getattr(connector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
