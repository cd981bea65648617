"""The ``ingestion`` sink: the engine's :class:`Sink` over Mixpanel's ingestion API.

For Mixpanel projects without the Datasets beta: the same run (extract, spool, upload with
retries, ledger, resume, summary) without versions: nothing to create or publish. A re-run
re-sends the snapshot; the deterministic ``$insert_id`` makes Mixpanel keep each event once.
The HTTP side (settings, credentials, ``/import`` and ``/engage``) is
:class:`mpconnect.mixpanel.ingestion.IngestionClient`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mpconnect.mixpanel.ingestion import (
    MAX_BYTES,
    MAX_RECORDS,
    IngestionClient,
    IngestionSettings,
)
from mpconnect.records import FUTURE_LEEWAY
from mpconnect.sink import ImportResult, RecordKind, Sink, VersionInfo

__all__ = ["IngestionSink"]


class IngestionSink(Sink):
    """Sends batches to Mixpanel's ingestion API; thread-safe (a session per thread)."""

    name = "ingestion"
    #: Mixpanel's /import documents distinct_id "" for an event tied to no user.
    accepts_unattributed_events = True
    versioned = False
    max_batch_records = MAX_RECORDS
    project_rate_limited = True
    max_batch_bytes = MAX_BYTES
    future_leeway = FUTURE_LEEWAY
    dedup_full_key = True
    extra_settings = frozenset(IngestionSettings.model_fields)

    def __init__(self, settings: Any, home: Path) -> None:
        super().__init__(settings, home)
        self.client = IngestionClient(settings)

    @property
    def options(self) -> IngestionSettings:
        """The ingestion-only ``[mixpanel]`` keys, validated."""
        return self.client.options

    @property
    def base_url(self) -> str:
        """The API's address (a region's, or ``mixpanel.api_url``)."""
        return self.client.base_url

    @property
    def url_key(self) -> str:
        """The key that sets the address, named when the server cannot be reached."""
        return self.client.url_key

    def describe(self) -> str:
        """Name the API and how it is authenticated (no secrets)."""
        return self.client.describe()

    def import_batch(
        self, kind: RecordKind, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        """Send one batch: events to ``/import``, people records to ``/engage``."""
        return self.client.send(kind, payload, count)

    def create_version(self, dataset_id: str) -> VersionInfo:
        """Nothing to create: the ingestion API has no versions."""
        return VersionInfo(version_id="ingestion", created_at="", writable=True)

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        """No versions: the ingestion API has none."""
        return []

    def publish(self, dataset_id: str, version_id: str) -> None:
        """Nothing to publish: imported records are live once Mixpanel ingests them."""

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Nothing to delete: the ingestion API has no versions."""

    def close(self) -> None:
        """Close every thread's HTTP session."""
        self.client.close()
