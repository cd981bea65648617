"""The source-object cache in the shared PostgreSQL database: the :class:`ObjectCache` of
every worker (and of ``mpconnect run`` when ``[distributed]`` is configured), so that an
incremental run on any machine completes its snapshot from what earlier runs read.

The same semantics as :class:`~mpconnect.engine.object_cache.SqliteObjectCache`, with
every source's rows in the same tables under a ``source`` column: pending rows are
written under the extraction's spool id (chunks of the engine's size, one transaction
each, sent again whole if the connection is lost: every write is an upsert); the commit
applies the staged rows in one transaction and records it in ``cache_meta``; a second
commit finds nothing staged. :meth:`PostgresObjectCache.unchanged` streams through a
server-side cursor on a connection of its own (the extraction goes on writing), a chunk
at a time: memory stays flat however large the cache; a connection lost mid-stream is
reopened and the stream goes on after the last row given (keyset on the key order).

"Damaged" is a cached record that cannot be decoded (the engine then resets the
source's cache and the run fails, as with SQLite); :attr:`damaged` is never set, since
there is no file to move aside, and an unreachable database fails the run instead of
reading everything.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg

from mpconnect.distributed.connection import (
    Database,
    DatabaseUnreachable,
    SharedDatabaseError,
    connect,
    describe,
    is_connection_lost,
)
from mpconnect.distributed.schema import ensure_migrated
from mpconnect.engine.object_cache import CacheRow, ObjectCache
from mpconnect.redact import redact

log = logging.getLogger("mpconnect.distributed")

_CHUNK = 2000
_COLUMNS = "stream, object_id, seq, kind, hash, data"
# Constants for source and spool id, so the planner probes the pending tables' primary
# keys with all four columns even before the tables were ever analysed.
_NOT_REPLACED = """
NOT EXISTS (SELECT 1 FROM cache_pending p WHERE p.source = %(source)s
            AND p.spool_id = %(spool)s AND p.stream = o.stream AND p.object_id = o.object_id)
AND NOT EXISTS (SELECT 1 FROM cache_pending_deleted d WHERE d.source = %(source)s
            AND d.spool_id = %(spool)s AND d.stream = o.stream AND d.object_id = o.object_id)
