"""The per-source state of incremental runs (a connector's cursors), committed only when a
run's data is safe.

:class:`StateStore` is the interface; :class:`SqliteStateStore` keeps it in
``$MPCONNECT_HOME/state.sqlite3`` for one machine (a shared database implements the same
interface when runs move between machines). A run *stages* the state its connector left in
``ctx.state`` once extraction is done, keyed by its spool id (a run that resumes the spool
commits it); the engine *commits* it after the version is live, every batch acknowledged
or the store committed. A run that fails leaves the committed state as it was.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mpconnect.disk import FileProblem
from mpconnect.errors import MpconnectError
from mpconnect.sqlite import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    source TEXT PRIMARY KEY,
    state BLOB NOT NULL,
    run_id TEXT NOT NULL,
    committed_at REAL NOT NULL,
    last_run BLOB
);
CREATE TABLE IF NOT EXISTS staged_state (
    source TEXT NOT NULL,
    spool_id TEXT NOT NULL,
    state BLOB NOT NULL,
    last_run BLOB,
    PRIMARY KEY (source, spool_id)
);
"""


class StateDamaged(MpconnectError):
    """The stored state cannot be read; a full read rebuilds it."""


@dataclass
class SourceState:
    """A source's committed state.

    :param state: the connector's cursors, as its last safe run left them.
    :param run_id: the run that committed it.
    :param committed_at: when (epoch seconds).
    :param last_run: what that run did (kind, reason, object counts), for ``state show``.
    """

    state: dict[str, Any]
    run_id: str
    committed_at: float
    last_run: dict[str, Any] = field(default_factory=dict)


class StateStore(ABC):
    """Where sources' states live. Every method names the source; ``spool_id`` names the
    extraction (the run that made the spool; a resuming run commits it)."""

    @abstractmethod
    def load(self, source: str) -> SourceState | None:
        """The committed state, or None when the source has none (a first run).

        :raises StateDamaged: when it cannot be read (the caller reads everything).
        """

    @abstractmethod
    def stage(
        self, source: str, spool_id: str, state: dict[str, Any], last_run: dict[str, Any]
    ) -> None:
        """Keep the state an extraction ended with, uncommitted."""

    @abstractmethod
    def commit(self, source: str, spool_id: str, run_id: str) -> bool:
        """Make the staged state of ``spool_id`` the committed one; False when nothing was
        staged (already committed, or dropped). Idempotent."""

    @abstractmethod
    def discard(self, source: str, keep: str | None = None) -> None:
        """Drop staged states of the source (all but ``keep``'s): abandoned extractions."""

    @abstractmethod
    def reset(self, source: str) -> bool:
        """Forget the source's state (committed and staged); False when it had none."""


class SqliteStateStore(StateStore):
    """The state store in one SQLite file (WAL; one connection per thread).

    A damaged file is moved aside (``state.sqlite3.damaged-TIME``) and a new one started;
    :attr:`damaged` then says so once, and every source reads everything.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        #: Set when the file was damaged and moved aside: the message for the run.
        self.damaged: str | None = None
        try:
            self._db().executescript(_SCHEMA)
        except (FileProblem, sqlite3.DatabaseError) as exc:
            self._local = threading.local()
            moved = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            path.rename(moved)
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            self.damaged = (
                f"the state file {path} could not be read ({_first_line(exc)}); moved it to "
                f"{moved} and reading everything to rebuild it"
            )
            self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, "incremental state")
            self._local.db = db
        return db

    def load(self, source: str) -> SourceState | None:
        """The committed state, or None (see :meth:`StateStore.load`)."""
        row = (
            self._db()
            .execute(
                "SELECT state, run_id, committed_at, last_run FROM state WHERE source = ?",
                (source,),
            )
            .fetchone()
        )
        if row is None:
            return None
        try:
            state = orjson.loads(row[0])
            last_run = orjson.loads(row[3]) if row[3] else {}
        except orjson.JSONDecodeError as exc:
            raise StateDamaged(f"the state of source {source!r} is damaged: {exc}") from None
        if not isinstance(state, dict):
            raise StateDamaged(f"the state of source {source!r} is damaged: not an object")
        return SourceState(state, row[1], row[2], last_run if isinstance(last_run, dict) else {})

    def stage(
        self, source: str, spool_id: str, state: dict[str, Any], last_run: dict[str, Any]
    ) -> None:
        """Keep an extraction's state, uncommitted."""
        try:
            data = orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            raise MpconnectError(
                f"source {source!r}: the connector's ctx.state cannot be stored: {exc}; keep "
                "only JSON values (strings, numbers, booleans, lists, dicts) in it"
            ) from None
        self._db().execute(
            "INSERT OR REPLACE INTO staged_state VALUES (?, ?, ?, ?)",
            (source, spool_id, data, orjson.dumps(last_run)),
        )

    def commit(self, source: str, spool_id: str, run_id: str) -> bool:
        """Commit the staged state of ``spool_id`` (idempotent)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT state, last_run FROM staged_state WHERE source = ? AND spool_id = ?",
                (source, spool_id),
            ).fetchone()
            if row is not None:
                db.execute(
                    "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)",
                    (source, row[0], run_id, time.time(), row[1]),
                )
                db.execute("DELETE FROM staged_state WHERE source = ?", (source,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return row is not None

    def discard(self, source: str, keep: str | None = None) -> None:
        """Drop staged states other than ``keep``'s."""
        self._db().execute(
            "DELETE FROM staged_state WHERE source = ? AND spool_id IS NOT ?", (source, keep)
        )

    def reset(self, source: str) -> bool:
        """Forget the source's state."""
        db = self._db()
        had = db.execute("DELETE FROM state WHERE source = ?", (source,)).rowcount
        db.execute("DELETE FROM staged_state WHERE source = ?", (source,))
        return bool(had)

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
