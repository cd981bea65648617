"""Reloading the scheduler's configuration: the file's digest (to see it changed) and
the sources' slots brought in line with the new plan."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from mpconnect.scheduler.plan import Plan
from mpconnect.scheduler.slots import Slot

log = logging.getLogger("mpconnect.scheduler")


def file_digest(path: Path | None) -> str | None:
    """The SHA-256 of the file at ``path``; None when there is none or it cannot be read."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def reschedule(
    slots: dict[str, Slot],
    pending: dict[str, Any],
    running: Mapping[str, object],
    plan: Plan,
    now: datetime,
    fmt: Callable[[datetime], str],
) -> None:
    """Drop the slots of sources the new plan no longer schedules (runs in progress go
    on) and give a new or changed schedule its next time; unchanged ones keep theirs."""
    for name in [n for n in slots if n not in plan.crons]:
        del slots[name]
        pending.pop(name, None)
        log.info(
            "%s: no longer scheduled%s",
            name,
            " (its run in progress continues)" if name in running else "",
        )
    for name, cron in plan.crons.items():
        slot = slots.get(name)
        if slot is not None and slot.cron == cron:
            continue
        slots[name] = Slot(cron=cron, next_due=cron.next_after(now))
        log.info(
            "%s: %s %r (%s); next run %s",
            name,
            "schedule now" if slot else "scheduled",
            cron.expression,
            plan.zone.key,
            fmt(slots[name].next_due),
        )
