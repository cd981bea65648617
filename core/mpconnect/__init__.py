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
    SourcePaused,
)
from mpconnect.records import Event, Profile, make_insert_id, to_epoch_seconds

if TYPE_CHECKING:
    from mpconnect.connector import Connector, ConnectorSettings, Partition, RunContext
    from mpconnect.emulator.background import HEADER_TIMEOUT, BackgroundServer, LocalCA
    from mpconnect.served import LocalServer, ServedSource, ServeOptions
    from mpconnect.transport.bucket import SharedBucket, shared_bucket
    from mpconnect.transport.http import JsonHttpClient, SourceHttpError
    from mpconnect.transport.retry import (
        RateLimiter,
        SharedUnreachableRetries,
        attempts_of,
        call_with_retries,
        log_retry,
        mark_unreachable,
        parse_retry_after,
        retry_budget,
        unreachable_message,
        unreachable_reason,
        why_unreachable,
    )

hookimpl = pluggy.HookimplMarker("mpconnect")

#: Public names imported on first use (``mpconnect --help`` loads none of them), by module.
_LAZY = {
    "mpconnect.connector": ("Connector", "ConnectorSettings", "Partition", "RunContext"),
    "mpconnect.transport.http": ("JsonHttpClient", "SourceHttpError"),
    "mpconnect.transport.bucket": ("SharedBucket", "shared_bucket"),
    "mpconnect.transport.retry": (
        "RateLimiter",
        "SharedUnreachableRetries",
        "attempts_of",
        "call_with_retries",
        "log_retry",
        "mark_unreachable",
        "parse_retry_after",
        "retry_budget",
        "unreachable_message",
        "unreachable_reason",
        "why_unreachable",
    ),
    "mpconnect.emulator.background": ("HEADER_TIMEOUT", "BackgroundServer", "LocalCA"),
    "mpconnect.served": ("LocalServer", "ServedSource", "ServeOptions"),
}
_LAZY_MODULE = {name: module for module, names in _LAZY.items() for name in names}

try:
    __version__ = version("mpconnect")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "HEADER_TIMEOUT",
    "ApiError",
    "BackgroundServer",
    "ConfigError",
    "Connector",
    "ConnectorRef",
    "ConnectorSettings",
    "ConnectorUnavailable",
    "Event",
    "JsonHttpClient",
    "LocalCA",
    "LocalServer",
    "MpconnectError",
    "Partition",
    "PluginError",
    "Profile",
    "RateLimiter",
    "RecordError",
    "RetryableApiError",
    "RunContext",
    "RunFailed",
    "RunLocked",
    "ServeOptions",
    "ServedSource",
    "SharedBucket",
    "SharedUnreachableRetries",
    "SinkError",
    "SourceError",
    "SourceHttpError",
    "SourcePaused",
    "__version__",
    "attempts_of",
    "call_with_retries",
    "hookimpl",
    "log_retry",
    "make_insert_id",
    "mark_unreachable",
    "parse_retry_after",
    "retry_budget",
    "shared_bucket",
    "to_epoch_seconds",
    "unreachable_message",
    "unreachable_reason",
    "why_unreachable",
]


def __getattr__(name: str) -> Any:
    """The connector contract, the HTTP helpers and the local-server kit, imported on first
    use: they need pydantic, requests or aiohttp, which commands such as
    ``mpconnect --help`` and ``mpconnect runs`` do without."""
    module = _LAZY_MODULE.get(name)
    if module is not None:
        from importlib import import_module

        return getattr(import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
