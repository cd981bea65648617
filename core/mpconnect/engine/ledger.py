"""The run ledger: every run's outcome, and a checkpoint per acknowledged batch.

:class:`RunLedger` is the interface; :class:`SqliteRunLedger` keeps it in
``$MPCONNECT_HOME/ledger.sqlite3`` for one machine. A shared database can implement the
same interface when several machines run sources. Secrets are never stored: every error
is passed through :func:`mpconnect.redact.redact` on its way in (and out).

A *spool* is the set of batches one extraction produced for one version; the run that
created it gives it its id. A run that resumes a version takes over its spool.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from mpconnect.engine.ledger_types import (
    PAUSED,
    UNFINISHED,
    BatchRef,
    ResumePoint,
    RunLedger,
    may_resume,
    paused_status,
)
from mpconnect.engine.summary import RunSummary
from mpconnect.redact import redact
from mpconnect.sqlite import connect

__all__ = [
    "PAUSED",
    "UNFINISHED",
    "BatchRef",
    "ResumePoint",
    "RunLedger",
    "SqliteRunLedger",
    "may_resume",
    "paused_status",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    version_id TEXT,
    spool_id TEXT,
    spool_dir TEXT,
    host TEXT,
    pid INTEGER,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    read INTEGER NOT NULL DEFAULT 0,
    imported INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0,
    resumed INTEGER NOT NULL DEFAULT 0,
    extraction_done INTEGER NOT NULL DEFAULT 0,
    published INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    quarantine_file TEXT,
    target TEXT,
    resume_key TEXT,
    duplicates INTEGER NOT NULL DEFAULT 0,
    throttled INTEGER NOT NULL DEFAULT 0,
    uploaded_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_source ON runs (source, started_at);
CREATE TABLE IF NOT EXISTS batches (
    spool_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    path TEXT NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0,
    imported INTEGER NOT NULL DEFAULT 0,
    acked_at REAL,
    PRIMARY KEY (spool_id, seq)
);
CREATE TABLE IF NOT EXISTS run_phases (
    run_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    ok INTEGER,
    PRIMARY KEY (run_id, phase)
);
"""


