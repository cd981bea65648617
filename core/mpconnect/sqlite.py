"""Opening mpconnect's SQLite files (embedded store, run ledger) the same safe way.

The files are created readable by their owner only (0600; SQLite gives its ``-wal`` and
``-shm`` files the same mode). An SQLite error that is really a file problem (a full
disk, a damaged or foreign file, a directory in the way) is raised as a one-line
:class:`~mpconnect.disk.FileProblem` naming the file and the fix.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mpconnect.disk import (
    DiskFullError,
    FileProblem,
    file_problem,
    free_space,
    private_dir,
    private_file,
)

_DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
_FULL = ("SQLITE_FULL",)
_CANNOT_OPEN = ("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_READONLY")


def sqlite_problem(exc: sqlite3.Error, path: Path, what: str) -> FileProblem | None:
    """The file problem behind an SQLite error, or None when it is not one."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_FULL):
        return DiskFullError(
            f"{path} ({what}): no space left on the device ({free_space(path)} free on its "
            "file system); free some space or point MPCONNECT_HOME at a larger disk, then "
            "run again",
            path,
        )
    if name.startswith(_DAMAGED):
        return FileProblem(
            f"{path} ({what}): {exc}; the file is damaged or is not mpconnect's. Move it "
            f"aside (mv {path} {path}.damaged) and run again: mpconnect starts a new, empty "
            "one",
            path,
        )
    if name.startswith(_CANNOT_OPEN):
        kind = "a directory" if path.is_dir() else "unusable"
        return FileProblem(
            f"{path} ({what}): {exc}; the path is {kind}: move it aside, or give the user "
            "running mpconnect write access to it and its directory",
            path,
        )
    return None


class _Connection(sqlite3.Connection):
    """A connection whose statements raise file problems as one-line errors."""

    mpconnect_path: Path
    mpconnect_what: str

    def _translate(self, exc: sqlite3.Error) -> BaseException:
        problem = sqlite_problem(exc, self.mpconnect_path, self.mpconnect_what)
        return exc if problem is None else problem

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """Execute one statement (see :meth:`sqlite3.Connection.execute`)."""
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        """Execute one statement for each parameter set."""
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        """Execute several statements."""
        try:
            return super().executescript(sql_script)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc


def connect(path: Path, what: str = "SQLite database") -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with WAL journaling and a 60 s busy timeout.

    Switching a new file to WAL takes a lock that another process or thread opening it at
    the same moment may hold, so that step is retried.

    :param what: what the file is, such as ``"run ledger"``, for error messages.
    :raises FileProblem: when the file is damaged, foreign, in a full disk or unusable.
    """
    path = Path(path)
    try:
        private_dir(path.parent)
        private_file(path)
    except OSError as exc:
        raise file_problem(exc, path, what) from exc
    try:
        db = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=True, factory=_Connection
        )
    except sqlite3.Error as exc:
        raise sqlite_problem(exc, path, what) or exc from exc
    assert isinstance(db, _Connection)
    db.mpconnect_path = path
    db.mpconnect_what = what
    db.execute("PRAGMA busy_timeout=60000")
    for attempt in range(50):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.02 * (attempt + 1))
    db.execute("PRAGMA synchronous=NORMAL")
    return db
