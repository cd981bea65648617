"""Rows into records: the helpers every stream shares.

Every record a stream makes from one source object carries the stream's name and the
object's Id (``Event.stream``/``object_id``): the key under which incremental runs cache
and replace that object's records as a whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mpconnect import Event
from mpconnect_salesforce.incremental import ORDER, Sync, literal
from mpconnect_salesforce.reads import Read, Run
from mpconnect_salesforce.rows import Field, when

__all__ = [
    "STAMP",
    "changed_read",
    "event",
    "fields",
    "gone",
    "gone_reads",
    "owned",
    "props",
    "sweep",
    "tracked",
]

Row = dict[str, Any]
#: Where a read's rows come from, and when a row changed.
STAMP = Field("SystemModstamp", "datetime")


def fields(*spec: str) -> list[Field]:
    """``"Name"`` or ``"Amount:currency"`` into Fields."""
    out = []
    for item in spec:
        path, _, kind = item.partition(":")
        out.append(Field(path, kind or "string"))
    return out


def props(row: Row, names: dict[str, str]) -> dict[str, Any]:
    """``{property: row[field]}`` for the fields that have a value."""
    return {prop: row[path] for path, prop in names.items() if row.get(path) is not None}


def event(
    run: Run,
    stream: str,
    obj: str,
    row: Row,
    name: str,
    distinct_id: str | None,
    time_field: str,
    properties: dict[str, Any],
    missing_who: str = "",
    *,
    object_id: str | None = None,
    insert_id: str | None = None,
) -> Event | None:
    """One event of a row, or None (the row quarantined) when it has no person or no time.

    :param object_id: the source object it belongs to (default the row's Id).
    """
    time = when(row.get(time_field))
    if distinct_id is None:
        run.skip(obj, row, f"no one to attribute {name!r} to: {missing_who}")
        return None
    if time is None:
        run.skip(obj, row, f"{obj} has no {time_field}, the time of {name!r}")
        return None
    return Event(
        name=name,
        distinct_id=distinct_id,
        time=time,
        object_id=object_id or row["Id"],
        insert_id=insert_id,
        properties=properties,
        stream=stream,
    )


def owned(
    run: Run,
    stream: str,
    obj: str,
    row: Row,
    owner: str | None,
    wanted: list[tuple[str, str, dict[str, Any]]],
    missing_who: str,
) -> Iterator[Event]:
    """The events ``wanted`` (name, time field, properties) of one row that ``owner`` owns.

    A row with no owner is quarantined once, with a reason naming every event it loses.
    """
    if owner is None:
        names = ", ".join(repr(name) for name, _, _ in wanted)
        run.skip(obj, row, f"no one to attribute {names} to: {missing_who}")
        return
    for name, time_field, properties in wanted:
        made = event(run, stream, obj, row, name, owner, time_field, properties)
        if made is not None:
            yield made


def tracked(run: Run, stream: str, read: Read, *, commit: bool = True) -> Iterator[Row]:
    """A read's rows; once the caller asks for the next, the previous one's records are
    taken, so the stream's cursor moves past it (``commit``: into the state at once, for
    incremental REST reads, which come in cursor order; full reads and Bulk 2.0 jobs come
    in no order, so their stream's cursor moves once the stream is read).

    On an incremental run, a changed row that made no record now (it is quarantined, say)
    is gone from the snapshot, as a full read would leave it out.
    """
    for row in run.rows(read):
        before = run.made()
        yield row
        if run.sync.incremental and run.made() == before:
            run.sync.ctx.deleted(stream, row["Id"])
        run.sync.seen(stream, row)
        if commit and read.order and not read.bulk:
            run.sync.commit(stream)


def gone(run: Run, stream: str, reads: list[Read]) -> None:
    """Tell the run which of the stream's objects are gone: deleted, or no longer matching
    the stream's condition (the reads marked ``gone``)."""
    for read in reads:
        for row in run.rows(read):
            run.sync.seen(stream, row, deleted=True)
            run.sync.ctx.deleted(stream, row["Id"])


def changed_read(read: Read, stream: str, sync: Sync, changed_also: str = "") -> Read:
    """``read`` narrowed to rows changed since the stream's cursor, with their
    ``SystemModstamp``, in cursor order. A full read of the stream is left as it is (no
    order: sorting a whole object costs the server); its cursor becomes the run's start."""
    if sync.since.get(stream) is not None:
        if not any(f.path == "SystemModstamp" for f in read.fields):
            read.fields.append(STAMP)
        read.order = ORDER
    read.where = sync.where(stream, read.where, changed_also)
    return read


def gone_reads(stream: str, obj: str, where: str | None, sync: Sync) -> list[Read]:
    """The reads of a stream's objects gone since its cursor: deleted (``queryAll``), or
    changed so that they no longer meet the stream's condition ``where``."""
    since = sync.since.get(stream)
    if since is None:
        return []
    after = f"SystemModstamp >= {literal(since)}"
    both = [Field("Id", "id"), STAMP]
    reads = [Read(f"{obj} deleted", obj, both, f"IsDeleted = true AND {after}", all_rows=True)]
    if where:
        reads.append(
            Read(f"{obj} no longer matching", obj, list(both), f"NOT ({where}) AND {after}")
        )
    for read in reads:
        read.gone = True
    return reads


def sweep(run: Run, stream: str) -> None:
    """After an incremental run read a stream in full (it had no cursor yet, such as after
    a paused first run), the objects of it that the cache holds and the read did not find
    are gone."""
    if run.sync.incremental and run.sync.since.get(stream) is None:
        for record in run.sync.ctx.unchanged(stream):
            if record.object_id:
                run.sync.ctx.deleted(stream, record.object_id)
