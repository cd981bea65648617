"""Sinks: where the engine loads dataset versions (embedded store, Datasets API, ...)."""

from mpconnect.sinks.base import ImportResult, RecordKind, Sink, SinkSettings, VersionInfo

__all__ = ["ImportResult", "RecordKind", "Sink", "SinkSettings", "VersionInfo"]
