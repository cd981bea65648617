"""The shared database's schema, created and migrated by mpconnect itself.

Migrations are numbered and applied in order, each in its own transaction, and recorded
in ``mpconnect_migrations``; applying them again does nothing. Two processes that start
at once (two workers) serialise on a transaction-level advisory lock, so each migration
runs exactly once. A database migrated by a newer mpconnect (a version this one does not
know) is refused with the fix, rather than written to under an older schema.

Later parts add their tables as further migrations at the end of :data:`MIGRATIONS`
(version 3: the incremental state and the source-object cache; version 4: the
partitions of a distributed run; version 5: their quarantined records); never edit a
released one.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from mpconnect.distributed.connection import Database, SharedDatabaseError, describe

#: Key of the advisory lock migrations take (any constant; "mpconnect" in ASCII).
MIGRATION_LOCK = 0x6D70636F6E6E6563

#: (version, what it does, SQL), oldest first.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "run ledger: runs, batches, run phases",
        """
        CREATE TABLE runs (
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
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            read BIGINT NOT NULL DEFAULT 0,
            imported BIGINT NOT NULL DEFAULT 0,
            quarantined BIGINT NOT NULL DEFAULT 0,
            retries BIGINT NOT NULL DEFAULT 0,
            batches BIGINT NOT NULL DEFAULT 0,
            resumed INTEGER NOT NULL DEFAULT 0,
            extraction_done INTEGER NOT NULL DEFAULT 0,
            published INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            quarantine_file TEXT,
            target TEXT,
            resume_key TEXT,
            duplicates BIGINT NOT NULL DEFAULT 0,
            throttled BIGINT NOT NULL DEFAULT 0,
            uploaded_bytes BIGINT NOT NULL DEFAULT 0
        );
        CREATE INDEX runs_by_source ON runs (source, started_at);
        CREATE INDEX runs_by_dataset ON runs (dataset_id, status);
        CREATE TABLE batches (
            spool_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            count INTEGER NOT NULL,
            path TEXT NOT NULL,
            acked INTEGER NOT NULL DEFAULT 0,
            imported INTEGER NOT NULL DEFAULT 0,
            acked_at DOUBLE PRECISION,
            PRIMARY KEY (spool_id, seq)
        );
        CREATE TABLE run_phases (
            run_id TEXT NOT NULL,
            phase TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            ok INTEGER,
            PRIMARY KEY (run_id, phase)
        );
        """,
    ),
    (
        2,
        "locks and dispatches: who holds a source, what was enqueued and how it ended",
        """
        CREATE TABLE source_locks (
            source TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            dispatch_id TEXT,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            backend_pid INTEGER NOT NULL,
            since DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE dispatches (
            dispatch_id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            due TEXT,
            state TEXT NOT NULL,
            requested_at DOUBLE PRECISION NOT NULL,
            requested_by TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            worker TEXT,
            run_id TEXT,
            started_at DOUBLE PRECISION,
            heartbeat DOUBLE PRECISION,
            ended_at DOUBLE PRECISION,
            summary TEXT,
            error TEXT
        );
        CREATE UNIQUE INDEX dispatches_once_per_due ON dispatches (source, due)
            WHERE due IS NOT NULL;
        CREATE INDEX dispatches_by_state ON dispatches (state, requested_at);
        CREATE TABLE leaders (
            role TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            since DOUBLE PRECISION NOT NULL
        );
        """,
    ),
    (
        3,
        "incremental state and the source-object cache, staged per extraction",
        """
        CREATE TABLE source_state (
            source TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            run_id TEXT NOT NULL,
            committed_at DOUBLE PRECISION NOT NULL,
            last_run TEXT
        );
        CREATE TABLE staged_state (
            source TEXT NOT NULL,
            spool_id TEXT NOT NULL,
            state TEXT NOT NULL,
            last_run TEXT,
            staged_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (source, spool_id)
        );
        CREATE TABLE cache_meta (
            source TEXT PRIMARY KEY,
            committed_at DOUBLE PRECISION NOT NULL,
            target TEXT
        );
        CREATE TABLE cache_objects (
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            object_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            kind TEXT NOT NULL,
            hash BYTEA NOT NULL,
            data BYTEA NOT NULL,
            PRIMARY KEY (source, stream, object_id, seq)
        );
        CREATE TABLE cache_extractions (
            source TEXT NOT NULL,
            spool_id TEXT NOT NULL,
            full_read BOOLEAN NOT NULL,
            staged BOOLEAN NOT NULL DEFAULT FALSE,
            target TEXT,
            begun_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (source, spool_id)
        );
        CREATE TABLE cache_pending (
            source TEXT NOT NULL,
            spool_id TEXT NOT NULL,
            stream TEXT NOT NULL,
            object_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            kind TEXT NOT NULL,
            hash BYTEA NOT NULL,
            data BYTEA NOT NULL,
            PRIMARY KEY (source, spool_id, stream, object_id, seq)
        );
        CREATE TABLE cache_pending_deleted (
            source TEXT NOT NULL,
            spool_id TEXT NOT NULL,
            stream TEXT NOT NULL,
            object_id TEXT NOT NULL,
            PRIMARY KEY (source, spool_id, stream, object_id)
        );
        """,
    ),
    (
        4,
        "partitions of a distributed run, with a lease per partition, and batch digests",
        """
        CREATE TABLE partitions (
            spool_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            key TEXT NOT NULL,
            spec TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            read BIGINT NOT NULL DEFAULT 0,
            quarantined BIGINT NOT NULL DEFAULT 0,
            duplicates BIGINT NOT NULL DEFAULT 0,
            retries BIGINT NOT NULL DEFAULT 0,
            throttled BIGINT NOT NULL DEFAULT 0,
            uploaded_bytes BIGINT NOT NULL DEFAULT 0,
            worker TEXT,
            heartbeat DOUBLE PRECISION,
            started_at DOUBLE PRECISION,
            ended_at DOUBLE PRECISION,
            error TEXT,
            PRIMARY KEY (spool_id, idx)
        );
        CREATE TABLE batch_digests (
            spool_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (spool_id, seq)
        );
        """,
    ),
    (
        5,
        "quarantined records of each partition, kept for the run's coordinator",
        """
        CREATE TABLE partition_quarantine (
            spool_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            seq BIGINT NOT NULL,
            line BYTEA NOT NULL,
            PRIMARY KEY (spool_id, idx, seq)
        );
        """,
    ),
]


_migrated: set[str] = set()
_migrated_guard = threading.Lock()


def ensure_migrated(target: str | Database) -> None:
    """Migrate the database (a URL or a :class:`Database`) once per process: workers and
    locks call it for every run, and only the first call in a process does any work."""
    url = target if isinstance(target, str) else target.url
    with _migrated_guard:
        if url in _migrated:
            return
    if isinstance(target, Database):
        migrate(target)
        return
    database = Database(url)
    try:
        migrate(database)
    finally:
        database.close()


def migrate(database: Database) -> int:
    """Create or migrate the schema; return the version the database is at.

    :raises SharedDatabaseError: when the database is newer than this mpconnect.
    """
    version = database.call(_migrate)
    with _migrated_guard:
        _migrated.add(database.url)
    return version


def _migrate(db: psycopg.Connection[Any]) -> int:
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute(
            "CREATE TABLE IF NOT EXISTS mpconnect_migrations ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        row = db.execute("SELECT COALESCE(MAX(version), 0) AS v FROM mpconnect_migrations")
        current = int(row.fetchone()["v"])  # type: ignore[index]
        known = MIGRATIONS[-1][0]
        if current > known:
            raise SharedDatabaseError(
                f"the shared database {describe(db.info.dsn)} is at schema version {current}, "
                f"newer than this mpconnect knows ({known}); upgrade mpconnect on this machine"
            )
        for version, description, sql in MIGRATIONS:
            if version > current:
                db.execute(sql.encode())
                db.execute(
                    "INSERT INTO mpconnect_migrations (version, description) VALUES (%s, %s)",
                    (version, description),
                )
                current = version
    return current
