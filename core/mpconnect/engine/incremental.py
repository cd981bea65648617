"""The incremental side of one run: which kind of read it is, the connector's state and the
source-object cache, and what goes to the sink.

- A source whose connector has ``incremental = True`` and ``sync = "incremental"`` (the
  default) reads incrementally once a full read has been committed; the first run,
  ``sync = "full"``... see :meth:`IncrementalRun.plan` for the full-read reasons.
- Every record the connector yields is kept in the cache's pending rows (:meth:`tap`).
  A versioned sink (datasets, embedded) gets the complete snapshot: the records read, then
  the cached records of every object this run did not replace or delete
  (:meth:`cached_records`). The ingestion sink gets only the records whose content hash the
  committed cache does not have (new or changed objects).
- The state and the pending cache are staged when extraction is done and committed by
  :meth:`commit` once the run's data is safe; a run that fails leaves both as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpconnect.engine.cached_records import cache_row, decode
from mpconnect.engine.ledger import paused_status
from mpconnect.engine.object_cache import (
    CacheDamaged,
    CacheRow,
    ObjectCache,
    SqliteObjectCache,
)
from mpconnect.engine.state import StateDamaged, StateStore
from mpconnect.errors import MpconnectError
from mpconnect.records import Event, Profile

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run

log = logging.getLogger("mpconnect.engine")

_FLUSH_ROWS = 2000
_RECORDS = (Event, Profile)


class IncrementalRun:
    """What one run does about state and the source-object cache.

    :param run: the run.
    :param enabled: the connector reads incrementally and the source's ``sync`` allows it.
    """

    def __init__(self, run: Run, enabled: bool) -> None:
        self.run = run
        self.enabled = enabled
        self.source = run.source.name
        self.state: dict[str, Any] = {}
        self.full = True
        self.reason = "the connector reads everything"
        self.spool_id: str | None = None
        self.cache: ObjectCache | None = None
        self.store: StateStore | None = None
        #: The ingestion sink gets only new or changed records.
        self.only_changed = False
        self.records_cached = 0
        self.unchanged_skipped = 0
        self.deleted_profiles: list[str] = []
        self._rows: list[CacheRow] = []
        self._seq = 0

    @property
    def records_read(self) -> int:
        """Records the connector yielded so far."""
        return self._seq

    # -- before extraction ---------------------------------------------------------------

    def open(self) -> None:
        """Open the state store and the cache (once the run knows it needs them)."""
        if self.enabled and self.cache is None:
            engine = self.run.engine
            self.store = engine.state_store()
            self.cache = engine.object_cache(self.source)

    def plan(self, spool_id: str) -> None:
        """Decide between an incremental and a full read, and start the pending changes
        (once per extraction)."""
        if self.spool_id == spool_id:
            return
        self.spool_id = spool_id
        if not self.enabled:
            if self.run.connector_cls.incremental:
                self.reason = f'sources.{self.source}.sync = "full"'
            self._note()
            return
        self.open()
        assert self.cache is not None and self.store is not None
        reason = None
        try:
            committed = self.store.load(self.source)
        except StateDamaged as exc:
            committed, reason = None, f"{exc}; reading everything to rebuild it"
        damaged = getattr(self.store, "damaged", None) or getattr(self.cache, "damaged", None)
        if damaged:
            reason = f"{damaged}; reading everything to rebuild it"
            for holder in (self.store, self.cache):  # said once
                if getattr(holder, "damaged", None):
                    setattr(holder, "damaged", None)  # noqa: B010
        elif reason is None and self.run.options.full_refresh:
            reason = "--full-refresh given"
        elif reason is None and committed is None:
            reason = "first run: no state yet"
        elif reason is None and not self.cache.exists():
            reason = "the source-object cache is missing; reading everything to rebuild it"
        elif (
            reason is None
            and not self.run.sink.versioned
            and self.cache.target() != self.run.target
        ):
            reason = (
                "the last run loaded another destination (sink, project, dataset or token); "
                "reading everything for this one"
            )
        self.full = reason is not None
        self.reason = reason or ""
        self.state = dict(committed.state) if committed is not None else {}
        # Compared with the committed cache even on a full read the connector decided on
        # (its cursor too old): what Mixpanel has already is not sent again.
        self.only_changed = (
            not self.run.sink.versioned
            and not self.run.options.full_refresh
            and self.cache.exists()
            and self.cache.target() == self.run.target
        )
        self.store.discard(self.source)
        self.cache.begin(spool_id, self.full, self.run.target)
        self._note()

    @property
    def partitionable(self) -> bool:
        """True when this planned read may be read partition by partition: a full read
        the engine decided on, into the SQLite cache, with nothing compared to what the
        committed cache holds (see :mod:`mpconnect.engine.partition_cache`)."""
        return (
            self.enabled
            and self.full
            and not self.only_changed
            and isinstance(self.cache, SqliteObjectCache)
        )

    def stage_full_read(self, spool_id: str, state: dict[str, Any], reason: str) -> None:
        """Stage a partitioned full read, its rows already in the cache's fresh table:
        ``state`` is the partitions' merged state."""
        planned = self.spool_id == spool_id
        self.spool_id = spool_id
        self.full = True
        self.reason = reason
        self.state = state
        self.only_changed = False
        if not planned:  # a resumed run: say what it finishes
            self._note()
        self.stage()

    def _note(self) -> None:
        summary = self.run.summary
        summary.sync = "full" if self.full else "incremental"
        summary.sync_reason = self.reason if self.full else None
        if self.full:
            log.info("%s: full run (%s)", self.source, self.reason)
        else:
            log.info("%s: incremental run", self.source)

    def context(self) -> dict[str, Any]:
        """The RunContext fields of incremental runs."""
        return {
            "state": self.state,
            "full_refresh": self.full,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "read_everything": self.read_everything,
        }

    # -- the connector's calls -----------------------------------------------------------

    def read_everything(self, reason: str) -> None:
        """The connector reads everything itself (a cursor too old, say)."""
        if not self.enabled or self.full:
            return
        assert self.cache is not None and self.spool_id is not None
        self.full = True
        self.reason = reason
        self.cache.discard()
        self.cache.begin(self.spool_id, True, self.run.target)
        self._note()

    def deleted(self, stream: str, object_id: str) -> None:
        """An object is gone from the source."""
        if not self.enabled or self.full:
            return
        assert self.cache is not None and self.spool_id is not None
        self._flush()
        if self.only_changed and self.run.source.delete_profiles:
            for row in self.cache.committed(stream, str(object_id)):
                if row.kind == "p":
                    self.deleted_profiles.append(decode(row.kind, row.data).distinct_id)
        self.cache.delete(self.spool_id, stream, str(object_id))

    def unchanged(self, stream: str) -> Iterator[Event | Profile]:
        """The cached records of the stream's objects not replaced or deleted so far."""
        if not self.enabled or self.full:
            return
        assert self.cache is not None and self.spool_id is not None
        self._flush()
        for row in self.cache.unchanged(self.spool_id, stream=stream):
            yield decode(row.kind, row.data)

    # -- extraction ----------------------------------------------------------------------

    def tap(self, records: Iterable[Any]) -> Iterator[Any]:
        """Pass the connector's records on, keeping each in the cache; for the ingestion
        sink, drop the ones the committed cache has already."""
        if not self.enabled:
            yield from records
            return
        assert self.cache is not None
        rows = self._rows
        known = self.cache.known
        only_changed = self.only_changed
        for record in records:
            if not isinstance(record, _RECORDS):
                yield record  # refused downstream, naming the connector
                continue
            self._seq += 1
            row = cache_row(record, self._seq)
            rows.append(row)
            if len(rows) >= _FLUSH_ROWS:
                self._flush()
            if only_changed and known(row.stream, row.object_id, row.hash):
                self.unchanged_skipped += 1
                self.run.summary.read += 1
                continue
            yield record

    def _flush(self) -> None:
        if self._rows and self.cache is not None and self.spool_id is not None:
            rows = self._rows.copy()
            self._rows.clear()  # the same list: tap() holds it
            self.cache.put(self.spool_id, rows)

    def cached_records(self, kind: str) -> Iterator[Event | Profile]:
        """The snapshot's unchanged records of one kind (``events``/``people``), for a
        versioned sink after an incremental read; nothing otherwise."""
        if not self.enabled or self.full or not self.run.sink.versioned:
            return
        assert self.cache is not None and self.spool_id is not None
        self._flush()
        for row in self.cache.unchanged(self.spool_id, kind=kind[0]):
            self.records_cached += 1
            yield decode(row.kind, row.data)

    def delete_records(self, token: str) -> list[dict[str, Any]]:
        """People ``$delete`` records for deleted objects' profiles (ingestion sink,
        ``delete_profiles = true``)."""
        return [
            {"$token": token, "$distinct_id": distinct_id, "$delete": ""}
            for distinct_id in dict.fromkeys(self.deleted_profiles)
        ]

    def stage(self) -> None:
        """Extraction is done: keep the state and the pending cache, uncommitted."""
        if not self.enabled:
            return
        assert self.cache is not None and self.store is not None and self.spool_id is not None
        self._flush()
        counts = self.cache.counts(self.spool_id)
        summary = self.run.summary
        summary.objects = counts
        last_run = {"run_id": summary.run_id, "sync": summary.sync, **counts}
        if summary.sync_reason:
            last_run["reason"] = summary.sync_reason
        self.store.stage(self.source, self.spool_id, self.state, last_run)
        self.cache.stage(self.spool_id)

    # -- once the data is safe -----------------------------------------------------------

    def commit(self, spool_id: str) -> None:
        """Commit the staged cache, then the state (a kill between the two leaves the old
        state with the new cache: the next run reads the same changes again, and finds
        them unchanged)."""
        if not self.enabled:
            return
        self.open()
        assert self.cache is not None and self.store is not None
        self.cache.commit(spool_id)
        if self.store.commit(self.source, spool_id, self.run.summary.run_id):
            log.info("%s: state committed", self.source)

    def close(self) -> None:
        """Close the cache."""
        if self.cache is not None:
            self.cache.close()


