"""The sink interface the lifecycle engine writes to.

A sink speaks the Datasets API's operations: create a version, import batches of events
and people into it, publish it (make it readable), watch it become live, list and delete
versions. A sink without versions (``versioned = False``) makes the version operations
trivial and the engine skips publishing and pruning.

Sinks are called from several upload workers at once: :meth:`Sink.import_batch` must be
thread-safe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from mpconnect.sink_types import ZERO_TIME, ImportResult, RecordKind, VersionInfo

__all__ = [
    "ZERO_TIME",
    "ImportResult",
    "RecordKind",
    "Sink",
    "SinkSettings",
    "VersionInfo",
]


class SinkSettings(BaseModel):
    """The ``[mixpanel]`` table as a sink sees it; each sink validates what it needs."""

    model_config = {"extra": "allow"}


class Sink(ABC):
    """Base class of every sink. Subclasses set :attr:`name` and implement the operations.

    :param settings: the validated ``[mixpanel]`` configuration table.
    :param home: mpconnect's data directory (``$MPCONNECT_HOME``).
    """

    #: The sink's name in configuration files (``sink = "embedded"``).
    name: ClassVar[str]
    #: False for sinks without dataset versions (nothing to create, publish or prune).
    versioned: ClassVar[bool] = True
    #: The most records one import request may hold.
    max_batch_records: ClassVar[int] = 1000
    #: The most bytes of uncompressed JSON one import request may hold, if limited.
    max_batch_bytes: ClassVar[int | None] = None
    #: Seconds an event's time may be ahead of the clock, if the destination limits it
    #: (Mixpanel's ``/import``: an hour); later events are quarantined.
    future_leeway: ClassVar[int | None] = None
    #: True when the destination keeps one event per (event, time, distinct_id,
    #: ``$insert_id``) as Mixpanel's ``/import`` does; False: one per ``$insert_id``.
    dedup_full_key: ClassVar[bool] = False
    #: The ``[mixpanel]`` keys this sink reads besides the common ones (``sink``,
    #: ``project_token``, ``secret``, ``api_url``, ``ca_bundle``, ``timeout``); any other
    #: key is reported as a mistake.
    extra_settings: ClassVar[frozenset[str]] = frozenset()
    #: The token records carry when no ``project_token`` is configured; None means the
    #: sink needs a real one.
    default_token: ClassVar[str | None] = None
    #: True when the destination takes events tied to no user (``distinct_id`` ``""``,
    #: ``Event(unattributed=True)``); otherwise the engine quarantines them, saying why.
    accepts_unattributed_events: ClassVar[bool] = False
    #: True when imports count against the Mixpanel project's rate limit: every run
    #: loading the project then shares one budget (``[engine] project_events_per_minute``).
    project_rate_limited: ClassVar[bool] = False

    def __init__(self, settings: Any, home: Path) -> None:
        self.settings = settings
        self.home = home

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def describe(self) -> str:
        """One line naming where this sink writes (no secrets)."""
        return self.name

    @abstractmethod
    def create_version(self, dataset_id: str) -> VersionInfo:
        """Create a new, writable, unreadable version of ``dataset_id``."""

    @abstractmethod
    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        """Return the retained versions of ``dataset_id``, newest first."""

    def get_version(self, dataset_id: str, version_id: str) -> VersionInfo | None:
        """Return one version, or None if the service no longer has it."""
        for version in self.list_versions(dataset_id):
            if version.version_id == version_id:
                return version
        return None

    @abstractmethod
    def import_batch(
        self, kind: RecordKind, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        """Import one batch: ``payload`` is a JSON array (UTF-8) of ``count`` records.

        :raises mpconnect.errors.RetryableApiError: for failures worth retrying.
        :raises mpconnect.errors.SinkError: for failures that are not.
        """

    @abstractmethod
    def publish(self, dataset_id: str, version_id: str) -> None:
        """Mark the version readable (``{"readable": true, "writable": ...}``)."""

    @abstractmethod
    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Delete a version."""

    def close(self) -> None:
        """Release connections and files."""
