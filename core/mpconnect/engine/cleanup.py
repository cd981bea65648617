"""Removing spools no run will resume, first thing in a run: a full disk left by a
crashed run must not stop the next one before it can clean up."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from mpconnect.engine.ledger import RunLedger
from mpconnect.engine.spool import remove_spool

log = logging.getLogger("mpconnect.engine")


def remove_dead_spools(ledger: RunLedger, source: str) -> list[Path]:
    """Delete this machine's spools of ``source`` that cannot be resumed: all but the one
    of the latest unfinished version whose extraction finished. Call it holding the
    source's lock, so no other run of the source is writing a spool.

    Only reads the ledger, so it works on a full disk. Returns the directories removed.
    """
    point = ledger.resume_point(source)
    keep = point.spool_dir if point is not None and point.extraction_done else None
    host = socket.gethostname()
    removed: list[Path] = []
    for run in ledger.list_runs(source, limit=1000):
        raw = run.get("spool_dir")
        if not raw or (run.get("host") or host) != host:
            continue
        spool = Path(raw)
        if spool != keep and spool not in removed and spool.is_dir():
            log.info(
                "%s: removing the spool of run %s, which no run will resume", source, run["run_id"]
            )
            remove_spool(spool)
            removed.append(spool)
    return removed
