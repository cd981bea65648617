"""The partitions of a distributed run in the shared PostgreSQL database: the same
:class:`~mpconnect.engine.partition_store.PartitionStore` as the SQLite one (tables
``partitions`` and ``batch_digests``, migration 4), plus a lease per partition.

A done partition's quarantine lines are copied into ``partition_quarantine``
(migration 5) by the worker that read it, so the run's coordinator, on another machine,
builds the run's quarantine file from them.

A worker :meth:`~PostgresPartitionStore.claim`\\ s a partition before it reads it (one
statement: it takes a pending partition, or a running one whose lease ran out), then
:meth:`~PostgresPartitionStore.beat`\\ s while it reads. A partition whose worker died
keeps ``running`` with an old heartbeat; :meth:`~PostgresPartitionStore.lost` finds it,
and the run's coordinator sends it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from mpconnect.connector import Partition
from mpconnect.distributed.connection import Database
from mpconnect.engine.partition_store import (
    PartitionRow,
    PartitionStore,
    PartitionTotals,
    file_lines,
)
from mpconnect.redact import redact

#: Quarantine lines read from the shared database at a time.
LINES_PER_QUERY = 1000


class PostgresPartitionStore(PartitionStore):
    """The plan and progress of partitioned runs, shared by every worker.

    :param database: the shared database (migrated by the ledger that made this store).
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def __repr__(self) -> str:
        return f"PostgresPartitionStore({self.database!r})"

    def save_plan(self, spool_id: str, partitions: list[Partition]) -> None:
        """Record the plan in one transaction, unless one is there."""

        def write(db: psycopg.Connection[Any]) -> None:
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO partitions (spool_id, idx, key, spec) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (spool_id, idx) DO NOTHING",
                    [
                        (spool_id, index, p.key, json.dumps(p.spec, sort_keys=True))
                        for index, p in enumerate(partitions)
                    ],
                )

        if not self.database.fetchone(
            "SELECT 1 FROM partitions WHERE spool_id = %s LIMIT 1", (spool_id,)
        ):
            self.database.transaction(write)

    def plan(self, spool_id: str) -> list[PartitionRow]:
        """Return the recorded partitions, in order."""
        rows = self.database.fetchall(
            "SELECT * FROM partitions WHERE spool_id = %s ORDER BY idx", (spool_id,)
        )
        return [PartitionRow.from_row(r) for r in rows]

    def claim(self, spool_id: str, index: int, worker: str, lease: float) -> bool:
        """Take partition ``index`` for ``worker``: True when it was pending, or running
        without a heartbeat for ``lease`` seconds (its worker lost). A done or failed
        partition, or one read elsewhere under a live lease, is not taken."""
        now = time.time()
        row = self.database.fetchone(
            "UPDATE partitions SET status = 'running', worker = %s, heartbeat = %s "
            "WHERE spool_id = %s AND idx = %s AND (status = 'pending' OR "
            "(status = 'running' AND (heartbeat IS NULL OR heartbeat < %s))) RETURNING idx",
            (worker, now, spool_id, index, now - lease),
        )
        return row is not None

    def retry_failed(self, spool_id: str) -> None:
        """Make the failed partitions of a resumed run pending again."""
        self.database.execute(
            "UPDATE partitions SET status = 'pending', worker = NULL, heartbeat = NULL "
            "WHERE spool_id = %s AND status = 'failed'",
            (spool_id,),
        )

    def beat(self, spool_id: str, index: int, worker: str) -> None:
        """Say ``worker`` is still reading the partition."""
        self.database.execute(
            "UPDATE partitions SET heartbeat = %s WHERE spool_id = %s AND idx = %s "
            "AND worker = %s AND status = 'running'",
            (time.time(), spool_id, index, worker),
        )

    def lost(self, spool_id: str, lease: float) -> list[PartitionRow]:
        """The running partitions without a heartbeat for ``lease`` seconds."""
        rows = self.database.fetchall(
            "SELECT idx FROM partitions WHERE spool_id = %s AND status = 'running' "
            "AND (heartbeat IS NULL OR heartbeat < %s) ORDER BY idx",
            (spool_id, time.time() - lease),
        )
        lost = {r["idx"] for r in rows}
        return [row for row in self.plan(spool_id) if row.index in lost]

    def start(self, spool_id: str, index: int, worker: str) -> int:
        """Count the attempt and mark the partition running."""
        row = self.database.fetchone(
            "UPDATE partitions SET status = 'running', attempts = attempts + 1, worker = %s, "
            "heartbeat = %s, started_at = %s, ended_at = NULL, error = NULL, read = 0, "
            "quarantined = 0 WHERE spool_id = %s AND idx = %s RETURNING attempts",
            (worker, time.time(), time.time(), spool_id, index),
        )
        return int(row["attempts"]) if row else 1

    def progress(self, spool_id: str, index: int, read: int, quarantined: int) -> None:
        """Record the running partition's counts."""
        self.database.execute(
            "UPDATE partitions SET read = %s, quarantined = %s WHERE spool_id = %s AND idx = %s",
            (read, quarantined, spool_id, index),
        )

    def finish(self, spool_id: str, index: int, totals: PartitionTotals) -> None:
        """Mark the partition done with its counts."""
        self.database.execute(
            "UPDATE partitions SET status = 'done', ended_at = %s, read = %s, quarantined = %s, "
            "duplicates = %s, retries = %s, throttled = %s, uploaded_bytes = %s "
            "WHERE spool_id = %s AND idx = %s",
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
        self.database.execute(
            "UPDATE partitions SET status = 'failed', ended_at = %s, error = %s "
            "WHERE spool_id = %s AND idx = %s",
            (time.time(), redact(error), spool_id, index),
        )

    def acked_digests(self, partition_spool: str) -> dict[int, str]:
        """Hashes of the batches the ledger records as acknowledged."""
        rows = self.database.fetchall(
            "SELECT d.seq, d.digest FROM batch_digests d JOIN batches b "
            "ON b.spool_id = d.spool_id AND b.seq = d.seq "
            "WHERE d.spool_id = %s AND b.acked = 1",
            (partition_spool,),
        )
        return {int(r["seq"]): str(r["digest"]) for r in rows}

    def set_digest(self, partition_spool: str, seq: int, digest: str) -> None:
        """Record (or replace) a batch's hash."""
        self.database.execute(
            "INSERT INTO batch_digests (spool_id, seq, digest) VALUES (%s, %s, %s) "
            "ON CONFLICT (spool_id, seq) DO UPDATE SET digest = excluded.digest",
            (partition_spool, seq, digest),
        )

    def keep_quarantine(self, spool_id: str, index: int, files: Sequence[Path]) -> None:
        """Copy the partition's quarantine lines into the shared database, streamed from
        ``files``, in place of an earlier attempt's (one transaction)."""

        def copy(db: psycopg.Connection[Any]) -> None:
            db.execute(
                "DELETE FROM partition_quarantine WHERE spool_id = %s AND idx = %s",
                (spool_id, index),
            )
            with (
                db.cursor() as cursor,
                cursor.copy(
                    "COPY partition_quarantine (spool_id, idx, seq, line) FROM STDIN"
                ) as rows,
            ):
                rows.set_types(["text", "int4", "int8", "bytea"])
                for seq, line in enumerate(file_lines(files)):
                    rows.write_row((spool_id, index, seq, line[:-1]))

        self.database.transaction(copy)

    def quarantine_lines(self, spool_id: str, index: int, files: Sequence[Path]) -> Iterator[bytes]:
        """Yield the partition's quarantine lines from the shared database (wherever it
        was read), a few at a time; ``files`` are not read."""
        after = -1
        while True:
            rows = self.database.fetchall(
                "SELECT seq, line FROM partition_quarantine WHERE spool_id = %s AND idx = %s "
                "AND seq > %s ORDER BY seq LIMIT %s",
                (spool_id, index, after, LINES_PER_QUERY),
            )
            for row in rows:
                yield bytes(row["line"]) + b"\n"
            if len(rows) < LINES_PER_QUERY:
                return
            after = int(rows[-1]["seq"])
