"""The run ledger in the shared PostgreSQL database: the :class:`RunLedger` of every
worker, scheduler and ``mpconnect runs`` when ``[distributed]`` is configured.

The same rows as the SQLite ledger (:mod:`mpconnect.engine.ledger`), in the schema of
:mod:`mpconnect.distributed.schema`. Errors are redacted on the way in and out.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from mpconnect.distributed.connection import Database
from mpconnect.distributed.partition_store import PostgresPartitionStore
from mpconnect.distributed.schema import ensure_migrated
from mpconnect.engine.ledger import BatchRef, ResumePoint, RunLedger, may_resume
from mpconnect.engine.summary import RunSummary
from mpconnect.redact import redact

_INSERT_BATCH = (
    "INSERT INTO batches (spool_id, seq, kind, count, path, acked, imported, acked_at) "
    "VALUES (%s, %s, %s, %s, %s, 0, 0, NULL) ON CONFLICT (spool_id, seq) DO UPDATE SET "
    "kind = excluded.kind, count = excluded.count, path = excluded.path, acked = 0, "
    "imported = 0, acked_at = NULL"
)


class PostgresRunLedger(RunLedger):
    """The ledger in PostgreSQL (one connection per thread; see :class:`Database`).

    :param database: the shared database (its schema is migrated on first use in the
        process).
    """

    def __init__(self, database: Database | str) -> None:
        self.database = Database(database) if isinstance(database, str) else database
        ensure_migrated(self.database)

    def __repr__(self) -> str:
        return f"PostgresRunLedger({self.database!r})"

    def close(self) -> None:
        """Close the ledger's connections."""
        self.database.close()

    def partition_store(self) -> PostgresPartitionStore:
        """The partitions of this ledger's partitioned runs, in the same database."""
        return PostgresPartitionStore(self.database)

    def record_run(
        self,
        summary: RunSummary,
        *,
        spool_id: str | None = None,
        spool_dir: Path | None = None,
        host: str = "",
        pid: int = 0,
        target: str | None = None,
        extraction_done: bool = False,
        resume_key: str | None = None,
    ) -> None:
        """Insert the run or update its counts, status and error."""
        values = (
            summary.version_id,
            summary.status,
            summary.ended_at,
            summary.read,
            summary.imported,
            summary.quarantined,
            summary.retries,
            summary.batches,
            int(summary.resumed),
            _redacted(summary.error),
            summary.quarantine_file,
            summary.duplicates,
            summary.throttled,
            summary.uploaded_bytes,
        )

        def write(db: psycopg.Connection[Any]) -> None:
            db.execute(
                "INSERT INTO runs (run_id, source, dataset_id, sink, status, started_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
                (
                    summary.run_id,
                    summary.source,
                    summary.dataset_id,
                    summary.sink,
                    summary.status,
                    summary.started_at,
                ),
            )
            db.execute(
                "UPDATE runs SET version_id = %s, status = %s, ended_at = %s, read = %s, "
                "imported = %s, quarantined = %s, retries = %s, batches = %s, resumed = %s, "
                "error = %s, quarantine_file = %s, duplicates = %s, throttled = %s, "
                "uploaded_bytes = %s WHERE run_id = %s",
                (*values, summary.run_id),
            )
            if spool_id is not None:
                db.execute(
                    "UPDATE runs SET spool_id = %s, spool_dir = %s, host = %s, pid = %s, "
                    "target = %s, extraction_done = %s, resume_key = %s WHERE run_id = %s",
                    (
                        spool_id,
                        str(spool_dir) if spool_dir else None,
                        host,
                        pid,
                        target,
                        int(extraction_done),
                        resume_key,
                        summary.run_id,
                    ),
                )

        self.database.transaction(write)

    def mark_extraction_done(
        self, run_id: str, read: int, quarantined: int, duplicates: int = 0
    ) -> None:
        """Record that the spool is complete."""
        self.database.execute(
            "UPDATE runs SET extraction_done = 1, read = %s, quarantined = %s, duplicates = %s "
            "WHERE run_id = %s",
            (read, quarantined, duplicates, run_id),
        )

    def mark_published(self, run_id: str) -> None:
        """Record that the version was published."""
        self.database.execute("UPDATE runs SET published = 1 WHERE run_id = %s", (run_id,))

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Change a run's status and, if given, its error."""
        self.database.execute(
            "UPDATE runs SET status = %s, error = COALESCE(%s, error) WHERE run_id = %s",
            (status, _redacted(error), run_id),
        )

    def add_batch(self, spool_id: str, batch: BatchRef) -> None:
        """Record a spooled batch."""
        self.database.execute(
            _INSERT_BATCH, (spool_id, batch.seq, batch.kind, batch.count, str(batch.path))
        )

    def ack_batch(self, spool_id: str, seq: int, imported: int) -> None:
        """Checkpoint one acknowledged batch."""
        self.database.execute(
            "UPDATE batches SET acked = 1, imported = %s, acked_at = %s "
            "WHERE spool_id = %s AND seq = %s",
            (imported, time.time(), spool_id, seq),
        )

    def split_batch(self, spool_id: str, seq: int, parts: list[BatchRef]) -> None:
        """Replace batch ``seq`` by ``parts`` in one transaction."""

        def write(db: psycopg.Connection[Any]) -> None:
            with db.cursor() as cursor:
                cursor.executemany(
                    _INSERT_BATCH,
                    [(spool_id, p.seq, p.kind, p.count, str(p.path)) for p in parts],
                )
            db.execute("DELETE FROM batches WHERE spool_id = %s AND seq = %s", (spool_id, seq))

        self.database.transaction(write)

    def record_phase(
        self,
        run_id: str,
        phase: str,
        started_at: float,
        ended_at: float | None = None,
        ok: bool | None = None,
    ) -> None:
        """Insert or update one phase of a run."""
        self.database.execute(
            "INSERT INTO run_phases (run_id, phase, started_at, ended_at, ok) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, phase) DO UPDATE SET "
            "ended_at = excluded.ended_at, ok = excluded.ok",
            (run_id, phase, started_at, ended_at, None if ok is None else int(ok)),
        )

    def phases(self, run_id: str) -> list[dict[str, Any]]:
        """Return the run's phases in the order they began."""
        rows = self.database.fetchall(
            "SELECT phase, started_at, ended_at, ok FROM run_phases WHERE run_id = %s "
            "ORDER BY started_at",
            (run_id,),
        )
        return [{**r, "ok": None if r["ok"] is None else bool(r["ok"])} for r in rows]

    def acks(self, spool_id: str, since: float = 0.0) -> list[tuple[float, int]]:
        """Return (time, records) of the spool's batches acknowledged since ``since``."""
        rows = self.database.fetchall(
            "SELECT acked_at, imported FROM batches WHERE spool_id = %s AND acked = 1 "
            "AND acked_at >= %s ORDER BY acked_at",
            (spool_id, since),
        )
        return [(float(r["acked_at"]), int(r["imported"])) for r in rows]

    def unacked_batches(self, spool_id: str) -> list[BatchRef]:
        """Return the batches still to send, in order."""
        rows = self.database.fetchall(
            "SELECT seq, kind, count, path FROM batches WHERE spool_id = %s AND acked = 0 "
            "ORDER BY seq",
            (spool_id,),
        )
        return [BatchRef(r["seq"], r["kind"], r["count"], Path(r["path"])) for r in rows]

    def acked_totals(self, spool_id: str) -> tuple[int, int]:
        """Return (acknowledged batches, records they imported)."""
        row = self.database.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(imported), 0) AS imported FROM batches "
            "WHERE spool_id = %s AND acked = 1",
            (spool_id,),
        )
        return (int(row["n"]), int(row["imported"])) if row else (0, 0)

    def resume_point(self, source: str) -> ResumePoint | None:
        """Return the newest unfinished, unpublished version of the source, if any."""
        row = self.database.fetchone(
            "SELECT * FROM runs WHERE source = %s AND version_id IS NOT NULL "
            "AND spool_id IS NOT NULL ORDER BY started_at DESC LIMIT 1",
            (source,),
        )
        if (
            row is None
            or not may_resume(row["status"], bool(row["extraction_done"]))
            or row["published"]
        ):
            return None
        return ResumePoint(
            run_id=row["run_id"],
            spool_id=row["spool_id"],
            version_id=row["version_id"],
            spool_dir=Path(row["spool_dir"]),
            host=row["host"] or "",
            extraction_done=bool(row["extraction_done"]),
            read=row["read"],
            quarantined=row["quarantined"],
            target=row["target"],
            resume_key=row["resume_key"],
            sink=row["sink"],
            duplicates=row["duplicates"],
        )

    def versions_being_written(self, dataset_id: str) -> set[str]:
        """Return the versions of ``dataset_id`` whose runs are still running."""
        rows = self.database.fetchall(
            "SELECT version_id FROM runs WHERE dataset_id = %s AND status = 'running' "
            "AND version_id IS NOT NULL",
            (dataset_id,),
        )
        return {row["version_id"] for row in rows}

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """Return one run as :meth:`list_runs` shows it, or None."""
        found = self._shown(
            self.database.fetchall("SELECT * FROM runs WHERE run_id = %s", (run_id,))
        )
        return found[0] if found else None

    def list_runs(self, source: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return runs, newest first, as dicts."""
        if source:
            rows = self.database.fetchall(
                "SELECT * FROM runs WHERE source = %s ORDER BY started_at DESC LIMIT %s",
                (source, limit),
            )
        else:
            rows = self.database.fetchall(
                "SELECT * FROM runs ORDER BY started_at DESC LIMIT %s", (limit,)
            )
        return self._shown(rows)

    def _shown(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = []
        for data in rows:
            data = dict(data)
            data["error"] = _redacted(data["error"])
            if data["status"] == "running" and data["spool_id"]:
                data["batches"], data["imported"] = self.acked_totals(data["spool_id"])
            end = data["ended_at"]
            data["duration"] = round(end - data["started_at"], 3) if end else None
            result.append(data)
        return result


def _redacted(error: str | None) -> str | None:
    return redact(error) if error else error
