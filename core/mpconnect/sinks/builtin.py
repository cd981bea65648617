"""Registers mpconnect's built-in sinks, through the same hook third-party sinks use."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import mpconnect

if TYPE_CHECKING:
    from mpconnect.sink import Sink


@mpconnect.hookimpl
def register_sinks(register: Callable[[type[Sink]], None]) -> None:
    """Register the built-in sinks: embedded, datasets (and ingestion, when present).

    Imported here, when sinks are first asked for, so commands without a sink start fast.
    """
    from mpconnect.sinks.datasets import DatasetsSink
    from mpconnect.sinks.embedded import EmbeddedSink
    from mpconnect.sinks.ingestion import IngestionSink

    register(EmbeddedSink)
    register(DatasetsSink)
    register(IngestionSink)
