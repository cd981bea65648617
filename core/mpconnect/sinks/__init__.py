"""Sinks: where the engine loads dataset versions (imported on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpconnect.sink import ImportResult, RecordKind, Sink, SinkSettings, VersionInfo

__all__ = ["ImportResult", "RecordKind", "Sink", "SinkSettings", "VersionInfo"]


def __getattr__(name: str) -> Any:
    """The sink contract from :mod:`mpconnect.sink` (it needs pydantic)."""
    if name in __all__:
        from mpconnect.sinks import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