"""
# The anti-joins with the pending tables must not be nested loops: before the tables are
# analysed, the planner takes them for one row each and probes every cached row against
# every pending one. Merge joins walk both primary keys in (stream, object_id) order.
_MERGE_JOINS = ("SET LOCAL enable_nestloop = off", "SET LOCAL enable_hashjoin = off")
_PENDING_TABLES = ("cache_pending", "cache_pending_deleted", "cache_extractions")


class PostgresObjectCache(ObjectCache):
    """The cache of one source in the shared database.

    :param database: the shared database: a URL (the cache opens and closes its own
        connections) or a :class:`Database` whose owner closes it.
    :param source: the source's name.
    """

    #: Never set (see the module's docstring).
    damaged: str | None = None

    def __init__(self, database: Database | str, source: str) -> None:
        self._owned = isinstance(database, str)
        self.database = Database(database) if isinstance(database, str) else database
        self.source = source
        ensure_migrated(self.database)

    def __repr__(self) -> str:
        return f"PostgresObjectCache({self.database!r}, {self.source!r})"

    def _one(self, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
        return self.database.call(
            lambda db: db.execute(sql, {"source": self.source, **params}).fetchone()
        )

    def exists(self) -> bool:
        """True when a complete read was committed."""
        return self._one("SELECT 1 FROM cache_meta WHERE source = %(source)s", {}) is not None

    def target(self) -> str | None:
        """The destination of the last commit."""
        row = self._one("SELECT target FROM cache_meta WHERE source = %(source)s", {})
        return None if row is None or row["target"] is None else str(row["target"])

    def begin(self, spool_id: str, full: bool, target: str | None = None) -> None:
        """Start an extraction's pending changes, dropping any other's."""

        def work(db: psycopg.Connection[Any]) -> None:
            self._discard(db, None)
            db.execute(
                "INSERT INTO cache_extractions (source, spool_id, full_read, staged, target, "
                "begun_at) VALUES (%s, %s, %s, FALSE, %s, %s)",
                (self.source, spool_id, full, target, time.time()),
            )

        self.database.transaction(work)

    def put(self, spool_id: str, rows: list[CacheRow]) -> None:
        """Add records read, in one transaction."""
        values = [(self.source, spool_id, *row) for row in rows]

        def work(db: psycopg.Connection[Any]) -> None:
            with db.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO cache_pending (source, spool_id, {_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (source, spool_id, stream, object_id, seq) DO UPDATE SET "
                    "kind = excluded.kind, hash = excluded.hash, data = excluded.data",
                    values,
                )

        self.database.transaction(work)

    def delete(self, spool_id: str, stream: str, object_id: str) -> None:
        """Record a deletion."""
        self.database.execute(
            "INSERT INTO cache_pending_deleted (source, spool_id, stream, object_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (self.source, spool_id, stream, object_id),
        )

    def known(self, stream: str, object_id: str, digest: bytes) -> bool:
        """True when the committed object has a record with this hash."""
        row = self._one(
            "SELECT 1 FROM cache_objects WHERE source = %(source)s AND stream = %(stream)s "
            "AND object_id = %(id)s AND hash = %(hash)s LIMIT 1",
            {"stream": stream, "id": object_id, "hash": digest},
        )
        return row is not None

    def committed(self, stream: str, object_id: str) -> list[CacheRow]:
        """The committed records of one object."""
        rows = self.database.fetchall(
            f"SELECT {_COLUMNS} FROM cache_objects WHERE source = %s AND stream = %s "
            "AND object_id = %s ORDER BY seq",
            (self.source, stream, object_id),
        )
        return [CacheRow(**row) for row in rows]

    def _full(self, spool_id: str) -> bool | None:
        row = self._one(
            "SELECT full_read FROM cache_extractions WHERE source = %(source)s "
            "AND spool_id = %(spool)s",
            {"spool": spool_id},
        )
        return None if row is None else bool(row["full_read"])

    def unchanged(
        self, spool_id: str, stream: str | None = None, kind: str | None = None
    ) -> Iterator[CacheRow]:
        """Stream the committed records not replaced or deleted, through a server-side
        cursor on a connection of its own, :data:`_CHUNK` rows at a time. A lost connection
        is reopened (for the database's ``reconnect_for`` seconds) and the stream goes on
        after the last row it gave."""
        if self._full(spool_id):
            return
        where = ["o.source = %(source)s", _NOT_REPLACED]
        if stream is not None:
            where.append("o.stream = %(stream)s")
        if kind is not None:
            where.append("o.kind = %(kind)s")
        params: dict[str, Any] = {
            "source": self.source,
            "spool": spool_id,
            "stream": stream,
            "kind": kind,
        }
        last: CacheRow | None = None
        deadline, wait = 0.0, 0.2
        while True:
            query = list(where)
            if last is not None:
                query.append("(o.stream, o.object_id, o.seq) > (%(s)s, %(o)s, %(q)s)")
                params.update(s=last.stream, o=last.object_id, q=last.seq)
            try:
                for row in self._read(" AND ".join(query), params):
                    last, deadline = row, 0.0
                    yield row
                return
            except (psycopg.Error, DatabaseUnreachable) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                lost = isinstance(exc, DatabaseUnreachable) or is_connection_lost(exc)
                deadline = deadline or time.monotonic() + self.database.reconnect_for
                if not lost or time.monotonic() >= deadline:
                    raise SharedDatabaseError(
                        f"reading the source-object cache of {self.source!r} from the shared "
                        f"database {describe(self.database.url)} failed: {redact(reason)}"
                    ) from None
                log.warning("shared database connection lost (%s); reconnecting", redact(reason))
                time.sleep(wait)
                wait = min(wait * 2, 2.0)

    def _read(self, where: str, params: dict[str, Any]) -> Iterator[CacheRow]:
        reader = connect(self.database.url)
        try:
            with (
                reader.transaction(),
                reader.cursor(f"mpconnect_unchanged_{uuid.uuid4().hex}") as cursor,
            ):
                for setting in _MERGE_JOINS:
                    reader.execute(setting)
                cursor.itersize = _CHUNK
                cursor.execute(
                    "SELECT o.stream, o.object_id, o.seq, o.kind, o.hash, o.data "
                    f"FROM cache_objects o WHERE {where} ORDER BY o.stream, o.object_id, o.seq",
                    params,
                )
                while True:
                    chunk = cursor.fetchmany(_CHUNK)
                    if not chunk:
                        break
                    for row in chunk:
                        yield CacheRow(**row)
        finally:
            with contextlib.suppress(psycopg.Error):
                reader.close()

    def stage(self, spool_id: str) -> None:
        """Mark the pending changes complete."""
        self.database.execute(
            "UPDATE cache_extractions SET staged = TRUE WHERE source = %s AND spool_id = %s",
            (self.source, spool_id),
        )

    def counts(self, spool_id: str) -> dict[str, int]:
        """What the extraction read, changed and deleted, and what stays cached."""
        return self.database.transaction(lambda db: self._counts(db, spool_id))

    def _counts(self, db: psycopg.Connection[Any], spool_id: str) -> dict[str, int]:
        params = {"source": self.source, "spool": spool_id}

        def count(sql: str) -> int:
            row = db.execute(sql, params).fetchone()
            return int(row["n"]) if row else 0

        read = count(
            "SELECT count(*) AS n FROM (SELECT DISTINCT stream, object_id FROM cache_pending "
            "WHERE source = %(source)s AND spool_id = %(spool)s) AS r"
        )
        if (
            count(
                "SELECT count(*) AS n FROM (SELECT 1 FROM cache_objects "
                "WHERE source = %(source)s LIMIT 1) AS one"
            )
            == 0
        ):
            return {"read": read, "changed": read, "deleted": 0, "cached": 0}
        changed = count(
            "SELECT count(*) AS n FROM (SELECT DISTINCT p.stream, p.object_id FROM cache_pending p "
            "WHERE p.source = %(source)s AND p.spool_id = %(spool)s AND NOT EXISTS (SELECT 1 "
            "FROM cache_objects o WHERE o.source = %(source)s AND o.stream = p.stream "
            "AND o.object_id = p.object_id AND o.hash = p.hash)) AS c"
        )
        deleted = count(
            "SELECT count(*) AS n FROM cache_pending_deleted d WHERE d.source = %(source)s "
            "AND d.spool_id = %(spool)s AND EXISTS (SELECT 1 FROM cache_objects o WHERE "
            "o.source = %(source)s AND o.stream = d.stream AND o.object_id = d.object_id)"
        )
        full = db.execute(
            "SELECT full_read FROM cache_extractions WHERE source = %(source)s "
            "AND spool_id = %(spool)s",
            params,
        ).fetchone()
        cached = 0
        if full is not None and not full["full_read"]:
            for setting in _MERGE_JOINS:  # the pending rows' probes above are nested loops
                db.execute(setting)
            cached = count(
                "SELECT count(*) AS n FROM (SELECT DISTINCT o.stream, o.object_id "
                f"FROM cache_objects o WHERE o.source = %(source)s AND {_NOT_REPLACED}) AS k"
            )
        return {"read": read, "changed": changed, "deleted": deleted, "cached": cached}

    def commit(self, spool_id: str) -> bool:
        """Apply the staged changes atomically (idempotent)."""
        source = self.source

        def work(db: psycopg.Connection[Any]) -> bool:
            row = db.execute(
                "SELECT full_read, target FROM cache_extractions WHERE source = %s "
                "AND spool_id = %s AND staged FOR UPDATE",
                (source, spool_id),
            ).fetchone()
            if row is None:
                return False
            if row["full_read"]:
                db.execute("DELETE FROM cache_objects WHERE source = %s", (source,))
            else:
                for table in ("cache_pending", "cache_pending_deleted"):
                    db.execute(
                        "DELETE FROM cache_objects o USING (SELECT DISTINCT stream, object_id "
                        f"FROM {table} WHERE source = %s AND spool_id = %s) AS r "
                        "WHERE o.source = %s AND o.stream = r.stream AND o.object_id = r.object_id",
                        (source, spool_id, source),
                    )
            db.execute(
                f"INSERT INTO cache_objects (source, {_COLUMNS}) SELECT source, {_COLUMNS} "
                "FROM cache_pending WHERE source = %s AND spool_id = %s "
                "ON CONFLICT (source, stream, object_id, seq) DO UPDATE SET kind = excluded.kind, "
                "hash = excluded.hash, data = excluded.data",
                (source, spool_id),
            )
            for table in _PENDING_TABLES:
                db.execute(
                    f"DELETE FROM {table} WHERE source = %s AND spool_id = %s", (source, spool_id)
                )
            db.execute(
                "INSERT INTO cache_meta (source, committed_at, target) VALUES (%s, %s, %s) "
                "ON CONFLICT (source) DO UPDATE SET committed_at = excluded.committed_at, "
                "target = excluded.target",
                (source, time.time(), row["target"]),
            )
            return True

        return self.database.transaction(work)

    def _discard(self, db: psycopg.Connection[Any], keep: str | None) -> None:
        for table in _PENDING_TABLES:
            db.execute(
                f"DELETE FROM {table} WHERE source = %s AND spool_id IS DISTINCT FROM %s",
                (self.source, keep),
            )

    def discard(self, keep: str | None = None) -> None:
        """Drop other extractions' pending changes."""
        self.database.transaction(lambda db: self._discard(db, keep))

    def reset(self) -> None:
        """Forget everything of this source."""

        def work(db: psycopg.Connection[Any]) -> None:
            for table in ("cache_objects", *_PENDING_TABLES, "cache_meta"):
                db.execute(f"DELETE FROM {table} WHERE source = %s", (self.source,))

        self.database.transaction(work)

    def stats(self) -> dict[str, int]:
        """Committed objects and records, pending rows."""
        row = self._one(
            "SELECT (SELECT count(*) FROM (SELECT DISTINCT stream, object_id FROM cache_objects "
            "WHERE source = %(source)s) AS d) AS objects, "
            "(SELECT count(*) FROM cache_objects WHERE source = %(source)s) AS records, "
            "(SELECT count(*) FROM cache_pending WHERE source = %(source)s) AS pending",
            {},
        )
        assert row is not None
        return {key: int(row[key]) for key in ("objects", "records", "pending")}

    def close(self) -> None:
        """Close the cache's connections (when it opened them)."""
        if self._owned:
            self.database.close()
