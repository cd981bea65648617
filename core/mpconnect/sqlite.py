"""Opening mpconnect's SQLite files (embedded store, run ledger) the same safe way."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with WAL journaling and a 60 s busy timeout.

    Switching a new file to WAL takes a lock that another process or thread opening it at
    the same moment may hold, so that step is retried.
    """
    db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=True)
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
