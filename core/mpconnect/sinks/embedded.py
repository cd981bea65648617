"""The ``embedded`` sink: the dataset lifecycle in a local SQLite store.

The default when no Mixpanel credentials are configured, so the main job runs on a fresh
machine; ``mpconnect inspect`` shows what was loaded. ``[mixpanel] store = PATH``
chooses the file (default ``$MPCONNECT_HOME/embedded.sqlite3``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from mpconnect.errors import SinkError
from mpconnect.sink import ImportResult, RecordKind, Sink, VersionInfo
from mpconnect.store.datasets import DatasetStore, StoreError


def embedded_store_path(settings: Any, home: Path) -> Path:
    """Return the embedded store file the configuration names, or the default one."""
    configured = getattr(settings, "store", None) or (settings.model_extra or {}).get("store")
    return Path(configured).expanduser() if configured else home / "embedded.sqlite3"


class EmbeddedSink(Sink):
    """Loads versions into the embedded store; a published version is live at once."""

    name = "embedded"
    #: Stores what /import takes, an event tied to no user included.
    accepts_unattributed_events = True
    default_token = "mpconnect-embedded"
    extra_settings = frozenset({"store"})

    def __init__(self, settings: Any, home: Path) -> None:
        super().__init__(settings, home)
        self.store = DatasetStore(embedded_store_path(settings, home))

    def describe(self) -> str:
        """Name the store file."""
        return f"embedded store {self.store.path}"

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StoreError as exc:
            raise SinkError(f"embedded store: {exc.message}") from exc

    def create_version(self, dataset_id: str) -> VersionInfo:
        """Create a version, creating the dataset on first use."""
        return self._call(self.store.create_version, dataset_id, create_dataset=True)

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        """List versions; an unknown dataset has none."""
        if not self.store.has_dataset(dataset_id):
            return []
        return self._call(self.store.list_versions, dataset_id)

    def get_version(self, dataset_id: str, version_id: str) -> VersionInfo | None:
        """Return one version or None."""
        return self.store.get_version(dataset_id, version_id)

    def import_batch(
        self, kind: RecordKind, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        """Store one batch; identical people updates the store keeps once are reported as
        collapsed (events sharing an ``$insert_id`` are counted by the engine)."""
        records = orjson.loads(payload)
        if kind == "events":
            imported = self._call(self.store.import_events, dataset_id, version_id, records)
            return ImportResult(imported=imported)
        imported, collapsed = self._call(self.store.store_people, dataset_id, version_id, records)
        return ImportResult(imported=imported, collapsed=collapsed)

    def publish(self, dataset_id: str, version_id: str) -> None:
        """Make the version readable (and so ready and live)."""
        self._call(self.store.update_state, dataset_id, version_id, readable=True, writable=False)

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Delete a version."""
        self._call(self.store.delete_version, dataset_id, version_id)

    def close(self) -> None:
        """Close the store's connection of this thread."""
        self.store.close()
