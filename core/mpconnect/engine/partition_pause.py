"""A connector's pause (:class:`mpconnect.SourcePaused`) in a partitioned run.

The partition that pauses is recorded ``failed`` with the error ``paused: REASON`` in the
partition store, so any executor (this process, a worker process, another machine) tells
the run the same way; the executor then starts no further partition and stops the running
ones at their next checkpoint, and raises :class:`~mpconnect.SourcePaused`.

Unlike an unpartitioned pause, the version is neither deleted nor committed (its snapshot
is incomplete): it stays with its plan and its done partitions, and the next run resumes
it, reading only the partitions not done.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mpconnect.engine.ledger import PAUSED, paused_status
from mpconnect.engine.partition_store import PartitionRow
from mpconnect.errors import SourcePaused

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run

log = logging.getLogger("mpconnect.engine")


def pause_note(exc: SourcePaused) -> str:
    """The partition store's error for a partition its connector paused."""
    return paused_status(exc.reason)


def paused_reason(row: PartitionRow) -> str | None:
    """Why the connector paused the run in partition ``row``; None when it did not."""
    if row.status == "failed" and row.error and row.error.startswith(PAUSED):
        return row.error[len(PAUSED) :]
    return None


def raise_if_paused(row: PartitionRow) -> None:
    """Raise the connector's pause recorded on ``row``, if any.

    :raises SourcePaused: when the partition's connector paused the run.
    """
    reason = paused_reason(row)
    if reason is not None:
        raise SourcePaused(reason)


def end_partitions_paused(run: Run, spool_id: str, rows: list[PartitionRow]) -> None:
    """End a partitioned run its connector paused: keep the version, its plan and its
    done partitions for the next run (nothing is published or committed), show what was
    read and acknowledged, and mark the run ``paused: REASON``."""
    summary = run.summary
    summary.read = sum(row.read for row in rows)
    summary.batches, summary.imported = run.ledger.acked_totals(spool_id)
    done = sum(1 for row in rows if row.status == "done")
    summary.status = paused_status(run.paused or "")
    log.warning(
        "%s: %s with %d of %d partitions done; nothing published; the next run resumes "
        "version %s and reads the other %d",
        run.source.name,
        summary.status,
        done,
        len(rows),
        summary.version_id,
        len(rows) - done,
    )
