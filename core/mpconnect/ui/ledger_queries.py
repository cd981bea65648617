"""Bounded queries of a run ledger's tables for the status pages, in SQL that SQLite and
PostgreSQL both run: per-source totals for ``/metrics`` (a few rows per source, however
long the history) and a partitioned run's partitions.

``fetch(sql, params)`` runs one statement and returns its rows as dicts; ``?`` in the SQL
here is replaced by the database's placeholder (``mark``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any

from mpconnect.redact import redact

Fetch = Callable[[str, tuple[Any, ...]], list[dict[str, Any]]]
#: Run statuses that end a run well (its records are loaded).
SUCCESSES = ("succeeded", "superseded")
#: The per-source sums ``/metrics`` exposes.
SUMS = ("read", "imported", "quarantined", "retries", "throttled", "uploaded_bytes")

_BY_STATUS = """
SELECT source, status, COUNT(*) AS runs, SUM(read) AS read,
  SUM(CASE WHEN status = 'running' AND spool_id IS NOT NULL THEN 0 ELSE imported END)
    AS imported,
  SUM(quarantined) AS quarantined, SUM(retries) AS retries, SUM(throttled) AS throttled,
  SUM(uploaded_bytes) AS uploaded_bytes
FROM runs GROUP BY source, status
"""
# A running run's counts are written at its end: what it imported so far is acknowledged.
_RUNNING = "SELECT source, spool_id FROM runs WHERE status = 'running' AND spool_id IS NOT NULL"
_ACKED = "SELECT SUM(imported) AS imported FROM batches WHERE spool_id = {mark} AND acked = 1"
# The newest finished (successful) run of one source: the index on (source, started_at)
# is walked from its end, so each costs a few rows however long the history.
_LAST_FINISHED = (
    "SELECT started_at, ended_at FROM runs WHERE source = {mark} AND ended_at IS NOT NULL "
    "ORDER BY started_at DESC LIMIT 1"
)
_LAST_SUCCEEDED = (
    "SELECT ended_at FROM runs WHERE source = {mark} AND ended_at IS NOT NULL "
    "AND status IN ('succeeded', 'superseded') ORDER BY started_at DESC LIMIT 1"
)


def empty_totals() -> dict[str, Any]:
    """Totals with no runs: ``sums`` per source, ``statuses`` per (source, status),
    ``last_duration`` and ``last_success`` per source."""
    return {"sums": {}, "statuses": {}, "last_duration": {}, "last_success": {}}


def run_totals(fetch: Fetch, mark: str) -> dict[str, Any]:
    """The totals of every run (see :func:`empty_totals`): one grouped query, and a few
    indexed ones per source and per running run."""
    totals = empty_totals()
    sums: dict[str, collections.Counter[str]] = {}
    for row in fetch(_BY_STATUS, ()):
        counter = sums.setdefault(row["source"], collections.Counter())
        for name in SUMS:
            counter[name] += int(row[name] or 0)
        totals["statuses"][(row["source"], row["status"])] = int(row["runs"])
    for row in fetch(_RUNNING, ()):
        acked = fetch(_ACKED.format(mark=mark), (row["spool_id"],))
        imported = int(acked[0]["imported"] or 0) if acked else 0
        sums.setdefault(row["source"], collections.Counter())["imported"] += imported
    totals["sums"] = {source: dict(counter) for source, counter in sums.items()}
    for source in sorted(sums):
        last = fetch(_LAST_FINISHED.format(mark=mark), (source,))
        if last:
            duration = float(last[0]["ended_at"]) - float(last[0]["started_at"])
            totals["last_duration"][source] = round(duration, 3)
        success = fetch(_LAST_SUCCEEDED.format(mark=mark), (source,))
        if success:
            totals["last_success"][source] = float(success[0]["ended_at"])
    return totals


def totals_of_runs(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The same totals from runs listed newest first (a source without SQL)."""
    totals = empty_totals()
    for run in runs:
        source = run["source"]
        counter = totals["sums"].setdefault(source, dict.fromkeys(SUMS, 0))
        for name in SUMS:
            counter[name] += int(run.get(name) or 0)
        key = (source, run["status"])
        totals["statuses"][key] = totals["statuses"].get(key, 0) + 1
        if run.get("duration") is not None:
            totals["last_duration"].setdefault(source, float(run["duration"]))
        if run["status"] in SUCCESSES and run.get("ended_at"):
            totals["last_success"].setdefault(source, float(run["ended_at"]))
    return totals


def partitions(fetch: Fetch, mark: str, spool_id: str) -> list[dict[str, Any]]:
    """The partitions of the run whose spool is ``spool_id``, in order, each with the
    records its batches (spool ``SPOOL@pNNN``) imported; errors redacted."""
    rows = fetch(f"SELECT * FROM partitions WHERE spool_id = {mark} ORDER BY idx", (spool_id,))
    if not rows:
        return []
    imported: dict[int, tuple[int, int]] = {}
    prefix = f"{spool_id}@p"
    acked = fetch(
        "SELECT spool_id, COUNT(*) AS batches, SUM(imported) AS imported FROM batches "
        f"WHERE spool_id LIKE {mark} AND acked = 1 GROUP BY spool_id",
        (_like_prefix(prefix) + "%",),
    )
    for row in acked:
        suffix = str(row["spool_id"])[len(prefix) :]
        if str(row["spool_id"]).startswith(prefix) and suffix.isdigit():
            imported[int(suffix)] = (int(row["batches"]), int(row["imported"] or 0))
    result = []
    for row in rows:
        index = int(row["idx"])
        batches, records = imported.get(index, (0, 0))
        started, ended = row.get("started_at"), row.get("ended_at")
        result.append(
            {
                "index": index,
                "key": None if row.get("key") is None else redact(str(row["key"])),
                "status": row.get("status"),
                "attempts": int(row.get("attempts") or 0),
                "worker": row.get("worker"),
                "read": int(row.get("read") or 0),
                "imported": records,
                "batches": batches,
                "quarantined": int(row.get("quarantined") or 0),
                "duplicates": int(row.get("duplicates") or 0),
                "retries": int(row.get("retries") or 0),
                "throttled": int(row.get("throttled") or 0),
                "started_at": started,
                "ended_at": ended,
                "duration": round(ended - started, 3) if started and ended else None,
                "error": redact(str(row["error"])) if row.get("error") else None,
            }
        )
    return result


def _like_prefix(text: str) -> str:
    """``text`` for a LIKE pattern: ``%`` becomes the one-character wildcard, so the
    pattern may match a little more than the prefix (never less); the caller keeps only
    the exact prefix."""
    return text.replace("%", "_")