class SqliteRunLedger(RunLedger):
    """The ledger in one SQLite file (WAL; one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        db = self._db()
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        for column in ("target", "resume_key"):  # a ledger older than the column
            if column not in columns:
                db.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
        for column in ("duplicates", "throttled", "uploaded_bytes"):  # also older than these
            if column not in columns:
                db.execute(f"ALTER TABLE runs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
        if "acked_at" not in {row[1] for row in db.execute("PRAGMA table_info(batches)")}:
            db.execute("ALTER TABLE batches ADD COLUMN acked_at REAL")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, "run ledger")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

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
        db = self._db()
        db.execute(
            "INSERT INTO runs (run_id, source, dataset_id, sink, status, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO NOTHING",
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
            "UPDATE runs SET version_id = ?, status = ?, ended_at = ?, read = ?, imported = ?, "
            "quarantined = ?, retries = ?, batches = ?, resumed = ?, error = ?, "
            "quarantine_file = ?, duplicates = ?, throttled = ?, uploaded_bytes = ? "
            "WHERE run_id = ?",
            (
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
                summary.run_id,
            ),
        )
        if spool_id is not None:
            db.execute(
                "UPDATE runs SET spool_id = ?, spool_dir = ?, host = ?, pid = ?, target = ?, "
                "extraction_done = ?, resume_key = ? WHERE run_id = ?",
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

    def mark_extraction_done(
        self, run_id: str, read: int, quarantined: int, duplicates: int = 0
    ) -> None:
        """Record that the spool is complete."""
        self._db().execute(
            "UPDATE runs SET extraction_done = 1, read = ?, quarantined = ?, duplicates = ? "
            "WHERE run_id = ?",
            (read, quarantined, duplicates, run_id),
        )

    def mark_published(self, run_id: str) -> None:
        """Record that the version was published."""
        self._db().execute("UPDATE runs SET published = 1 WHERE run_id = ?", (run_id,))

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Change a run's status and, if given, its error."""
        self._db().execute(
            "UPDATE runs SET status = ?, error = COALESCE(?, error) WHERE run_id = ?",
            (status, _redacted(error), run_id),
        )

    def add_batch(self, spool_id: str, batch: BatchRef) -> None:
        """Record a spooled batch."""
        self._db().execute(
            "INSERT OR REPLACE INTO batches (spool_id, seq, kind, count, path) VALUES (?,?,?,?,?)",
            (spool_id, batch.seq, batch.kind, batch.count, str(batch.path)),
        )

    def ack_batch(self, spool_id: str, seq: int, imported: int) -> None:
        """Checkpoint one acknowledged batch."""
        self._db().execute(
            "UPDATE batches SET acked = 1, imported = ?, acked_at = ? "
            "WHERE spool_id = ? AND seq = ?",
            (imported, time.time(), spool_id, seq),
        )

    def record_phase(
        self,
        run_id: str,
        phase: str,
        started_at: float,
        ended_at: float | None = None,
        ok: bool | None = None,
    ) -> None:
        """Insert or update one phase of a run."""
        self._db().execute(
            "INSERT INTO run_phases (run_id, phase, started_at, ended_at, ok) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(run_id, phase) DO UPDATE SET "
            "ended_at = excluded.ended_at, ok = excluded.ok",
            (run_id, phase, started_at, ended_at, None if ok is None else int(ok)),
        )

    def phases(self, run_id: str) -> list[dict[str, Any]]:
        """Return the run's phases in the order they began."""
        rows = self._db().execute(
            "SELECT phase, started_at, ended_at, ok FROM run_phases WHERE run_id = ? "
            "ORDER BY started_at",
            (run_id,),
        )
        return [
            {
                "phase": r["phase"],
                "started_at": r["started_at"],
                "ended_at": r["ended_at"],
                "ok": None if r["ok"] is None else bool(r["ok"]),
            }
            for r in rows
        ]

    def acks(self, spool_id: str, since: float = 0.0) -> list[tuple[float, int]]:
        """Return (time, records) of the spool's batches acknowledged since ``since``
        (its partitions' too)."""
        rows = self._db().execute(
            f"SELECT acked_at, imported FROM batches WHERE {_WITH_PARTITIONS} AND acked = 1 "
            "AND acked_at >= ? ORDER BY acked_at",
            (*_with_partitions(spool_id), since),
        )
        return [(float(r[0]), int(r[1])) for r in rows]

    def split_batch(self, spool_id: str, seq: int, parts: list[BatchRef]) -> None:
        """Replace batch ``seq`` by ``parts`` in one transaction: either the batch or its
        parts are there to send, never both and never neither."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO batches (spool_id, seq, kind, count, path) "
                "VALUES (?,?,?,?,?)",
                [(spool_id, p.seq, p.kind, p.count, str(p.path)) for p in parts],
            )
            db.execute("DELETE FROM batches WHERE spool_id = ? AND seq = ?", (spool_id, seq))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def unacked_batches(self, spool_id: str) -> list[BatchRef]:
        """Return the batches still to send, in order."""
        rows = self._db().execute(
            "SELECT seq, kind, count, path FROM batches WHERE spool_id = ? AND acked = 0 "
            "ORDER BY seq",
            (spool_id,),
        )
        return [BatchRef(r["seq"], r["kind"], r["count"], Path(r["path"])) for r in rows]

    def acked_totals(self, spool_id: str) -> tuple[int, int]:
        """Return (acknowledged batches, records they imported), its partitions' too."""
        row = (
            self._db()
            .execute(
                "SELECT COUNT(*), COALESCE(SUM(imported), 0) FROM batches "
                f"WHERE {_WITH_PARTITIONS} AND acked = 1",
                _with_partitions(spool_id),
            )
            .fetchone()
        )
        return int(row[0]), int(row[1])

    def resume_point(self, source: str) -> ResumePoint | None:
        """Return the newest unfinished, unpublished version of the source, if any."""
        row = (
            self._db()
            .execute(
                "SELECT * FROM runs WHERE source = ? AND version_id IS NOT NULL "
                "AND spool_id IS NOT NULL ORDER BY started_at DESC LIMIT 1",
                (source,),
            )
            .fetchone()
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
        rows = self._db().execute(
            "SELECT version_id FROM runs WHERE dataset_id = ? AND status = 'running' "
            "AND version_id IS NOT NULL",
            (dataset_id,),
        )
        return {row[0] for row in rows}

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """Return one run as :meth:`list_runs` shows it, or None."""
        rows = self._db().execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        found = self._shown(rows)
        return found[0] if found else None

    def list_runs(self, source: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return runs, newest first, as dicts."""
        where, args = ("WHERE source = ?", (source,)) if source else ("", ())
        rows = self._db().execute(
            f"SELECT * FROM runs {where} ORDER BY started_at DESC LIMIT ?", (*args, limit)
        )
        return self._shown(rows)

    def _shown(self, rows: Any) -> list[dict[str, Any]]:
        result = []
        for row in rows:
            data = dict(row)
            data["error"] = _redacted(data["error"])  # also a row written before the fix
            if data["status"] == "running" and data["spool_id"]:
                # Counts are written at the end of a run: show what is acknowledged so far.
                data["batches"], data["imported"] = self.acked_totals(data["spool_id"])
            end = data["ended_at"]
            data["duration"] = round(end - data["started_at"], 3) if end else None
            result.append(data)
        return result


#: A spool's batches and those of its partitions (spool ids ``SPOOL@pNNN``).
_WITH_PARTITIONS = "(spool_id = ? OR (spool_id >= ? AND spool_id < ?))"


def _with_partitions(spool_id: str) -> tuple[str, str, str]:
    return spool_id, f"{spool_id}@p", f"{spool_id}@q"


def _redacted(error: str | None) -> str | None:
    """An error message without secrets, as the ledger stores and returns it."""
    return redact(error) if error else error
