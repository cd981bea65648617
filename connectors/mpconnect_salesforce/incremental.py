"""Incremental reads: what changed since the last run, by ``SystemModstamp``.

The source's state keeps, per stream (``contacts``, ``opportunities``, ``events:OBJ:HASH``,
...), its cursor (``cursors``): the newest ``SystemModstamp`` an incremental read saw, or
the server's time when a full read started; and the server's time when the stream was
last read (``checked``). An incremental read asks for rows with ``SystemModstamp >= cursor -
overlap`` (the overlap catches transactions that committed late with an earlier stamp),
ordered by ``SystemModstamp, Id``, and for rows deleted since through ``queryAll`` on
``IsDeleted = true``. Salesforce keeps deleted rows in the recycle bin about 15 days, so a
stream last checked longer ago than that is read in full again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mpconnect import RunContext
from mpconnect_salesforce.rows import parse_datetime

__all__ = ["CURSOR_KEYS", "RECYCLE_BIN", "Sync", "literal", "merge_cursors"]

#: How long Salesforce keeps deleted rows where ``queryAll`` finds them.
RECYCLE_BIN = timedelta(days=15)
#: The ordering of incremental reads: a stream's cursor only moves past complete rows.
ORDER = "SystemModstamp, Id"
#: The state's per-stream keys: cursors, and when each stream was last read.
CURSOR_KEYS = ("cursors", "checked")


def literal(moment: datetime) -> str:
    """A SOQL datetime literal, to the second below: ``2024-01-31T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Sync:
    """The incremental side of one run: from when each stream reads, and its new cursor.

    :param ctx: the run's context (``state``, ``full_refresh``, ``deleted``...).
    :param overlap: how far before a cursor an incremental read starts.
    """

    ctx: RunContext
    overlap: timedelta
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    since: dict[str, datetime | None] = field(default_factory=dict)
    newest: dict[str, datetime] = field(default_factory=dict)
    deletions: dict[str, datetime] = field(default_factory=dict)
    started: bool = False

    @property
    def incremental(self) -> bool:
        """True when this run reads only changes."""
        return not self.ctx.full_refresh

    def _state(self, key: str) -> dict[str, str]:
        value = self.ctx.state.get(key)
        if not isinstance(value, dict):
            value = {}
            self.ctx.state[key] = value
        return value

    def start(self, now: datetime, streams: Iterable[str], identity: str) -> None:
        """Decide from when each stream reads; fall back to a full read when a stream was
        last checked longer ago than the recycle bin keeps deletions, or the identity
        setting changed. Streams no longer configured leave the snapshot.

        :param now: the server's time as the run starts.
        """
        if self.started:
            return
        self.started = True
        self.now = now
        streams = list(streams)
        self.since = dict.fromkeys(streams)
        previous = self.ctx.state.get("identity")
        self.ctx.state["identity"] = identity
        if not self.incremental:
            self.ctx.state["cursors"], self.ctx.state["checked"] = {}, {}
            return
        cursors, checked = self._state("cursors"), self._state("checked")
        self._drop([name for name in cursors if name not in streams])
        if previous not in (None, identity):
            self.read_everything(f"identity changed from {previous!r} to {identity!r}")
            return
        stale = []
        for name in streams:
            if name in checked and now - parse_datetime(checked[name]) > RECYCLE_BIN:
                stale.append(f"{name} last read {checked[name]}")
        for name in streams:
            cursor = cursors.get(name)
            self.since[name] = parse_datetime(cursor) - self.overlap if cursor else None
        if stale:
            self.read_everything(
                "cursor older than Salesforce's recycle bin keeps deletions (15 days): "
                + ", ".join(stale)
            )

    def _drop(self, gone: list[str]) -> None:
        """Remove the records of streams no longer configured, and their cursors."""
        if "opportunities" in gone:
            gone.append("opportunity_totals")
        for name in gone:
            for record in self.ctx.unchanged(name):
                if record.object_id:
                    self.ctx.deleted(name, record.object_id)
            self._state("cursors").pop(name, None)
            self._state("checked").pop(name, None)
            self.ctx.log.info("Salesforce: stream %s is no longer configured; its records go", name)

    def read_everything(self, reason: str) -> None:
        """Turn this run into a full read (before anything is yielded), saying why."""
        self.ctx.read_everything(reason)
        self.ctx.full_refresh = True
        self.ctx.state["cursors"], self.ctx.state["checked"] = {}, {}
        self.since = dict.fromkeys(self.since)

    def where(self, stream: str, where: str | None, extra: str = "") -> str | None:
        """``where`` narrowed to rows changed since the stream's cursor (as is on a full read).

        :param extra: an alternative condition that also makes a row changed (``OR``).
        """
        since = self.since.get(stream)
        if since is None:
            return where
        changed = f"SystemModstamp >= {literal(since)}"
        if extra:
            changed = f"({changed} OR {extra.format(since=literal(since))})"
        return f"({where}) AND {changed}" if where else changed

    def changed_since(self, stream: str) -> str | None:
        """The stream's start as a SOQL literal, or None on a full read of it."""
        since = self.since.get(stream)
        return None if since is None else literal(since)

    def seen(self, stream: str, row: dict[str, Any], *, deleted: bool = False) -> None:
        """Note a row's ``SystemModstamp`` toward the stream's new cursor.

        :param deleted: a deleted row: it counts only once the whole stream is read.
        """
        stamp = row.get("SystemModstamp")
        newest = self.deletions if deleted else self.newest
        if isinstance(stamp, datetime) and (stream not in newest or stamp > newest[stream]):
            newest[stream] = stamp

    def commit(self, stream: str, *, complete: bool = False) -> None:
        """Keep the stream's cursor in the state: it has read every row up to it.

        :param complete: the whole stream is read (deletions count too).
        """
        cursors, checked = self._state("cursors"), self._state("checked")
        newest = self.newest.get(stream)
        if complete and stream in self.deletions:
            newest = max(filter(None, (newest, self.deletions[stream])))
        old = cursors.get(stream)
        if newest is None:
            newest = parse_datetime(old) if old else self.now
        elif old and parse_datetime(old) > newest:
            newest = parse_datetime(old)
        cursors[stream] = _iso(newest)
        checked[stream] = _iso(self.now)


def merge_cursors(states: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The ``cursors`` and ``checked`` of a full read made of partitions, each of which
    read some streams, or parts of them (Id ranges), from its own start.

    A partition's cursor of a stream is safe for its part: every row it did not see
    changed after it started (``checked``, the server's time then) or after its newest
    ``SystemModstamp``, whichever is later. The stream's cursor is the earliest of its
    partitions' safe cursors, and ``checked`` the earliest start, so the next incremental
    read misses no change any partition could have missed.
    """
    cursors: dict[str, datetime] = {}
    checked: dict[str, datetime] = {}
    for state in states:
        their_cursors = state.get("cursors") or {}
        their_checked = state.get("checked") or {}
        for stream, raw in their_cursors.items():
            cursor = parse_datetime(raw)
            start = their_checked.get(stream)
            if start:
                cursor = max(cursor, parse_datetime(start))
            if stream not in cursors or cursor < cursors[stream]:
                cursors[stream] = cursor
        for stream, raw in their_checked.items():
            moment = parse_datetime(raw)
            if stream not in checked or moment < checked[stream]:
                checked[stream] = moment
    return {
        "cursors": {stream: _iso(moment) for stream, moment in cursors.items()},
        "checked": {stream: _iso(moment) for stream, moment in checked.items()},
    }
