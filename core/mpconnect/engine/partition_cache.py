"""The full read of an incremental source, partitioned: each partition's cache rows and
state, kept apart while the partitions run, then brought together by the run.

- The run decides on a full read before reading (first run, ``--full-refresh``, missing
  or damaged state or cache...) and writes the state the partitions start from, with
  why, to ``START_FILE`` in its spool directory (:func:`save_start`), before it records
  the plan: a resumed run reads the same.
- Each partition reads with ``full_refresh`` and a copy of that state. Every record it
  yields goes, as the cache keeps it, to ``CACHE_FILE`` in the partition's own spool
  directory (:class:`PartitionCache`, written anew on each attempt); once the partition
  is read, the state the connector left is written there too, durably
  (:meth:`PartitionCache.finish`), before the partition is marked done.
- The run loads each done partition's rows into the cache's fresh table while the
  others are read (:class:`~mpconnect.engine.partition_cache_loader.CacheRowsLoader`).
  When every partition is done, it combines the states (the connector's
  :meth:`~mpconnect.connector.Connector.merge_states`), loads the rows left, and stages
  state and cache (:func:`stage_partitions`), to be committed once the data is safe, as
  for an unpartitioned read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mpconnect.connector import Connector, Partition
from mpconnect.disk import private_dir
from mpconnect.engine.cached_records import cache_row
from mpconnect.engine.object_cache import CacheRow
from mpconnect.engine.object_cache_load import append
from mpconnect.engine.partition_store import PartitionRow
from mpconnect.errors import MpconnectError, PluginError, RunFailed
from mpconnect.records import Event, Profile
from mpconnect.sqlite import connect

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run
    from mpconnect.engine.partition_cache_loader import CacheRowsLoader

#: In the run's spool directory: the state the partitions start from, and why.
START_FILE = "incremental-start.json"
#: In a partition's spool directory: its cache rows and, once read, its state.
CACHE_FILE = "cache-rows.sqlite3"

_FLUSH_ROWS = 2000
_RECORDS = (Event, Profile)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    stream TEXT NOT NULL, object_id TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, hash BLOB NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def _state_json(source: str, state: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise MpconnectError(
            f"source {source!r}: the connector's ctx.state cannot be stored: {exc}; keep "
            "only JSON values (strings, numbers, booleans, lists, dicts) in it"
        ) from None


def save_start(spool_dir: Path, source: str, state: dict[str, Any], reason: str) -> None:
    """Write the state the partitions of a full read start from, and why it is one."""
    private_dir(spool_dir)
    path = spool_dir / START_FILE
    data = orjson.dumps({"state": orjson.loads(_state_json(source, state)), "reason": reason})
    partial = path.with_suffix(".part")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def has_start(spool_dir: Path) -> bool:
    """True when the spool is a partitioned full read of an incremental source."""
    return (spool_dir / START_FILE).is_file()


def load_start(spool_dir: Path) -> tuple[dict[str, Any], str] | None:
    """The state the partitions start from and the full read's reason; None when the
    spool has no such file (a ``sync = "full"`` source's partitions)."""
    try:
        data = orjson.loads((spool_dir / START_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise RunFailed(
            f"{spool_dir / START_FILE} cannot be read ({exc}); run again with --restart"
        ) from None
    return dict(data["state"]), str(data["reason"])


class PartitionCache:
    """One partition's cache rows, in its own SQLite file (written anew by each attempt).

    :param path: the file (removed first).
    :param source: the source's name, for messages.
    """

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        private_dir(path.parent)
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        self._db = connect(path, "partition cache rows")
        # No journal: the file is written anew by every attempt and read only once
        # finish() has synced it, so a journal would only write each row twice (about
        # 1 µs of CPU per row).
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.executescript(_SCHEMA)
        self._db.execute("PRAGMA synchronous=OFF")  # made durable by finish()
        self._rows: list[CacheRow] = []
        self._seq = 0

    def tap(self, records: Iterable[Any]) -> Iterator[Any]:
        """Pass the connector's records on, keeping each as the cache keeps it."""
        rows = self._rows
        for record in records:
            if isinstance(record, _RECORDS):
                self._seq += 1
                rows.append(cache_row(record, self._seq))
                if len(rows) >= _FLUSH_ROWS:
                    self._flush()
            yield record

    def _flush(self) -> None:
        append(self._db, "records", self._rows)
        self._rows.clear()

    def finish(self, state: dict[str, Any]) -> None:
        """The partition is read: keep its last rows and the state its connector left,
        synced to disk."""
        self._flush()
        data = _state_json(self.source, state)
        db = self._db
        db.execute("PRAGMA synchronous=FULL")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('state', ?)", (data,))

    def close(self) -> None:
        """Close the file."""
        self._db.close()


def partition_state(path: Path) -> dict[str, Any] | None:
    """The state a finished partition left in its cache file (None: not finished)."""
    if not path.exists():
        return None
    db = connect(path, "partition cache rows")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'state'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return None if row is None else dict(orjson.loads(row[0]))


def merge_states(
    connector_cls: type[Connector], states: list[tuple[Partition, dict[str, Any]]]
) -> dict[str, Any]:
    """The source's state after a partitioned full read: the connector's
    :meth:`~mpconnect.connector.Connector.merge_states` of the partitions' states.

    :raises PluginError: when it fails or returns something other than a dict.
    """
    name = connector_cls.name
    try:
        merged = connector_cls.merge_states([(p, dict(s)) for p, s in states])
    except MpconnectError:
        raise
    except Exception as exc:
        raise PluginError(
            f"connector {name!r} failed in merge_states(): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(merged, dict):
        raise PluginError(
            f"connector {name!r}: merge_states() returned {merged!r}; expected a dict"
        )
    return merged


def stage_partitions(
    run: Run, spool_dir: Path, rows: list[PartitionRow], loader: CacheRowsLoader
) -> None:
    """Every partition of a full read is done: combine their states, load the cache rows
    ``loader`` has not loaded yet into the cache's fresh table, and stage both for the
    commit (idempotent: a resumed run does it again from the partitions' files)."""
    start = load_start(spool_dir)
    if start is None:
        raise RunFailed(
            f"the spool {spool_dir} lacks {START_FILE}, which its partitioned full read "
            "needs; run again with --restart"
        )
    _, reason = start
    states: list[tuple[Partition, dict[str, Any]]] = []
    for row in rows:
        path = loader.path(row.index)
        state = partition_state(path)
        if state is None:
            raise RunFailed(
                f"partition {row.label}: its cache rows ({path}) are missing; run again "
                "with --restart"
            )
        states.append((row.partition, state))
    merged = merge_states(run.connector_cls, states)
    loader.finish()
    run.incremental.stage_full_read(loader.spool_id, merged, reason)
