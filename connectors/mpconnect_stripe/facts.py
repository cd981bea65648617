"""The figures customer profiles aggregate, kept between runs: the facts store.

A profile's ``lifetime_value``, ``subscription_status``, ``plan`` and ``mrr`` gather over
every charge and subscription of the customer. An incremental run reads only the objects
that changed, so it keeps each object's few facts (:func:`mpconnect_stripe.mapping.digest`)
in a SQLite file in the source's state directory, and recomputes the profiles of the
customers whose objects changed from the stored facts, exactly as a full read computes
them.

Each run writes a new file (a copy of the last one, changed); the source's state names
the file, and the engine stores the state only once the run's data is safe, so a failed
run leaves the file of the last good run in use. Files no state names are removed at
the start of the next run.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["FactsStore"]

_PATTERN = "stripe-facts-*.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, distinct_id TEXT NOT NULL, listed INTEGER NOT NULL, facts BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (id TEXT PRIMARY KEY, customer TEXT NOT NULL, facts BLOB);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, customer TEXT NOT NULL, facts BLOB
);
CREATE INDEX IF NOT EXISTS charges_by_customer ON charges (customer);
CREATE INDEX IF NOT EXISTS subscriptions_by_customer ON subscriptions (customer);
"""
#: The streams whose objects' facts are kept, and their tables.
TABLES = {"charges": "charges", "subscriptions": "subscriptions"}


class FactsStore:
    """One run's facts file: opened new (a full read) or as a copy of the last run's.

    :param path: the file this run writes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(_SCHEMA)

    @classmethod
    def create(cls, directory: Path, copy_of: str | None = None) -> FactsStore:
        """A new facts file in ``directory``: empty, or a copy of the file ``copy_of``."""
        path = directory / _PATTERN.replace("*", uuid.uuid4().hex[:16])
        if copy_of is not None:
            shutil.copyfile(directory / copy_of, path)
        return cls(path)

    @staticmethod
    def usable(directory: Path, name: Any) -> bool:
        """True when ``name`` (from the source's state) is a facts file in ``directory``."""
        return (
            isinstance(name, str)
            and Path(name).name == name
            and Path(name).match(_PATTERN)
            and (directory / name).is_file()
        )

    @staticmethod
    def remove_others(directory: Path, keep: Any) -> None:
        """Remove the facts files of failed or superseded runs: every one but ``keep``."""
        for path in directory.glob(_PATTERN):
            if path.name != keep:
                path.unlink(missing_ok=True)

    def put_customer(self, facts: dict[str, Any], distinct_id: str, listed: bool) -> None:
        """Keep a customer's own facts and distinct_id (``listed``: it has a profile)."""
        self._db.execute(
            "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?)",
            (facts["id"], distinct_id, int(listed), orjson.dumps(facts)),
        )

    def customer(self, customer_id: str) -> tuple[dict[str, Any], str, bool] | None:
        """A kept customer's ``(facts, distinct_id, listed)``, or None."""
        row = self._db.execute(
            "SELECT facts, distinct_id, listed FROM customers WHERE id = ?", (customer_id,)
        ).fetchone()
        return None if row is None else (orjson.loads(row[0]), row[1], bool(row[2]))

    def put(self, stream: str, object_id: str, customer_id: str, facts: dict[str, Any]) -> None:
        """Keep the facts of a customer's charge or subscription."""
        self._db.execute(
            f"INSERT OR REPLACE INTO {TABLES[stream]} VALUES (?, ?, ?)",
            (object_id, customer_id, orjson.dumps(facts)),
        )

    def owner(self, stream: str, object_id: str) -> str | None:
        """The customer a kept charge or subscription belonged to."""
        if stream == "customers":
            return object_id
        if stream not in TABLES:
            return None
        row = self._db.execute(
            f"SELECT customer FROM {TABLES[stream]} WHERE id = ?", (object_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def forget(self, stream: str, object_id: str) -> None:
        """Drop what is kept of one object (deleted, or no longer aggregated)."""
        table = "customers" if stream == "customers" else TABLES.get(stream)
        if table is not None:
            self._db.execute(f"DELETE FROM {table} WHERE id = ?", (object_id,))

    def facts_of(self, stream: str, customer_id: str) -> Iterator[dict[str, Any]]:
        """The kept facts of one customer's charges or subscriptions."""
        rows = self._db.execute(
            f"SELECT facts FROM {TABLES[stream]} WHERE customer = ?", (customer_id,)
        )
        for (facts,) in rows:
            yield orjson.loads(facts)

    def save(self) -> None:
        """Write everything to the file (it stays open for reading profiles)."""
        self._db.commit()

    def close(self) -> None:
        """Close the file (again: nothing happens)."""
        self._db.close()

    def discard(self) -> None:
        """Close and remove the file (the run failed or stopped)."""
        self._db.close()
        self.path.unlink(missing_ok=True)
