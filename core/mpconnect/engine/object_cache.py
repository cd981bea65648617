"""The source-object cache of incremental runs: the records each source object produced,
so that a complete snapshot is built without reading unchanged objects again.

:class:`ObjectCache` is the interface, one instance per source; :class:`SqliteObjectCache`
keeps it in ``$MPCONNECT_HOME/cache/SOURCE.sqlite3``. Rows are keyed by ``(stream,
object_id, seq)``: one row per record an object produced, with the record's content hash
and its data (the connector's record before any transform, see
:mod:`mpconnect.engine.cached_records`).

A run writes *pending* rows under its spool id as it reads (the records of new and
changed objects, and deletions); the snapshot is the committed rows overridden by the
pending ones. :meth:`ObjectCache.commit` applies the pending rows in one transaction: a
full read replaces every committed row, an incremental one replaces the rows of the
objects it read and removes the deleted ones. Nothing is ever loaded whole: rows are
written in chunks and read through cursors.

In SQLite, an incremental read's rows go to the ``pending`` table; a full read's go to a
fresh table of their own that the commit renames to ``objects``
(:mod:`mpconnect.engine.object_cache_load`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from mpconnect.disk import FileProblem
from mpconnect.engine import object_cache_load as load
from mpconnect.errors import MpconnectError
from mpconnect.sqlite import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS objects (
    stream TEXT NOT NULL, object_id TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, hash BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (stream, object_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    spool_id TEXT NOT NULL, stream TEXT NOT NULL, object_id TEXT NOT NULL,
    seq INTEGER NOT NULL, kind TEXT NOT NULL, hash BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (spool_id, stream, object_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_deleted (
    spool_id TEXT NOT NULL, stream TEXT NOT NULL, object_id TEXT NOT NULL,
    PRIMARY KEY (spool_id, stream, object_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_runs (
    spool_id TEXT PRIMARY KEY, full INTEGER NOT NULL, staged INTEGER NOT NULL DEFAULT 0,
    target TEXT
);
"""

_NOT_REPLACED = """
NOT EXISTS (SELECT 1 FROM pending p
            WHERE p.spool_id = :spool AND p.stream = o.stream AND p.object_id = o.object_id)
AND NOT EXISTS (SELECT 1 FROM pending_deleted d
            WHERE d.spool_id = :spool AND d.stream = o.stream AND d.object_id = o.object_id)
"""
_CHUNK = 2000


class CacheRow(NamedTuple):
    """One record of one source object: ``kind`` is ``"e"`` (event) or ``"p"`` (profile)."""

    stream: str
    object_id: str
    seq: int
    kind: str
    hash: bytes
    data: bytes


class CacheDamaged(MpconnectError):
    """The cache cannot be read; the next run reads everything and rebuilds it."""


class ObjectCache(ABC):
    """The source-object cache of one source. ``spool_id`` names one extraction's pending
    changes (a run that resumes the spool commits them)."""

    @abstractmethod
    def exists(self) -> bool:
        """True when the cache holds the committed snapshot of a complete read."""

    @abstractmethod
    def target(self) -> str | None:
        """The destination the committed snapshot was last sent to (see :meth:`begin`)."""

    @abstractmethod
    def begin(self, spool_id: str, full: bool, target: str | None = None) -> None:
        """Start the pending changes of an extraction (``full``: they replace everything),
        dropping any other extraction's. ``target`` names the destination the run sends to
        (sink, where, dataset, token); the commit records it, so that a run into another
        destination knows the cache says nothing of what that one holds."""

    @abstractmethod
    def put(self, spool_id: str, rows: list[CacheRow]) -> None:
        """Add records read by the extraction (all records of an object replace its
        committed ones)."""

    @abstractmethod
    def delete(self, spool_id: str, stream: str, object_id: str) -> None:
        """Record that an object is gone from the source."""

    @abstractmethod
    def known(self, stream: str, object_id: str, digest: bytes) -> bool:
        """True when the committed snapshot has this record of this object already."""

    @abstractmethod
    def committed(self, stream: str, object_id: str) -> list[CacheRow]:
        """The committed records of one object."""

    @abstractmethod
    def unchanged(
        self, spool_id: str, stream: str | None = None, kind: str | None = None
    ) -> Iterator[CacheRow]:
        """Stream the committed records of objects the extraction has not replaced or
        deleted (so far), of one stream and/or kind if given, in key order."""

    @abstractmethod
    def stage(self, spool_id: str) -> None:
        """Mark the extraction's pending changes complete: ready to commit."""

    @abstractmethod
    def counts(self, spool_id: str) -> dict[str, int]:
        """Objects ``read``, ``changed`` (new or different), ``deleted`` and ``cached``
        (committed, neither replaced nor deleted) by the extraction."""

    @abstractmethod
    def commit(self, spool_id: str) -> bool:
        """Apply the staged changes in one transaction; False when none were staged
        (committed already or dropped). Idempotent."""

    @abstractmethod
    def discard(self, keep: str | None = None) -> None:
        """Drop pending changes of every extraction but ``keep``'s."""

    @abstractmethod
    def reset(self) -> None:
        """Forget everything: the next run reads everything."""

    @abstractmethod
    def stats(self) -> dict[str, int]:
        """``objects`` and ``records`` committed, ``pending`` rows."""

    def close(self) -> None:
        """Release connections."""


