"""Where a partitioned run keeps its plan and each partition's progress.

:class:`PartitionStore` is the interface; :class:`SqlitePartitionStore` keeps it in the
run ledger's SQLite file (tables ``partitions`` and ``batch_digests``), written from
several processes at once (WAL, a busy timeout). A shared database can implement the
same interface for workers on several machines.

A partition's batches are recorded in the ledger's ``batches`` table under the
partition's own spool id (:func:`partition_spool_id`), so each batch is acknowledged
under (partition, seq); ``batch_digests`` holds each batch's content hash, so a partition
read again after its process died skips the batches already acknowledged and notices a
source that changed under it.

A done partition's quarantined records reach the run through the store
(:meth:`PartitionStore.keep_quarantine`, :meth:`PartitionStore.quarantine_lines`): a
store on one machine reads them from the partition's own files, a shared one keeps a
copy wherever the run's coordinator is.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpconnect.connector import Partition
from mpconnect.errors import MpconnectError
from mpconnect.redact import redact
from mpconnect.sqlite import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS partitions (
    spool_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    key TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    read INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    throttled INTEGER NOT NULL DEFAULT 0,
    uploaded_bytes INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    started_at REAL,
    ended_at REAL,
    error TEXT,
    PRIMARY KEY (spool_id, idx)
);
CREATE TABLE IF NOT EXISTS batch_digests (
    spool_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (spool_id, seq)
);
"""

#: A partition's statuses: not started, being read, read and every batch acknowledged,
#: stopped by an error (the next attempt or run reads it again).
STATUSES = ("pending", "running", "done", "failed")


def partition_spool_id(spool_id: str, index: int) -> str:
    """The spool id a partition's batches are recorded under in the ledger."""
    return f"{spool_id}@p{index:03d}"


def partition_spool_dir(spool_dir: Path, index: int) -> Path:
    """A partition's own spool directory: next to the run's, removed with it."""
    return spool_dir.with_name(f"{spool_dir.name}@p{index:03d}")


@dataclass(frozen=True)
class PartitionRow:
    """One planned partition and how far it got."""

    index: int
    key: str
    spec: dict[str, Any]
    status: str = "pending"
    attempts: int = 0
    read: int = 0
    quarantined: int = 0
    duplicates: int = 0
    retries: int = 0
    throttled: int = 0
    uploaded_bytes: int = 0
    worker: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> PartitionRow:
        """A row of the ``partitions`` table (SQLite or PostgreSQL, by column name)."""
        return cls(
            index=row["idx"],
            key=row["key"],
            spec=json.loads(row["spec"]),
            **{name: row[name] for name in _PROGRESS_COLUMNS},
        )

    @property
    def partition(self) -> Partition:
        """The connector's :class:`~mpconnect.connector.Partition`."""
        return Partition(self.key, dict(self.spec))

    @property
    def label(self) -> str:
        """How logs name it: ``p003 (2024-01)``."""
        return f"p{self.index:03d} ({self.key})"


_PROGRESS_COLUMNS = (
    "status",
    "attempts",
    "read",
    "quarantined",
    "duplicates",
    "retries",
    "throttled",
    "uploaded_bytes",
    "worker",
    "started_at",
    "ended_at",
    "error",
)


@dataclass(frozen=True)
class PartitionTotals:
    """What a partition counted once done."""

    read: int
    quarantined: int
    duplicates: int = 0
    retries: int = 0
    throttled: int = 0
    uploaded_bytes: int = 0


class PartitionStore(ABC):
    """The plan of a partitioned run and each partition's progress."""

    @abstractmethod
    def save_plan(self, spool_id: str, partitions: list[Partition]) -> None:
        """Record the run's plan once; a plan already recorded is kept as it is."""

    @abstractmethod
    def plan(self, spool_id: str) -> list[PartitionRow]:
        """Return the spool's partitions in plan order ([] when none was recorded)."""

    @abstractmethod
    def start(self, spool_id: str, index: int, worker: str) -> int:
        """Mark a partition running on ``worker``; return its attempt number (1, 2…)."""

    @abstractmethod
    def progress(self, spool_id: str, index: int, read: int, quarantined: int) -> None:
        """Record how far a running partition has read."""

    @abstractmethod
    def finish(self, spool_id: str, index: int, totals: PartitionTotals) -> None:
        """Mark a partition done: read, and every batch acknowledged."""

    @abstractmethod
    def fail(self, spool_id: str, index: int, error: str) -> None:
        """Mark a partition failed with why (secrets redacted)."""

    @abstractmethod
    def acked_digests(self, partition_spool: str) -> dict[int, str]:
        """Return {seq: content hash} of the partition's acknowledged batches."""

    @abstractmethod
    def set_digest(self, partition_spool: str, seq: int, digest: str) -> None:
        """Record a spooled batch's content hash (before it is sent)."""

    def keep_quarantine(self, spool_id: str, index: int, files: Sequence[Path]) -> None:
        """Keep the quarantine lines of a partition read to its end (``files``, on this
        machine) for the run, replacing those of an earlier attempt. A store on this
        machine has nothing to do: the run reads the files themselves."""

    def quarantine_lines(self, spool_id: str, index: int, files: Sequence[Path]) -> Iterator[bytes]:
        """Yield a done partition's quarantine lines, one at a time, each ending in a
        newline: here those of ``files`` (the partition's files on this machine)."""
        return file_lines(files)


