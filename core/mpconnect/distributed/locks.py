"""Locks in the shared database that die with their holder: one run per source across
every worker (:class:`PostgresSourceLock`), one active scheduler (:class:`LeaderLock`).

Both are PostgreSQL *session* advisory locks (``pg_try_advisory_lock``) held on a
connection of their own. PostgreSQL drops a session's advisory locks when the session
ends, so a holder killed with ``kill -9`` frees its lock as soon as its connection
closes; a holder whose machine vanishes frees it when the server's TCP keepalives give
up on the connection (this session sets them to about a minute). No lease row can be
left behind: nothing needs to expire.

A watchdog thread checks the session every :data:`CHECK_EVERY` seconds. When it was
lost (a PostgreSQL restart), the lock is taken again on a new session only if nobody
took it in between: ``source_locks``/``leaders`` rows name the last holder, and a new
holder always writes its own name there. Otherwise the holder is told (``on_lost``): a
run then stops at its next checkpoint and publishes nothing; a scheduler stops
dispatching until it leads again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from mpconnect.distributed.connection import SharedDatabaseError, connect
from mpconnect.distributed.schema import ensure_migrated
from mpconnect.engine.lock import SourceLock
from mpconnect.errors import RunLocked

log = logging.getLogger("mpconnect.distributed")

#: Seconds between the watchdog's checks of a held lock's session.
CHECK_EVERY = 2.0
_KEEPALIVES = (
    "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3"
)


class _SessionLock:
    """A session advisory lock on its own connection, with a watchdog."""

    def __init__(self, url: str, name: str, table: str, key_column: str, holder: str) -> None:
        self.url = url
        self.name = name
        self.table = table
        self.key_column = key_column
        self.holder = holder
        self.on_lost: Callable[[str], None] | None = None
        self._db: psycopg.Connection[dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.lost = threading.Event()

    def _try(self, db: psycopg.Connection[dict[str, Any]]) -> bool:
        row = db.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS ok", (self.name,)
        ).fetchone()
        return bool(row and row["ok"])

    def try_acquire(self) -> bool:
        """Take the lock now if it is free; return whether this holder has it."""
        if self._db is not None:
            return True
        ensure_migrated(self.url)
        db = connect(self.url)
        try:
            db.execute(_KEEPALIVES.encode())
            if not self._try(db):
                db.close()
                return False
            self._write_holder(db)
        except psycopg.Error as exc:
            db.close()
            raise SharedDatabaseError(f"could not take the lock {self.name!r}: {exc}") from None
        self._db = db
        self.lost.clear()
        self._stop.clear()
        self._watchdog = threading.Thread(
            target=self._watch, name=f"mpconnect-lock-{self.name}", daemon=True
        )
        self._watchdog.start()
        return True

    def _write_holder(self, db: psycopg.Connection[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _still_ours(self, db: psycopg.Connection[dict[str, Any]]) -> bool:
        row = db.execute(
            f"SELECT * FROM {self.table} WHERE {self.key_column} = %s", (self._key(),)
        ).fetchone()
        return row is not None and self._is_ours(row)

    def _key(self) -> str:
        raise NotImplementedError

    def _is_ours(self, row: dict[str, Any]) -> bool:
        raise NotImplementedError

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_EVERY):
            db = self._db
            if db is None:
                return
            try:
                db.execute("SELECT 1")
                continue
            except psycopg.Error:
                pass
            log.warning("the session holding lock %r was lost; taking it again", self.name)
            self._retake()
            if self.lost.is_set():
                return

    def _retake(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                db = connect(self.url)
            except SharedDatabaseError:
                time.sleep(1)
                continue
            try:
                db.execute(_KEEPALIVES.encode())
                if self._still_ours(db) and self._try(db) and self._still_ours(db):
                    old, self._db = self._db, db
                    if old is not None:
                        old.close()
                    log.info("lock %r taken again after the session was lost", self.name)
                    return
                db.close()
                break
            except psycopg.Error:
                db.close()
                time.sleep(1)
        reason = f"lost the lock {self.name!r} with its database session"
        log.error("%s; another holder may have it now", reason)
        self.lost.set()
        if self.on_lost is not None:
            self.on_lost(reason)

    def release(self) -> None:
        """Give the lock up (closing its session releases it in any case)."""
        self._stop.set()
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(psycopg.Error):
                db.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self.name,))
            db.close()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(CHECK_EVERY + 1)
        self._watchdog = None

    def is_held_here(self) -> bool:
        """True while this object holds the lock."""
        return self._db is not None and not self.lost.is_set()


class PostgresSourceLock(SourceLock):
    """One run of ``source`` at a time across every machine using the database."""

    def __init__(self, url: str, source: str, run_id: str = "", dispatch_id: str = "") -> None:
        self.source = source
        self.run_id = run_id
        self.dispatch_id = dispatch_id
        self.url = url
        self._lock = _SourceSession(self, url)

    @property
    def lost(self) -> threading.Event:
        """Set when the lock was lost with its session and could not be taken again."""
        return self._lock.lost

    def set_on_lost(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when the lock is lost for good."""
        self._lock.on_lost = callback

    def holder(self) -> dict[str, Any]:
        """The last holder's row (run_id, dispatch_id, host, pid, since), if any."""
        try:
            db = connect(self.url)
        except SharedDatabaseError:
            return {}
        try:
            with db:
                row = db.execute(
                    "SELECT * FROM source_locks WHERE source = %s", (self.source,)
                ).fetchone()
        except psycopg.Error:
            return {}
        return dict(row) if row else {}

    def acquire(self) -> None:
        """Take the lock or raise RunLocked naming the holder."""
        if self._lock.try_acquire():
            return
        info = self.holder()
        since = info.get("since")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
        raise RunLocked(
            f"source {self.source!r} is already running: pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, started {when} (run {info.get('run_id', '?')})"
        )

    def release(self) -> None:
        """Give the lock up."""
        self._lock.release()

    def is_held(self) -> bool:
        """True when some session holds the lock now (this one included). Looks at
        ``pg_locks`` without taking the lock, so asking never makes a run find it taken."""
        if self._lock.is_held_here():
            return True
        try:
            db = connect(self.url)
        except SharedDatabaseError:
            return False
        try:
            with db:
                row = db.execute(_HELD, (self._lock.name,)).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row["n"])


