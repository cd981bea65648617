"""Where a run's version comes from: whether the unfinished version of an earlier run may
be resumed (:func:`refusal`, :func:`resume_point`), abandoning one that may not
(:func:`abandon`), and opening the version the run loads (:func:`open_version`).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from mpconnect.engine.ledger import ResumePoint, RunLedger
from mpconnect.engine.phases import phase
from mpconnect.engine.resume_key import ResumeKey
from mpconnect.engine.spool import batch_is_whole, remove_spool
from mpconnect.engine.wording import resuming, sink_is_versioned, snapshot_name
from mpconnect.errors import MpconnectError
from mpconnect.plugins import notify

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run

log = logging.getLogger("mpconnect.engine")


def refusal(
    ledger: RunLedger, point: ResumePoint, key: ResumeKey, restart: bool = False
) -> str | None:
    """Why ``point`` may not be resumed by a run under ``key``, from what is on this
    machine (None: it may, if the sink still has the version)."""
    if restart:
        return "--restart given"
    changes = key.changes_since(ResumeKey.loads(point.resume_key))
    if changes:
        return "; ".join(changes)
    if not point.extraction_done:
        return "its extraction did not finish (a snapshot never mixes two extractions)"
    if point.host != socket.gethostname():
        return "its spool is not on this machine"
    if not point.spool_dir.is_dir():
        return f"its spool {point.spool_dir} is gone"
    if not all(batch_is_whole(b) for b in ledger.unacked_batches(point.spool_id)):
        return "spooled batches are missing or damaged"
    return None


def resume_point(run: Run) -> ResumePoint | None:
    """The unfinished version this run resumes, or None; one that may not be resumed
    (see :func:`refusal`, or gone from the sink) is abandoned."""
    point = run.ledger.resume_point(run.source.name)
    if point is None:
        return None
    reason = refusal(run.ledger, point, run.resume_key, run.options.restart)
    if reason is None and run.options.full_refresh:
        reason = "--full-refresh given"
    if (
        reason is None
        and run.sink.versioned
        and run.api(lambda: run.sink.get_version(run.source.dataset_id, point.version_id)) is None
    ):
        reason = "the version no longer exists in the sink"
    if reason is None:
        return point
    abandon(run, point, reason)
    return None


def abandon(run: Run, point: ResumePoint, reason: str) -> None:
    """Give up an unfinished version: delete it from the sink (if it is this run's
    target), mark its run abandoned in the ledger and remove its spool."""
    versioned = sink_is_versioned(run.plugins, point.sink or run.sink.name)
    log.warning(
        "%s: abandoning unfinished %s: %s",
        run.source.name,
        snapshot_name(versioned, point.version_id),
        reason,
    )
    if run.sink.versioned and point.target in (None, run.target):
        try:
            run.api(lambda: run.sink.delete_version(run.source.dataset_id, point.version_id))
        except MpconnectError as exc:
            log.warning(
                "%s: could not delete abandoned version %s: %s",
                run.source.name,
                point.version_id,
                exc,
            )
    run.ledger.set_status(point.run_id, "abandoned", f"abandoned: {reason}")
    if point.host == socket.gethostname():
        remove_spool(point.spool_dir)


def open_version(run: Run, resume: ResumePoint | None) -> tuple[str, Path]:
    """Take over the resumed version, or create a new one; record the run with its spool
    in the ledger and return ``(spool_id, spool_dir)``."""
    summary = run.summary
    if resume is not None:
        summary.version_id = resume.version_id
        summary.resumed = True
        spool_id, spool_dir = resume.spool_id, resume.spool_dir
        # One quarantine file per snapshot: the extraction's, whose count goes on.
        run.quarantine.path = run.quarantine_path(spool_id)
        run.quarantine.count = resume.quarantined
        run.duplicates.count = resume.duplicates
        summary.quarantine_file = str(run.quarantine.path)
        run.ledger.set_status(resume.run_id, "resumed", f"resumed by run {summary.run_id}")
        log.info("%s: %s", run.source.name, resuming(run.sink.versioned, resume.version_id))
    else:
        if run.sink.versioned:
            with phase(run.ledger, summary.run_id, "create"):
                created = run.api(lambda: run.sink.create_version(run.source.dataset_id))
            summary.version_id = created.version_id
        else:
            summary.version_id = summary.run_id
        spool_id = summary.run_id
        spool_dir = run.engine.home / "spool" / spool_id
    run.resumable = resume is not None
    # A resumed spool stays complete, so a resume of this resume works too.
    run.ledger.record_run(
        summary,
        spool_id=spool_id,
        spool_dir=spool_dir,
        host=socket.gethostname(),
        pid=os.getpid(),
        target=run.target,
        extraction_done=resume is not None,
        resume_key=run.resume_key.dumps(),
    )
    notify(
        run.plugins,
        "version_created",
        log,
        source=summary.source,
        dataset_id=summary.dataset_id,
        version_id=summary.version_id,
        sink=run.sink.name,
    )
    return spool_id, spool_dir
