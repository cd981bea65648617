"""Registers mpconnect's built-in sinks, through the same hook third-party sinks use."""

from __future__ import annotations

from collections.abc import Callable

import mpconnect
from mpconnect.sinks.base import Sink
from mpconnect.sinks.datasets import DatasetsSink
from mpconnect.sinks.embedded import EmbeddedSink
from mpconnect.sinks.ingestion import IngestionSink


@mpconnect.hookimpl
def register_sinks(register: Callable[[type[Sink]], None]) -> None:
    """Register the built-in sinks: embedded, datasets (and ingestion, when present)."""
    register(EmbeddedSink)
    register(DatasetsSink)
    register(IngestionSink)