def file_lines(files: Sequence[Path]) -> Iterator[bytes]:
    """The lines of ``files`` in order (missing ones skipped), each ending in a newline."""
    for path in files:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            continue
        with handle:
            for line in handle:
                yield line if line.endswith(b"\n") else line + b"\n"


class SqlitePartitionStore(PartitionStore):
    """The store in the run ledger's SQLite file (one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, "run ledger")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def save_plan(self, spool_id: str, partitions: list[Partition]) -> None:
        """Record the plan in one transaction, unless one is there."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM partitions WHERE spool_id = ?", (spool_id,)).fetchone():
                db.execute("COMMIT")
                return
            db.executemany(
                "INSERT INTO partitions (spool_id, idx, key, spec) VALUES (?, ?, ?, ?)",
                [
                    (spool_id, index, p.key, json.dumps(p.spec, sort_keys=True))
                    for index, p in enumerate(partitions)
                ],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def plan(self, spool_id: str) -> list[PartitionRow]:
        """Return the recorded partitions, in order."""
        rows = self._db().execute(
            "SELECT * FROM partitions WHERE spool_id = ? ORDER BY idx", (spool_id,)
        )
        return [PartitionRow.from_row(r) for r in rows]

    def start(self, spool_id: str, index: int, worker: str) -> int:
        """Count the attempt and mark the partition running."""
        db = self._db()
        db.execute(
            "UPDATE partitions SET status = 'running', attempts = attempts + 1, worker = ?, "
            "started_at = ?, ended_at = NULL, error = NULL, read = 0, quarantined = 0 "
            "WHERE spool_id = ? AND idx = ?",
            (worker, time.time(), spool_id, index),
        )
        row = db.execute(
            "SELECT attempts FROM partitions WHERE spool_id = ? AND idx = ?", (spool_id, index)
        ).fetchone()
        return int(row[0]) if row else 1

    def progress(self, spool_id: str, index: int, read: int, quarantined: int) -> None:
        """Record the running partition's counts."""
        self._db().execute(
            "UPDATE partitions SET read = ?, quarantined = ? WHERE spool_id = ? AND idx = ?",
            (read, quarantined, spool_id, index),
        )

    def finish(self, spool_id: str, index: int, totals: PartitionTotals) -> None:
        """Mark the partition done with its counts."""
        self._db().execute(
            "UPDATE partitions SET status = 'done', ended_at = ?, read = ?, quarantined = ?, "
            "duplicates = ?, retries = ?, throttled = ?, uploaded_bytes = ? "
            "WHERE spool_id = ? AND idx = ?",
            (
                time.time(),
                totals.read,
                totals.quarantined,
                totals.duplicates,
                totals.retries,
                totals.throttled,
                totals.uploaded_bytes,
                spool_id,
                index,
            ),
        )

    def fail(self, spool_id: str, index: int, error: str) -> None:
        """Mark the partition failed."""
        self._db().execute(
            "UPDATE partitions SET status = 'failed', ended_at = ?, error = ? "
            "WHERE spool_id = ? AND idx = ?",
            (time.time(), redact(error), spool_id, index),
        )

    def acked_digests(self, partition_spool: str) -> dict[int, str]:
        """Hashes of the batches the ledger records as acknowledged."""
        rows = self._db().execute(
            "SELECT d.seq, d.digest FROM batch_digests d JOIN batches b "
            "ON b.spool_id = d.spool_id AND b.seq = d.seq "
            "WHERE d.spool_id = ? AND b.acked = 1",
            (partition_spool,),
        )
        return {int(r[0]): str(r[1]) for r in rows}

    def set_digest(self, partition_spool: str, seq: int, digest: str) -> None:
        """Record (or replace) a batch's hash."""
        self._db().execute(
            "INSERT OR REPLACE INTO batch_digests (spool_id, seq, digest) VALUES (?, ?, ?)",
            (partition_spool, seq, digest),
        )


def store_for(ledger: Any) -> PartitionStore:
    """The partition store that goes with a run ledger: the ledger's own
    (``ledger.partition_store()``, as a shared database's ledger provides), else one in
    the SQLite ledger's file.

    :raises MpconnectError: when the ledger keeps no partitions.
    """
    own = getattr(ledger, "partition_store", None)
    if callable(own):
        store = own()
        if isinstance(store, PartitionStore):
            return store
    path = getattr(ledger, "path", None)
    if isinstance(path, Path):
        return SqlitePartitionStore(path)
    raise MpconnectError(f"the run ledger {type(ledger).__name__} keeps no partitions")
