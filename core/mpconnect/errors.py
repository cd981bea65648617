"""The public exceptions of mpconnect.

Plugins raise these; the command line prints them as one clear line (a traceback only
with ``--debug`` or ``MPCONNECT_DEBUG=1``)::

    MpconnectError
    ├── ConfigError            a configuration file or setting is wrong (names file, key, fix)
    ├── PluginError            a plugin failed to load, registered nonsense, or raised
    │   └── ConnectorUnavailable   a connector's extra is not installed
    ├── RecordError            a record cannot be sent to Mixpanel (names record and field)
    ├── SourceError            a source refused or failed (bad credentials, quota, ...)
    │   └── SourcePaused       a connector stopped early on purpose; the next run goes on
    ├── SinkError              the destination refused or failed
    │   └── ApiError           an HTTP API answered with an error (status + server text)
    │       └── RetryableApiError   429, 5xx, timeouts, dropped connections
    ├── RunLocked              another run of the same source is in progress
    └── RunFailed              a run stopped; its ledger entry says why
"""

from __future__ import annotations


class MpconnectError(Exception):
    """Base class of every error mpconnect reports to its users."""


class ConfigError(MpconnectError):
    """A configuration file, key or value is wrong; the message names the key and the fix."""


class PluginError(MpconnectError):
    """A plugin failed to load, registered something invalid, or raised in a hook."""


class ConnectorUnavailable(PluginError):
    """A connector is registered but its optional dependencies are not installed."""


class RecordError(MpconnectError):
    """A record cannot be sent to Mixpanel.

    :param message: what is wrong, naming the field.
    :param field: the dotted path of the offending field, if known.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SourceError(MpconnectError):
    """A source system refused a request or failed (bad credentials, quota exhausted, ...)."""


class SinkError(MpconnectError):
    """The destination refused or failed."""


class ApiError(SinkError):
    """An HTTP API answered with an error.

    :param status: the HTTP status (0 when no response was received).
    :param message: the server's own error text, or a description of the failure.
    """

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.server_message = message
        self.retry_after = retry_after


class RetryableApiError(ApiError):
    """A failure worth retrying: 429, 5xx, a timeout or a dropped connection."""


class RunLocked(MpconnectError):
    """Another run of the same source holds its lock."""


class RunFailed(MpconnectError):
    """A run stopped before its version was published."""


class SourcePaused(SourceError):
    """A connector stops reading early on purpose, such as when the org's daily API quota
    is nearly spent: what was read up to ``ctx.state``'s cursors is kept (sent, cached,
    state stored), nothing is published, and the run ends as ``paused: REASON``; the next
    run continues from there.

    :param reason: a few words, such as ``"api quota"``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"paused: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason
