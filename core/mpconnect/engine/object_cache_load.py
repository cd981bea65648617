"""The full read's write path of :class:`~mpconnect.engine.object_cache.SqliteObjectCache`:
the records go to a *fresh table* of their own, which the commit renames in.

A full read replaces every committed row, so nothing it writes needs merging: its rows are
appended to ``fresh_<HASH>`` (a table named after the extraction's spool id), a plain
rowid table with no index while loading, at ``synchronous=OFF`` (nobody reads the table
yet and the committed rows are not touched; a process killed mid-load loses nothing
committed). :func:`build_index` (at stage) adds the unique key ``(stream, object_id,
seq)``; :func:`durable` (at stage and commit) syncs the file at every commit again;
:func:`swap_in` (in the commit's transaction) drops ``objects`` and renames the fresh
table to ``objects``. A run that stops before the commit leaves ``objects`` as it was;
:func:`drop_fresh` removes its table when the next run begins.

The committed table a swap leaves has the fresh table's format: a rowid table with the
unique index ``<fresh table>_key``. Every query of the cache works on it and on the older
``WITHOUT ROWID`` format alike.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpconnect.engine.object_cache import CacheRow

_PREFIX = "fresh_"
_COLUMNS = (
    "stream TEXT NOT NULL, object_id TEXT NOT NULL, seq INTEGER NOT NULL, "
    "kind TEXT NOT NULL, hash BLOB NOT NULL, data BLOB NOT NULL"
)


def fresh_table(spool_id: str) -> str:
    """The name of an extraction's fresh table (an SQL identifier whatever the spool id)."""
    return _PREFIX + hashlib.blake2b(spool_id.encode(), digest_size=8).hexdigest()


def fresh_tables(db: sqlite3.Connection) -> list[str]:
    """The fresh tables the file holds."""
    rows = db.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'fresh_*'")
    return [str(row[0]) for row in rows]


def has_table(db: sqlite3.Connection, table: str) -> bool:
    """True when the file has this table."""
    row = db.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None


def create(db: sqlite3.Connection, table: str) -> None:
    """Start an empty fresh table (dropping one of the same name) and stop syncing the
    file until :func:`build_index`."""
    db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute(f"CREATE TABLE {table} ({_COLUMNS})")
    db.execute("PRAGMA synchronous=OFF")


def append(db: sqlite3.Connection, table: str, rows: list[CacheRow]) -> None:
    """Append rows in one transaction. The blobs go as ``bytearray``: :mod:`sqlite3` binds
    those directly, where ``bytes`` first goes through its adapter lookup."""
    if not rows:
        return
    db.execute("BEGIN")
    try:
        streams, object_ids, seqs, kinds, digests, datas = zip(*rows, strict=True)
        db.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?)",
            zip(
                streams,
                object_ids,
                seqs,
                kinds,
                map(bytearray, digests),
                map(bytearray, datas),
                strict=True,
            ),
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def build_index(db: sqlite3.Connection, table: str) -> None:
    """Index the fresh table by key (once). A key written twice (an extraction that sent a
    chunk again) keeps its last row, as an upsert would."""
    index = f"{table}_key"
    if db.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (index,)).fetchone():
        return
    create_index = f"CREATE UNIQUE INDEX {index} ON {table} (stream, object_id, seq)"
    try:
        db.execute(create_index)
    except sqlite3.IntegrityError:
        db.execute(
            f"DELETE FROM {table} WHERE rowid NOT IN "
            f"(SELECT max(rowid) FROM {table} GROUP BY stream, object_id, seq)"
        )
        db.execute(create_index)


def durable(db: sqlite3.Connection) -> None:
    """Sync the file at every commit again (outside a transaction)."""
    db.execute("PRAGMA synchronous=FULL")


def swap_in(db: sqlite3.Connection, table: str) -> None:
    """Replace ``objects`` by the indexed fresh table; inside the caller's transaction."""
    build_index(db, table)
    db.execute("DROP TABLE objects")
    db.execute(f"ALTER TABLE {table} RENAME TO objects")


def drop_fresh(db: sqlite3.Connection, keep: Iterable[str] = ()) -> None:
    """Drop the fresh tables of every extraction but those named in ``keep``."""
    kept = set(keep)
    for table in fresh_tables(db):
        if table not in kept:
            db.execute(f"DROP TABLE {table}")


def append_file(db: sqlite3.Connection, table: str, path: Path, offset: int) -> int:
    """Append the ``records`` table of another SQLite file (a partition's, see
    :mod:`mpconnect.engine.partition_cache`) to the fresh table in one transaction, each
    row's ``seq`` moved on by ``offset``; return the file's highest ``seq`` (0: none)."""
    db.execute("PRAGMA synchronous=OFF")  # as create() loads; the commit syncs the file
    db.execute("ATTACH DATABASE ? AS part", (str(path),))
    try:
        db.execute("BEGIN")
        try:
            db.execute(
                f"INSERT INTO {table} SELECT stream, object_id, seq + ?, kind, hash, data "
                "FROM part.records",
                (offset,),
            )
            highest = db.execute("SELECT max(seq) FROM part.records").fetchone()[0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.execute("DETACH DATABASE part")
    return int(highest or 0)
