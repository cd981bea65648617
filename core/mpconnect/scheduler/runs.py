"""One scheduled run: the engine's call, its outcome and a line that tells it, and a
ledger row for an attempt that failed before the engine could record one."""

from __future__ import annotations

import logging
import time
import uuid

from mpconnect.engine import Engine, RunOptions, RunSummary
from mpconnect.engine.wording import loaded
from mpconnect.errors import MpconnectError, RunFailed, RunLocked

log = logging.getLogger("mpconnect.scheduler")


def run_source(engine: Engine, name: str, reason: str, options: RunOptions) -> tuple[str, str]:
    """Run ``name`` once; never raises for a failed run.

    :returns: ``(outcome, detail)``: outcome is ``succeeded``, ``superseded``,
        ``paused: REASON``, ``locked``, ``interrupted`` or ``failed``; detail says what was
        loaded or what went wrong.
    """
    started = time.time()
    log.info("%s: starting run (%s)", name, reason)
    outcome, detail = "failed", ""
    try:
        summary = engine.run(name, options)
        outcome = summary.status  # succeeded, or superseded by a newer live version
        detail = (
            f"read {summary.read:,}, imported {summary.imported:,}, quarantined "
            f"{summary.quarantined:,}; "
            f"{loaded(summary.versioned, summary.version_id, summary.batches)} "
            f"in {summary.duration:.1f} s" + (f"; {summary.error}" if summary.error else "")
        )
    except RunLocked as exc:
        outcome, detail = "locked", str(exc)
    except RunFailed as exc:
        rows = engine.ledger.list_runs(name, limit=1)
        if rows and rows[0]["status"] == "interrupted":
            outcome = "interrupted"
        detail = str(exc)
    except MpconnectError as exc:
        detail = str(exc)
        record_failed_attempt(engine, name, started, detail)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        log.debug("%s: run raised", name, exc_info=True)
        record_failed_attempt(engine, name, started, detail)
    return outcome, detail


def record_failed_attempt(engine: Engine, name: str, started: float, error: str) -> None:
    """Put an attempt that failed before the engine recorded it into the run ledger."""
    rows = engine.ledger.list_runs(name, limit=1)
    if rows and rows[0]["started_at"] >= started:
        return
    source = engine.config.sources.get(name)
    summary = RunSummary(
        run_id=time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8],
        source=name,
        dataset_id=source.dataset_id if source else "-",
        sink=engine.config.mixpanel.sink,
        status="failed",
        started_at=started,
        ended_at=time.time(),
        error=error,
    )
    engine.ledger.record_run(summary)