#: Whether a session holds the advisory lock on a bigint key: PostgreSQL shows its high
#: 32 bits as ``classid``, its low ones as ``objid``, and ``objsubid`` 1.
_HELD = (
    "WITH k AS (SELECT hashtextextended(%s, 0) AS key) "
    "SELECT count(*) AS n FROM pg_locks, k WHERE locktype = 'advisory' AND granted "
    "AND objsubid = 1 AND classid::bigint = ((k.key >> 32) & 4294967295) "
    "AND objid::bigint = (k.key & 4294967295)"
)


class _SourceSession(_SessionLock):
    def __init__(self, owner: PostgresSourceLock, url: str) -> None:
        super().__init__(url, f"mpconnect:source:{owner.source}", "source_locks", "source", "")
        self.owner = owner

    def _key(self) -> str:
        return self.owner.source

    def _write_holder(self, db: psycopg.Connection[dict[str, Any]]) -> None:
        backend = db.info.backend_pid
        db.execute(
            "INSERT INTO source_locks (source, run_id, dispatch_id, host, pid, backend_pid, since)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (source) DO UPDATE SET "
            "run_id = excluded.run_id, dispatch_id = excluded.dispatch_id, host = excluded.host,"
            " pid = excluded.pid, backend_pid = excluded.backend_pid, since = excluded.since",
            (
                self.owner.source,
                self.owner.run_id,
                self.owner.dispatch_id or None,
                socket.gethostname(),
                os.getpid(),
                backend,
                time.time(),
            ),
        )

    def _is_ours(self, row: dict[str, Any]) -> bool:
        return bool(row["run_id"] == self.owner.run_id)


class LeaderLock(_SessionLock):
    """Exactly one holder of ``role`` (such as ``scheduler``) at a time; a standby calls
    :meth:`try_acquire` in a loop and takes over when the leader's session ends."""

    def __init__(self, url: str, role: str = "scheduler") -> None:
        holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        super().__init__(url, f"mpconnect:leader:{role}", "leaders", "role", holder)
        self.role = role

    def _key(self) -> str:
        return self.role

    def _write_holder(self, db: psycopg.Connection[dict[str, Any]]) -> None:
        db.execute(
            "INSERT INTO leaders (role, holder, since) VALUES (%s, %s, %s) "
            "ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, since = excluded.since",
            (self.role, self.holder, time.time()),
        )

    def _is_ours(self, row: dict[str, Any]) -> bool:
        return bool(row["holder"] == self.holder)

    def current(self) -> str | None:
        """Who leads (the last holder written), if anyone ever did."""
        try:
            db = connect(self.url)
        except SharedDatabaseError:
            return None
        try:
            with db:
                row = db.execute(
                    "SELECT holder FROM leaders WHERE role = %s", (self.role,)
                ).fetchone()
        except psycopg.Error:
            return None
        return str(row["holder"]) if row else None