def end_paused(run: Run, spool_id: str) -> None:
    """End a run its connector paused (:class:`mpconnect.SourcePaused`): its batches are
    acknowledged; delete the unpublished version where the sink can, commit the cache and
    the state, and mark the run ``paused: REASON`` (the next run continues from there)."""
    summary = run.summary
    if run.sink.versioned and summary.version_id:
        try:
            version = summary.version_id
            run.api(lambda: run.sink.delete_version(run.source.dataset_id, version))
        except MpconnectError as exc:
            log.warning(
                "%s: could not delete the unpublished version %s: %s",
                run.source.name,
                summary.version_id,
                exc,
            )
    run.incremental.commit(spool_id)
    summary.status = paused_status(run.paused or "")
    log.warning(
        "%s: %s; nothing published; the next run continues from where this one stopped",
        run.source.name,
        summary.status,
    )


def damaged_cache_message(source: str, exc: CacheDamaged) -> str:
    """The run's error when a cached record cannot be read back."""
    return (
        f"the source-object cache of {source!r} is damaged: {exc}; it was cleared, so the "
        "next run reads everything and rebuilds it"
    )


def state_file(home: Path) -> Path:
    """Where the state store lives."""
    return home / "state.sqlite3"


Factory = Callable[[str], ObjectCache]
