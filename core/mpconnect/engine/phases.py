"""Recording when each phase of a run began and ended, for the status page's timeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from mpconnect.engine.ledger import RunLedger
from mpconnect.errors import MpconnectError

log = logging.getLogger("mpconnect.engine")

#: The phases of a run, in order; the engine records those a run goes through.
PHASES = ("create", "extract", "import", "publish", "live", "prune")


@contextmanager
def phase(ledger: RunLedger, run_id: str, name: str) -> Iterator[None]:
    """Record phase ``name`` of run ``run_id`` in the ledger: its start on entry, its end
    and outcome on exit. A ledger that cannot record it costs the run nothing."""
    started = time.time()
    _record(ledger, run_id, name, started, None, None)
    ok = False
    try:
        yield
        ok = True
    finally:
        _record(ledger, run_id, name, started, time.time(), ok)


def _record(
    ledger: RunLedger, run_id: str, name: str, started: float, ended: float | None, ok: bool | None
) -> None:
    try:
        ledger.record_phase(run_id, name, started, ended, ok)
    except MpconnectError as exc:
        log.debug("could not record phase %s of run %s: %s", name, run_id, exc)
