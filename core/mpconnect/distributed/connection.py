"""Connections to the shared PostgreSQL database: clear errors, reconnection where safe.

Every statement mpconnect sends through :class:`Database` is idempotent (an upsert, or
an update to absolute values), so a statement cut by a lost connection is sent again on a
new one: a PostgreSQL restart of a few seconds is ridden through; one that lasts longer
than :data:`RECONNECT_FOR` seconds ends in :class:`SharedDatabaseError`, naming the
database without its password. Locks are the exception: they live in one session and
are never silently moved to another (see :mod:`mpconnect.distributed.locks`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from mpconnect.errors import MpconnectError
from mpconnect.redact import redact

log = logging.getLogger("mpconnect.distributed")

#: Seconds a statement keeps trying to reconnect before it gives up.
RECONNECT_FOR = 60.0
#: Seconds to wait for a connection to open.
CONNECT_TIMEOUT = 10

T = TypeVar("T")


class SharedDatabaseError(MpconnectError):
    """The shared database cannot be reached or refused a statement."""


class DatabaseUnreachable(SharedDatabaseError):
    """No connection to the shared database could be opened."""


def describe(url: str) -> str:
    """The database's URL without its password, for messages."""
    return redact(url)


def connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    """Open an autocommit connection whose rows are dicts.

    :raises SharedDatabaseError: naming the database (no password) and the reason.
    """
    try:
        return psycopg.connect(
            url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT
        )
    except psycopg.Error as exc:
        raise DatabaseUnreachable(
            f"cannot connect to the shared database {describe(url)}: {_reason(exc)}; "
            "check [distributed] database (MPCONNECT_DATABASE_URL) and that PostgreSQL is up"
        ) from None


def _reason(exc: BaseException) -> str:
    return redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def is_connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` means the session is gone (not a refused statement)."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class Database:
    """One connection per thread to the shared database, reopened when lost."""

    def __init__(self, url: str, reconnect_for: float = RECONNECT_FOR) -> None:
        self.url = url
        self.reconnect_for = reconnect_for
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"Database({describe(self.url)!r})"

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        db = getattr(self._local, "db", None)
        if db is None or db.closed:
            db = connect(self.url)
            self._local.db = db
            with self._guard:
                self._all.append(db)
        return db

    def call(self, work: Callable[[psycopg.Connection[dict[str, Any]]], T]) -> T:
        """Run ``work(connection)``; when the connection is lost, reconnect and run it
        again (``work`` must be idempotent) for up to ``reconnect_for`` seconds."""
        deadline = time.monotonic() + self.reconnect_for
        wait = 0.2
        while True:
            try:
                return work(self._connection())
            except psycopg.Error as exc:
                if not is_connection_lost(exc):
                    raise SharedDatabaseError(
                        f"the shared database {describe(self.url)} refused a statement: "
                        f"{_reason(exc)}"
                    ) from None
                self._drop()
                if time.monotonic() >= deadline:
                    raise SharedDatabaseError(
                        f"lost the connection to the shared database {describe(self.url)} "
                        f"and could not reconnect for {self.reconnect_for:.0f} s: "
                        f"{_reason(exc)}"
                    ) from None
                log.warning("shared database connection lost (%s); reconnecting", _reason(exc))
            except DatabaseUnreachable:
                self._drop()
                if time.monotonic() >= deadline:
                    raise
            time.sleep(wait)
            wait = min(wait * 2, 2.0)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement (idempotent)."""
        self.call(lambda db: db.execute(sql, params))

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query and return its rows."""
        return self.call(lambda db: db.execute(sql, params).fetchall())

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        """Run one query and return its first row, or None."""
        return self.call(lambda db: db.execute(sql, params).fetchone())

    def transaction(self, work: Callable[[psycopg.Connection[dict[str, Any]]], T]) -> T:
        """Run ``work`` in one transaction (retried whole when the connection is lost)."""

        def whole(db: psycopg.Connection[dict[str, Any]]) -> T:
            with db.transaction():
                return work(db)

        return self.call(whole)

    def _drop(self) -> None:
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            with contextlib.suppress(psycopg.Error):
                db.close()

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._guard:
            connections, self._all = self._all, []
        for db in connections:
            with contextlib.suppress(psycopg.Error):
                db.close()
