"""The embedded dataset store: the Datasets API's semantics in one SQLite file.

Datasets hold versions; a version holds events and people records. A new version is
writable and not readable; once made readable it is ready at once and becomes live
``live_delay`` seconds later. One version per dataset is live: the newest live-eligible
one. Only the newest ``max_versions`` (five, as the service) are kept: creating another
deletes the oldest that is not live.

Events are unique by ``$insert_id`` within a version (a re-sent batch does not count
twice); ``events_received`` counts every event received, duplicates included.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from mpconnect.sink_types import ZERO_TIME, VersionInfo
from mpconnect.sqlite import connect

MAX_VERSIONS = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    vkey INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id TEXT NOT NULL REFERENCES datasets(dataset_id),
    version_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    readable INTEGER NOT NULL DEFAULT 0,
    writable INTEGER NOT NULL DEFAULT 1,
    readable_at TEXT NOT NULL DEFAULT '0001-01-01T00:00:00Z',
    ready_at TEXT NOT NULL DEFAULT '0001-01-01T00:00:00Z',
    ready_epoch REAL,
    events_received INTEGER NOT NULL DEFAULT 0,
    people_received INTEGER NOT NULL DEFAULT 0,
    UNIQUE (dataset_id, version_id)
);
CREATE TABLE IF NOT EXISTS events (
    vkey INTEGER NOT NULL,
    insert_id TEXT NOT NULL,
    name TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    time INTEGER,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_insert_id ON events (vkey, insert_id);
CREATE TABLE IF NOT EXISTS people (
    vkey INTEGER NOT NULL,
    distinct_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS people_by_digest ON people (vkey, distinct_id, digest);
"""


class StoreError(Exception):
    """A request the Datasets API would refuse; ``status`` is the HTTP status it uses."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def api_time(epoch: float) -> str:
    """Format epoch seconds as the API does: ``2017-06-26T23:00:47.617313Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class VersionContents:
    """What a version holds, for ``mpconnect inspect``."""

    events_total: int
    events_by_name: dict[str, int]
    events_received: int
    people_total: int
    profiles: int
    people_received: int


