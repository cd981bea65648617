"""The ``dispatches`` table: each run asked of the workers, and how it ended.

A dispatch is made ``queued`` before its message is sent; the task claims it
(``running``, one more attempt) and ends it with one of :data:`ENDED`. A message
delivered again after its dispatch ended finds nothing to claim and does nothing, which
makes the task idempotent. A scheduled dispatch carries its ``due`` time; a unique index
on (source, due) makes each due time dispatched once, whichever scheduler asks.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from mpconnect.distributed.connection import Database
from mpconnect.redact import redact

#: States of a dispatch that will not change again.
ENDED = ("succeeded", "superseded", "failed", "interrupted", "locked")
#: Ended states that are not a failure.
GOOD = ("succeeded", "superseded")


def new_dispatch(
    database: Database, source: str, requested_by: str, due: str | None = None
) -> str | None:
    """Record a queued dispatch of ``source``; return its id, or None when ``due`` was
    already dispatched."""
    dispatch_id = uuid.uuid4().hex
    row = database.fetchone(
        "INSERT INTO dispatches (dispatch_id, source, due, state, requested_at, requested_by)"
        " VALUES (%s, %s, %s, 'queued', %s, %s) ON CONFLICT DO NOTHING RETURNING dispatch_id",
        (dispatch_id, source, due, time.time(), requested_by),
    )
    return dispatch_id if row else None


def claim(database: Database, dispatch_id: str, worker: str) -> int | None:
    """Take a queued (or lost) dispatch for a run; return its attempt number, or None
    when it already ended (a message delivered again) or is unknown."""
    now = time.time()
    row = database.fetchone(
        "UPDATE dispatches SET state = 'running', attempts = attempts + 1, worker = %s, "
        "started_at = COALESCE(started_at, %s), heartbeat = %s "
        "WHERE dispatch_id = %s AND state IN ('queued', 'running') RETURNING attempts",
        (worker, now, now, dispatch_id),
    )
    return int(row["attempts"]) if row else None


def set_run(database: Database, dispatch_id: str, run_id: str) -> None:
    """Record which run carries out the dispatch."""
    database.execute(
        "UPDATE dispatches SET run_id = %s WHERE dispatch_id = %s", (run_id, dispatch_id)
    )


def beat(database: Database, dispatch_id: str) -> None:
    """Say the dispatch's run is still going."""
    database.execute(
        "UPDATE dispatches SET heartbeat = %s WHERE dispatch_id = %s AND state = 'running'",
        (time.time(), dispatch_id),
    )


def requeued(database: Database, dispatch_id: str) -> None:
    """Restart the clock of a queued dispatch whose message was sent again."""
    database.execute(
        "UPDATE dispatches SET requested_at = %s WHERE dispatch_id = %s AND state = 'queued'",
        (time.time(), dispatch_id),
    )


def finish(
    database: Database,
    dispatch_id: str,
    state: str,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """End a dispatch with ``state`` (one of :data:`ENDED`)."""
    database.execute(
        "UPDATE dispatches SET state = %s, ended_at = %s, summary = %s, error = %s "
        "WHERE dispatch_id = %s",
        (
            state,
            time.time(),
            redact(orjson.dumps(summary).decode()) if summary is not None else None,
            redact(error) if error else None,
            dispatch_id,
        ),
    )


def get(database: Database, dispatch_ids: list[str]) -> list[dict[str, Any]]:
    """Return the dispatches, in the order of ``dispatch_ids``."""
    rows = database.fetchall(
        "SELECT * FROM dispatches WHERE dispatch_id = ANY(%s)", (dispatch_ids,)
    )
    by_id = {row["dispatch_id"]: _shown(row) for row in rows}
    return [by_id[i] for i in dispatch_ids if i in by_id]


def open_of(database: Database, source: str) -> list[dict[str, Any]]:
    """The source's dispatches not ended yet (queued or running)."""
    rows = database.fetchall(
        "SELECT * FROM dispatches WHERE source = %s AND state IN ('queued', 'running') "
        "ORDER BY requested_at",
        (source,),
    )
    return [_shown(row) for row in rows]


def stale(database: Database, lease: float, queued_for: float) -> list[dict[str, Any]]:
    """Dispatches that may have lost their worker or their message: running without a
    heartbeat for ``lease`` seconds, or queued for ``queued_for`` seconds."""
    now = time.time()
    rows = database.fetchall(
        "SELECT * FROM dispatches WHERE (state = 'running' AND heartbeat < %s) "
        "OR (state = 'queued' AND requested_at < %s) ORDER BY requested_at",
        (now - lease, now - queued_for),
    )
    return [_shown(row) for row in rows]


def latest_due(database: Database, source: str) -> str | None:
    """The latest due time a scheduler dispatched ``source`` for, if any."""
    row = database.fetchone(
        "SELECT max(due) AS due FROM dispatches WHERE source = %s AND due IS NOT NULL",
        (source,),
    )
    return row["due"] if row else None


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    data = dict(row)
    data["summary"] = orjson.loads(data["summary"]) if data["summary"] else None
    return data
