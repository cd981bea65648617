"""``mpconnect schedule --distributed``: the leader enqueues each due run; it runs none.

However many are started, one scheduler leads (:class:`LeaderLock`); the others stand by
and take over within :data:`STANDBY_POLL` seconds of the leader's session ending. Each
due time is dispatched once: its dispatch row carries the time, and a unique index on
(source, due) refuses a second one, even from a leader that lost its lock a moment ago.

The rules of the single-machine scheduler, in the shared database:

- a source whose previous dispatch is still queued or running is skipped at its time
  (logged), never queued behind it;
- after a pause (no leader), a source whose latest due time was missed is dispatched
  once (``catch_up = "once"``) or not (``"skip"``); a source never dispatched before
  waits for its first time;
- a failed run is retried at the next due time (``retry_after`` is for one machine).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from mpconnect.distributed import dispatches
from mpconnect.distributed.dispatch import BrokerError, Dispatcher
from mpconnect.distributed.locks import LeaderLock
from mpconnect.errors import MpconnectError
from mpconnect.scheduler.clock import Clock, SystemClock
from mpconnect.scheduler.cron import format_time
from mpconnect.scheduler.plan import Plan

log = logging.getLogger("mpconnect.scheduler")

#: Seconds between a standby's attempts to become the leader.
STANDBY_POLL = 2.0


class DistributedScheduler:
    """Dispatches the plan's sources at their due times while it leads."""

    def __init__(self, plan: Plan, dispatcher: Dispatcher, clock: Clock | None = None) -> None:
        self.plan = plan
        self.dispatcher = dispatcher
        self.clock: Clock = clock or SystemClock()
        url = dispatcher.database.url
        self.leader = LeaderLock(url, "scheduler")
        self.stop = threading.Event()
        self._next: dict[str, datetime] = {}
        self.leader.on_lost = lambda reason: self.stop.set()

    def request_stop(self) -> None:
        """Stop at once (safe from a signal handler)."""
        self.stop.set()

    def serve(self) -> bool:
        """Stand by until leading, then dispatch until stopped.

        :returns: False when leadership was lost (the caller exits; a restarted process
            stands by again), True after a requested stop.
        """
        announced = False
        while not self.stop.is_set():
            if self.leader.try_acquire():
                break
            if not announced:
                log.info(
                    "standing by: another scheduler leads (%s); taking over when it stops",
                    self.leader.current() or "?",
                )
                announced = True
            self.stop.wait(STANDBY_POLL)
        if self.stop.is_set():
            return True
        log.info("leading: dispatching due runs (holder %s)", self.leader.holder)
        try:
            self._begin(self.clock.now())
            while not self.stop.is_set():
                wake = self.step(self.clock.now())
                timeout = max((wake - self.clock.now()).total_seconds(), 0.0) if wake else 3600
                self.clock.wait(self.stop, min(timeout, 5.0))
        finally:
            lost = self.leader.lost.is_set()
            self.leader.release()
        if lost:
            log.error("lost the leadership; stopping (restart to stand by again)")
            return False
        log.info("scheduler stopped")
        return True

    def _begin(self, now: datetime) -> None:
        catch_up = self.plan.config.scheduler.catch_up
        for name, cron in self.plan.crons.items():
            self._next[name] = cron.next_after(now)
            latest = cron.latest_at_or_before(now)
            last = dispatches.latest_due(self.dispatcher.database, name)
            if last is not None and last < _key(latest):
                if catch_up == "once":
                    log.info(
                        "%s: its run at %s was missed while no scheduler led; dispatching it "
                        'once now (catch_up = "once")',
                        name,
                        self._fmt(latest),
                    )
                    self._dispatch(name, latest)
                else:
                    log.info(
                        '%s: its run at %s was missed; skipped (catch_up = "skip")',
                        name,
                        self._fmt(latest),
                    )
            log.info(
                "%s: schedule %r; next run %s", name, cron.expression, self._fmt(self._next[name])
            )

    def step(self, now: datetime) -> datetime | None:
        """Dispatch what is due at ``now``, send again the runs of lost workers; return
        when something next falls due."""
        try:
            self.dispatcher.rescue()
        except MpconnectError as exc:
            log.error("could not look for runs of lost workers: %s", exc)
        for name, cron in self.plan.crons.items():
            if now >= self._next[name]:
                due = cron.latest_at_or_before(now)
                self._next[name] = cron.next_after(now)
                self._dispatch(name, due)
        return min(self._next.values(), default=None)

    def _dispatch(self, name: str, due: datetime) -> None:
        database = self.dispatcher.database
        try:
            going = dispatches.open_of(database, name)
            if going:
                log.warning(
                    "%s: skipped the run due at %s: dispatch %s is still %s; next run %s",
                    name,
                    self._fmt(due),
                    going[0]["dispatch_id"],
                    going[0]["state"],
                    self._fmt(self._next[name]),
                )
                return
            made = self.dispatcher.dispatch(name, "scheduler", _key(due))
        except (BrokerError, MpconnectError) as exc:
            log.error("%s: the run due at %s was not dispatched: %s", name, self._fmt(due), exc)
            return
        if made is None:
            log.info("%s: the run due at %s was dispatched already", name, self._fmt(due))
        else:
            log.info("%s: dispatched the run due at %s (%s)", name, self._fmt(due), made)

    def _fmt(self, moment: datetime) -> str:
        return format_time(moment, self.plan.zone)


def _key(due: datetime) -> str:
    """A due time as dispatches store it: ISO 8601 in UTC (sorts as time does)."""
    from datetime import UTC

    return due.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