class DatasetStore:
    """The embedded store. Thread-safe: each thread gets its own connection.

    :param path: the SQLite file (created if absent).
    :param live_delay: seconds from readable to live.
    :param max_versions: versions kept per dataset.
    """

    def __init__(
        self, path: Path, *, live_delay: float = 0.0, max_versions: int = MAX_VERSIONS
    ) -> None:
        self.path = Path(path)
        self.live_delay = live_delay
        self.max_versions = max_versions
        self._local = threading.local()
        self._version_lock = threading.Lock()
        # Writers of this process queue here rather than in SQLite's busy handler, which
        # sleeps in steps of milliseconds while another thread holds the write lock.
        self._write_lock = threading.RLock()
        self._last_version_id = 0
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, "embedded store")
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # datasets -----------------------------------------------------------------------

    def ensure_dataset(self, dataset_id: str) -> None:
        """Create the dataset if it does not exist."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO datasets VALUES (?, ?)", (dataset_id, api_time(time.time()))
            )

    def has_dataset(self, dataset_id: str) -> bool:
        """True when the dataset exists."""
        row = self._db().execute("SELECT 1 FROM datasets WHERE dataset_id = ?", (dataset_id,))
        return row.fetchone() is not None

    def list_datasets(self) -> list[str]:
        """Return every dataset id."""
        return [r[0] for r in self._db().execute("SELECT dataset_id FROM datasets ORDER BY 1")]

    # versions -----------------------------------------------------------------------

    def _new_version_id(self, db: sqlite3.Connection, dataset_id: str) -> str:
        # Another process may share the file: never reuse an id the dataset has.
        (newest,) = db.execute(
            "SELECT MAX(CAST(version_id AS INTEGER)) FROM versions WHERE dataset_id = ?",
            (dataset_id,),
        ).fetchone()
        with self._version_lock:
            candidate = max(
                int(time.time() * 1_000_000), self._last_version_id + 1, (newest or 0) + 1
            )
            self._last_version_id = candidate
            return str(candidate)

    def create_version(self, dataset_id: str, *, create_dataset: bool = False) -> VersionInfo:
        """Create a writable, unreadable version; drop the oldest beyond ``max_versions``.

        :raises StoreError: 404 when the dataset does not exist (unless ``create_dataset``).
        """
        if create_dataset:
            self.ensure_dataset(dataset_id)
        elif not self.has_dataset(dataset_id):
            raise StoreError(404, f"dataset {dataset_id} does not exist")
        with self._tx() as db:
            version_id = self._new_version_id(db, dataset_id)
            db.execute(
                "INSERT INTO versions (dataset_id, version_id, created_at) VALUES (?, ?, ?)",
                (dataset_id, version_id, api_time(time.time())),
            )
            self._prune(db, dataset_id)
        info = self.get_version(dataset_id, version_id)
        assert info is not None
        return info

    def _prune(self, db: sqlite3.Connection, dataset_id: str) -> None:
        keys = [
            r[0]
            for r in db.execute(
                "SELECT vkey FROM versions WHERE dataset_id = ? ORDER BY vkey DESC", (dataset_id,)
            )
        ]
        if len(keys) <= self.max_versions:
            return
        live = self._live_vkey(db, dataset_id)
        excess = len(keys) - self.max_versions
        for vkey in reversed(keys):
            if excess == 0:
                break
            if vkey == live:
                continue
            self._delete_vkey(db, vkey)
            excess -= 1

    @staticmethod
    def _delete_vkey(db: sqlite3.Connection, vkey: int) -> None:
        db.execute("DELETE FROM events WHERE vkey = ?", (vkey,))
        db.execute("DELETE FROM people WHERE vkey = ?", (vkey,))
        db.execute("DELETE FROM versions WHERE vkey = ?", (vkey,))

    def _live_vkey(self, db: sqlite3.Connection, dataset_id: str) -> int | None:
        row = db.execute(
            "SELECT vkey FROM versions WHERE dataset_id = ? AND readable = 1 "
            "AND ready_epoch IS NOT NULL AND ready_epoch <= ? ORDER BY vkey DESC LIMIT 1",
            (dataset_id, time.time() - self.live_delay),
        ).fetchone()
        return row[0] if row else None

    def _info(self, row: tuple[Any, ...], live: int | None) -> VersionInfo:
        vkey, version_id, created_at, readable, writable, readable_at, ready_at, ready_epoch = row
        return VersionInfo(
            version_id=version_id,
            created_at=created_at,
            is_live=vkey == live,
            readable=bool(readable),
            writable=bool(writable),
            ready=ready_epoch is not None,
            readable_at=readable_at,
            ready_at=ready_at,
        )

    _COLUMNS = (
        "vkey, version_id, created_at, readable, writable, readable_at, ready_at, ready_epoch"
    )

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        """Return the dataset's versions, newest first.

        :raises StoreError: 404 when the dataset does not exist.
        """
        if not self.has_dataset(dataset_id):
            raise StoreError(404, f"dataset {dataset_id} does not exist")
        db = self._db()
        live = self._live_vkey(db, dataset_id)
        rows = db.execute(
            f"SELECT {self._COLUMNS} FROM versions WHERE dataset_id = ? ORDER BY vkey DESC",
            (dataset_id,),
        ).fetchall()
        return [self._info(row, live) for row in rows]

    def get_version(self, dataset_id: str, version_id: str) -> VersionInfo | None:
        """Return one version, or None."""
        db = self._db()
        row = db.execute(
            f"SELECT {self._COLUMNS} FROM versions WHERE dataset_id = ? AND version_id = ?",
            (dataset_id, version_id),
        ).fetchone()
        return self._info(row, self._live_vkey(db, dataset_id)) if row else None

    def live_version(self, dataset_id: str) -> VersionInfo | None:
        """Return the live version of the dataset, if any."""
        return next((v for v in self.list_versions(dataset_id) if v.is_live), None)

    def _vkey(self, db: sqlite3.Connection, dataset_id: str, version_id: str) -> tuple[int, bool]:
        row = db.execute(
            "SELECT vkey, writable FROM versions WHERE dataset_id = ? AND version_id = ?",
            (dataset_id, version_id),
        ).fetchone()
        if row is None:
            if not self.has_dataset(dataset_id):
                raise StoreError(404, f"dataset {dataset_id} does not exist")
            raise StoreError(404, f"version {version_id} of dataset {dataset_id} does not exist")
        return row[0], bool(row[1])

    def update_state(
        self, dataset_id: str, version_id: str, *, readable: bool, writable: bool
    ) -> None:
        """Set a version's read-write state fields; readable makes it ready at once."""
        now = time.time()
        with self._tx() as db:
            vkey, _ = self._vkey(db, dataset_id, version_id)
            if readable:
                db.execute(
                    "UPDATE versions SET writable = ?, readable_at = CASE WHEN readable = 1 "
                    "THEN readable_at ELSE ? END, ready_at = CASE WHEN readable = 1 "
                    "THEN ready_at ELSE ? END, ready_epoch = COALESCE(ready_epoch, ?), "
                    "readable = 1 WHERE vkey = ?",
                    (int(writable), api_time(now), api_time(now), now, vkey),
                )
            else:
                db.execute(
                    "UPDATE versions SET writable = ?, readable = 0, readable_at = ?, "
                    "ready_at = ?, ready_epoch = NULL WHERE vkey = ?",
                    (int(writable), ZERO_TIME, ZERO_TIME, vkey),
                )

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Delete a version and everything in it."""
        with self._tx() as db:
            vkey, _ = self._vkey(db, dataset_id, version_id)
            self._delete_vkey(db, vkey)

    # imports ------------------------------------------------------------------------

    def _writable_vkey(self, db: sqlite3.Connection, dataset_id: str, version_id: str) -> int:
        vkey, writable = self._vkey(db, dataset_id, version_id)
        if not writable:
            raise StoreError(400, f"version {version_id} of dataset {dataset_id} is not writable")
        return vkey

    def import_events(
        self, dataset_id: str, version_id: str, records: Iterable[dict], *, full_key: bool = False
    ) -> int:
        """Store events (Mixpanel's structure); returns how many were received.

        An event is kept once per ``$insert_id``; with ``full_key``, once per (event, time,
        distinct_id, ``$insert_id``), as Mixpanel's ingestion API deduplicates.
        """
        rows = []
        for index, record in enumerate(records):
            try:
                props = record["properties"]
                name, distinct_id = record["event"], props["distinct_id"]
                insert_id = props.get("$insert_id")
            except (KeyError, TypeError, AttributeError):
                raise StoreError(
                    400,
                    f'event {index} of the batch has no "event" name or no '
                    '"properties" object with a "distinct_id"',
                ) from None
            body = orjson.dumps(record)
            if full_key and insert_id:
                insert_id = hashlib.sha1(
                    orjson.dumps([name, props.get("time"), distinct_id, insert_id])
                ).hexdigest()
            rows.append(
                (
                    insert_id or hashlib.sha1(body).hexdigest(),
                    name,
                    str(distinct_id),
                    props.get("time"),
                    body,
                )
            )
        with self._tx() as db:
            vkey = self._writable_vkey(db, dataset_id, version_id)
            db.executemany(f"INSERT OR IGNORE INTO events VALUES ({vkey}, ?, ?, ?, ?, ?)", rows)
            db.execute(
                "UPDATE versions SET events_received = events_received + ? WHERE vkey = ?",
                (len(rows), vkey),
            )
        return len(rows)

    def import_people(self, dataset_id: str, version_id: str, records: Iterable[dict]) -> int:
        """Store people records; an identical record re-sent is kept once."""
        return self.store_people(dataset_id, version_id, records)[0]

    def store_people(
        self, dataset_id: str, version_id: str, records: Iterable[dict]
    ) -> tuple[int, int]:
        """Store people records; return (received, collapsed): an identical record (the
        same ``$add``, say) already in the version or earlier in the batch is kept once."""
        rows = []
        for index, record in enumerate(records):
            try:
                distinct_id = record["$distinct_id"]
            except (KeyError, TypeError):
                raise StoreError(
                    400, f'people record {index} of the batch has no "$distinct_id"'
                ) from None
            body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
            rows.append((str(distinct_id), hashlib.sha1(body).digest(), body))
        with self._tx() as db:
            vkey = self._writable_vkey(db, dataset_id, version_id)
            stored = db.executemany(
                f"INSERT OR IGNORE INTO people VALUES ({vkey}, ?, ?, ?)", rows
            ).rowcount
            db.execute(
                "UPDATE versions SET people_received = people_received + ? WHERE vkey = ?",
                (len(rows), vkey),
            )
        return len(rows), len(rows) - stored

    # inspection ---------------------------------------------------------------------

    def contents(self, dataset_id: str, version_id: str) -> VersionContents:
        """Count what a version holds."""
        db = self._db()
        vkey, _ = self._vkey(db, dataset_id, version_id)
        by_name = dict(
            db.execute(
                "SELECT name, COUNT(*) FROM events WHERE vkey = ? GROUP BY name ORDER BY name",
                (vkey,),
            ).fetchall()
        )
        people_total, profiles = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT distinct_id) FROM people WHERE vkey = ?", (vkey,)
        ).fetchone()
        received = db.execute(
            "SELECT events_received, people_received FROM versions WHERE vkey = ?", (vkey,)
        ).fetchone()
        return VersionContents(
            events_total=sum(by_name.values()),
            events_by_name=by_name,
            events_received=received[0],
            people_total=people_total,
            profiles=profiles,
            people_received=received[1],
        )

    def sample_events(self, dataset_id: str, version_id: str, limit: int = 3) -> list[dict]:
        """Return a few events of a version."""
        db = self._db()
        vkey, _ = self._vkey(db, dataset_id, version_id)
        rows = db.execute("SELECT body FROM events WHERE vkey = ? LIMIT ?", (vkey, limit))
        return [orjson.loads(r[0]) for r in rows]

    def sample_people(self, dataset_id: str, version_id: str, limit: int = 3) -> list[dict]:
        """Return a few people records of a version."""
        db = self._db()
        vkey, _ = self._vkey(db, dataset_id, version_id)
        rows = db.execute("SELECT body FROM people WHERE vkey = ? LIMIT ?", (vkey, limit))
        return [orjson.loads(r[0]) for r in rows]

    def iter_events(self, dataset_id: str, version_id: str) -> Iterator[dict]:
        """Yield every event of a version."""
        db = self._db()
        vkey, _ = self._vkey(db, dataset_id, version_id)
        for (body,) in db.execute("SELECT body FROM events WHERE vkey = ?", (vkey,)):
            yield orjson.loads(body)

    def iter_people(self, dataset_id: str, version_id: str) -> Iterator[dict]:
        """Yield every people record of a version."""
        db = self._db()
        vkey, _ = self._vkey(db, dataset_id, version_id)
        for (body,) in db.execute("SELECT body FROM people WHERE vkey = ?", (vkey,)):
            yield orjson.loads(body)
