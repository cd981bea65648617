"""Loading the cache rows of a partitioned full read while its partitions are read.

Each partition keeps its cache rows in a file of its own (:mod:`mpconnect.engine.
partition_cache`). The run loads them into the cache's fresh table as partitions finish,
in a thread of its own, rather than all at the end: the copy then overlaps with the
partitions still being read, and only what is left when the last one ends (its own
rows, the index and the counts) is done after it. Files are loaded in plan order, so
records are numbered as one process reading the partitions in turn numbers them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mpconnect.engine.object_cache import SqliteObjectCache
from mpconnect.engine.partition_cache import CACHE_FILE
from mpconnect.engine.partition_store import PartitionRow, PartitionStore, partition_spool_dir
from mpconnect.errors import RunFailed

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run

#: Seconds between two looks at which partitions are done.
POLL_SECONDS = 0.2


class CacheRowsLoader:
    """Appends done partitions' cache rows to the fresh table of the run's cache.

    :param run: the run (its incremental part has planned a full read).
    :param store: the partition store, where partitions are seen done.
    :param spool_id: the version's spool id.
    :param spool_dir: the run's spool directory (partitions' directories are next to it).
    """

    def __init__(self, run: Run, store: PartitionStore, spool_id: str, spool_dir: Path) -> None:
        self.run = run
        self.store = store
        self.spool_id = spool_id
        self.spool_dir = spool_dir
        #: The highest record number loaded so far (the next file's rows follow it).
        self.offset = 0
        self._next = 0  # the next partition, in plan order, to load
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="mpconnect-cache-rows")
        incremental = run.incremental
        incremental.open()
        cache = incremental.cache
        assert isinstance(cache, SqliteObjectCache)
        self.cache = cache

    def start(self) -> None:
        """Start a fresh table (a resumed run loads every file again) and the thread.

        :raises RunFailed: when a partition done before (a resumed run) lacks its file:
            before any partition is read again.
        """
        for row in self.store.plan(self.spool_id):
            if row.status == "done":
                self._check(row)
        self.cache.begin(self.spool_id, True, self.run.target)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread once the file it is loading is in."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def finish(self) -> None:
        """Every partition is done: stop the thread and load the files it has not.

        :raises RunFailed: when a partition's file is missing or cannot be loaded.
        """
        self.stop()
        if self._error is not None:
            raise self._error
        self._load_done()

    def path(self, index: int) -> Path:
        """Partition ``index``'s file."""
        return partition_spool_dir(self.spool_dir, index) / CACHE_FILE

    def _loop(self) -> None:
        try:
            while not self._stop.wait(POLL_SECONDS):
                self._load_done()
        except BaseException as exc:  # raised again by finish()
            self._error = exc

    def _load_done(self) -> None:
        rows = self.store.plan(self.spool_id)
        while self._next < len(rows) and rows[self._next].status == "done":
            path = self._check(rows[self._next])
            self.offset += self.cache.append_file(self.spool_id, path, self.offset)
            self._next += 1

    def _check(self, row: PartitionRow) -> Path:
        path = self.path(row.index)
        if not path.is_file():
            raise RunFailed(
                f"partition {row.label}: its cache rows ({path}) are missing; run again "
                "with --restart"
            )
        return path
