"""What the scheduler does for a source when it starts: resume a run a stop or a crash
cut short, catch up a time missed while it was down (``catch_up``), or nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from mpconnect.engine import Engine
from mpconnect.scheduler.cron import CronSchedule
from mpconnect.scheduler.state import SchedulerState

log = logging.getLogger("mpconnect.scheduler")

#: Ledger statuses of a last run that a stop or a crash cut short: resumed at start.
UNFINISHED_BY_STOP = ("interrupted", "running")


def start_reason(
    name: str,
    cron: CronSchedule,
    now: datetime,
    engine: Engine,
    state: SchedulerState,
    catch_up: str,
    fmt: Callable[[datetime], str],
) -> tuple[str | None, datetime | None]:
    """Whether ``name`` runs at once when the scheduler starts, and why.

    :returns: ``(reason, due)``: the reason in words (None: wait for the next time) and
        the scheduled time the run stands for (None: a resumed run, no scheduled time).
    """
    rows = engine.ledger.list_runs(name, limit=1)
    last_start = datetime.fromtimestamp(rows[0]["started_at"], UTC) if rows else None
    reason: str | None = None
    due: datetime | None = None
    if rows and rows[0]["status"] in UNFINISHED_BY_STOP:
        refusal = (
            f"its version {rows[0]['version_id']} was published and goes live by itself"
            if rows[0]["published"]
            else engine.resume_refusal(name)
        )
        if refusal is None:
            reason = f"resuming its run of {fmt(last_start or now)}, left unfinished"
            log.info(
                "%s: its last run (%s) did not finish; resuming it now", name, rows[0]["status"]
            )
        else:
            log.info(
                "%s: its last run (%s) did not finish; nothing to resume now (%s)",
                name,
                rows[0]["status"],
                refusal,
            )
    latest = cron.latest_at_or_before(now)
    handled = max(filter(None, (state.last_due(name), last_start)), default=None)
    if handled is not None and latest > handled:
        if catch_up == "once":
            log.info(
                "%s: its run at %s was missed while the scheduler was down; "
                'running it once now (catch_up = "once")',
                name,
                fmt(latest),
            )
            reason = reason or f"catching up the run missed at {fmt(latest)}"
            due = latest
        else:
            state.set_last_due(name, latest)
            log.info(
                "%s: its run at %s was missed while the scheduler was down; "
                'skipped (catch_up = "skip")',
                name,
                fmt(latest),
            )
    return reason, due