class SqliteObjectCache(ObjectCache):
    """The cache of one source in one SQLite file.

    A damaged file is moved aside (``SOURCE.sqlite3.damaged-TIME``) and a new, empty one
    started; :attr:`damaged` says so, and the run reads everything.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        #: Set when the file was damaged and moved aside: the message for the run.
        self.damaged: str | None = None
        try:
            db = self._db()
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM meta").fetchone()
        except (FileProblem, sqlite3.DatabaseError) as exc:
            self.close()
            moved = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            path.rename(moved)
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            self.damaged = (
                f"the source-object cache {path} could not be read "
                f"({str(exc).splitlines()[0]}); moved it to {moved}"
            )
            self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, "source-object cache")
            self._local.db = db
        return db

    def exists(self) -> bool:
        """True when a complete read was committed."""
        row = self._db().execute("SELECT value FROM meta WHERE key = 'committed'").fetchone()
        return row is not None

    def target(self) -> str | None:
        """The destination of the last commit."""
        row = self._db().execute("SELECT value FROM meta WHERE key = 'target'").fetchone()
        return None if row is None else str(row[0])

    def begin(self, spool_id: str, full: bool, target: str | None = None) -> None:
        """Start an extraction's pending changes (a full read's in a fresh table)."""
        self.discard()
        db = self._db()
        if full:
            load.create(db, load.fresh_table(spool_id))
        db.execute("INSERT INTO pending_runs VALUES (?, ?, 0, ?)", (spool_id, int(full), target))

    def _fresh(self, spool_id: str) -> str | None:
        """The extraction's fresh table, when it is a full read that has one."""
        db = self._db()
        row = db.execute("SELECT full FROM pending_runs WHERE spool_id = ?", (spool_id,))
        full = row.fetchone()
        if full is None or not full[0]:
            return None
        table = load.fresh_table(spool_id)
        return table if load.has_table(db, table) else None

    def put(self, spool_id: str, rows: list[CacheRow]) -> None:
        """Add records read, in one transaction."""
        db = self._db()
        fresh = self._fresh(spool_id)
        if fresh is not None:
            load.append(db, fresh, rows)
            return
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((spool_id, *row) for row in rows),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def append_file(self, spool_id: str, path: Path, offset: int) -> int:
        """Add the rows a partition of a full read kept in its own file (see
        :func:`~mpconnect.engine.object_cache_load.append_file`); return its highest seq."""
        fresh = self._fresh(spool_id)
        if fresh is None:
            raise MpconnectError(f"extraction {spool_id} is not a full read of the cache")
        return load.append_file(self._db(), fresh, path, offset)

    def delete(self, spool_id: str, stream: str, object_id: str) -> None:
        """Record a deletion."""
        self._db().execute(
            "INSERT OR IGNORE INTO pending_deleted VALUES (?, ?, ?)", (spool_id, stream, object_id)
        )

    def known(self, stream: str, object_id: str, digest: bytes) -> bool:
        """True when the committed object has a record with this hash."""
        row = (
            self._db()
            .execute(
                "SELECT 1 FROM objects WHERE stream = ? AND object_id = ? AND hash = ? LIMIT 1",
                (stream, object_id, digest),
            )
            .fetchone()
        )
        return row is not None

    def committed(self, stream: str, object_id: str) -> list[CacheRow]:
        """The committed records of one object."""
        rows = self._db().execute(
            "SELECT stream, object_id, seq, kind, hash, data FROM objects "
            "WHERE stream = ? AND object_id = ? ORDER BY seq",
            (stream, object_id),
        )
        return [CacheRow(*row) for row in rows]

    def unchanged(
        self, spool_id: str, stream: str | None = None, kind: str | None = None
    ) -> Iterator[CacheRow]:
        """Stream the committed records not replaced or deleted, through a connection of
        its own (the extraction goes on writing)."""
        full = (
            self._db()
            .execute("SELECT full FROM pending_runs WHERE spool_id = ?", (spool_id,))
            .fetchone()
        )
        if full is not None and full[0]:
            return
        where = [_NOT_REPLACED]
        if stream is not None:
            where.append("o.stream = :stream")
        if kind is not None:
            where.append("o.kind = :kind")
        reader = connect(self.path, "source-object cache")
        try:
            cursor = reader.execute(
                "SELECT o.stream, o.object_id, o.seq, o.kind, o.hash, o.data FROM objects o "
                f"WHERE {' AND '.join(where)} ORDER BY o.stream, o.object_id, o.seq",
                {"spool": spool_id, "stream": stream, "kind": kind},
            )
            while True:
                chunk = cursor.fetchmany(_CHUNK)
                if not chunk:
                    break
                for row in chunk:
                    yield CacheRow(*row)
        finally:
            reader.close()

    def stage(self, spool_id: str) -> None:
        """Mark the pending changes complete (a full read's fresh table indexed)."""
        db = self._db()
        fresh = self._fresh(spool_id)
        if fresh is not None:
            load.build_index(db, fresh)
            load.durable(db)
        db.execute("UPDATE pending_runs SET staged = 1 WHERE spool_id = ?", (spool_id,))

    def counts(self, spool_id: str) -> dict[str, int]:
        """What the extraction read, changed and deleted, and what stays cached."""
        db = self._db()
        params = {"spool": spool_id}
        fresh = self._fresh(spool_id)
        if fresh is not None:
            load.build_index(db, fresh)  # the counts walk its key
            pending = f"(SELECT stream, object_id, hash FROM {fresh})"
        else:
            pending = "(SELECT stream, object_id, hash FROM pending WHERE spool_id = :spool)"
        read = db.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT stream, object_id FROM {pending})", params
        ).fetchone()[0]
        if db.execute("SELECT 1 FROM objects LIMIT 1").fetchone() is None:
            return {"read": read, "changed": read, "deleted": 0, "cached": 0}
        changed = db.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT p.stream, p.object_id FROM {pending} p "
            "WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE "
            "o.stream = p.stream AND o.object_id = p.object_id AND o.hash = p.hash))",
            params,
        ).fetchone()[0]
        deleted = db.execute(
            "SELECT count(*) FROM pending_deleted d WHERE d.spool_id = :spool AND EXISTS "
            "(SELECT 1 FROM objects o WHERE o.stream = d.stream AND o.object_id = d.object_id)",
            params,
        ).fetchone()[0]
        full = db.execute("SELECT full FROM pending_runs WHERE spool_id = :spool", params)
        row = full.fetchone()
        cached = 0
        if row is not None and not row[0]:
            cached = db.execute(
                "SELECT count(*) FROM (SELECT DISTINCT stream, object_id FROM objects o "
                f"WHERE {_NOT_REPLACED})",
                params,
            ).fetchone()[0]
        return {"read": read, "changed": changed, "deleted": deleted, "cached": cached}

    def commit(self, spool_id: str) -> bool:
        """Apply the staged changes atomically."""
        db = self._db()
        load.durable(db)
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT full, target FROM pending_runs WHERE spool_id = ? AND staged = 1",
                (spool_id,),
            ).fetchone()
            fresh = load.fresh_table(spool_id)
            if row is not None and row[0] and load.has_table(db, fresh):
                load.swap_in(db, fresh)
            elif row is not None:
                if row[0]:
                    db.execute("DELETE FROM objects")
                else:
                    for table in ("pending", "pending_deleted"):
                        db.execute(
                            "DELETE FROM objects WHERE (stream, object_id) IN "
                            f"(SELECT stream, object_id FROM {table} WHERE spool_id = ?)",
                            (spool_id,),
                        )
                db.execute(
                    "INSERT OR REPLACE INTO objects SELECT stream, object_id, seq, kind, hash, "
                    "data FROM pending WHERE spool_id = ?",
                    (spool_id,),
                )
            if row is not None:
                # When the table holds only this extraction's rows, a DELETE without WHERE
                # drops its pages at once: half the CPU of deleting rows one by one.
                alone = all(
                    db.execute(f"SELECT {end}(spool_id) FROM pending").fetchone()[0]
                    in (None, spool_id)
                    for end in ("min", "max")
                )
                if alone:
                    db.execute("DELETE FROM pending")
                else:
                    db.execute("DELETE FROM pending WHERE spool_id = ?", (spool_id,))
                for table in ("pending_deleted", "pending_runs"):
                    db.execute(f"DELETE FROM {table} WHERE spool_id = ?", (spool_id,))
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('committed', ?)", (str(time.time()),)
                )
                db.execute("INSERT OR REPLACE INTO meta VALUES ('target', ?)", (row[1],))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return row is not None

    def discard(self, keep: str | None = None) -> None:
        """Drop other extractions' pending changes (and fresh tables)."""
        db = self._db()
        load.drop_fresh(db, () if keep is None else (load.fresh_table(keep),))
        for table in ("pending", "pending_deleted", "pending_runs"):
            db.execute(f"DELETE FROM {table} WHERE spool_id IS NOT ?", (keep,))

    def reset(self) -> None:
        """Forget everything."""
        db = self._db()
        load.drop_fresh(db)
        for table in ("objects", "pending", "pending_deleted", "pending_runs", "meta"):
            db.execute(f"DELETE FROM {table}")

    def stats(self) -> dict[str, int]:
        """Committed objects and records, pending rows."""
        db = self._db()
        return {
            "objects": db.execute(
                "SELECT count(*) FROM (SELECT DISTINCT stream, object_id FROM objects)"
            ).fetchone()[0],
            "records": db.execute("SELECT count(*) FROM objects").fetchone()[0],
            "pending": sum(
                db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("pending", *load.fresh_tables(db))
            ),
        }

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def cache_path(home: Path, source: str) -> Path:
    """Where a source's cache lives."""
    return home / "cache" / f"{source}.sqlite3"
