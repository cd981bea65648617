"""The sink interface, as sink plugins import it: :mod:`mpconnect.sink` (the plugin
contract at the bottom of the package) under the name docs/plugins.md gives."""

from mpconnect.sink import ZERO_TIME, ImportResult, RecordKind, Sink, SinkSettings, VersionInfo

__all__ = ["ZERO_TIME", "ImportResult", "RecordKind", "Sink", "SinkSettings", "VersionInfo"]
