"""The scheduler: runs each scheduled source at its times, a few at once, never twice at once.

One thread decides (:meth:`Scheduler.step`, called in a loop by :meth:`Scheduler.serve`);
each run gets its own thread and its own engine call. The rules:

- at most ``[scheduler] max_parallel`` runs at once; a source that comes due while all
  slots are taken waits for one (it is *pending*);
- a source never overlaps itself: when its time comes while its previous run is still
  going (or pending), that time is skipped and logged, not queued; another process
  holding the source's lock (``mpconnect run``) is skipped the same way;
- a failed run is retried at the next scheduled time, or sooner with
  ``retry_after`` seconds, doubling after each further failure; a paused run
  (``paused: REASON``) is no failure: its next scheduled run goes on from it;
- at start, a source whose latest scheduled time passed while the scheduler was down
  runs once (``catch_up = "once"``) or waits for its next time (``"skip"``); a source
  whose last run was interrupted runs once when the engine would resume its unfinished
  version (not when the version was published, nor when what shapes it changed);
- :meth:`Scheduler.request_reload` (SIGHUP) or a changed file (polled) reloads the
  configuration; runs in progress continue, an invalid file is reported and ignored;
- :meth:`Scheduler.request_stop` (SIGTERM, SIGINT) starts nothing more and asks running
  runs to stop at their next checkpoint (status ``interrupted``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from mpconnect.config import Config, load_config
from mpconnect.engine import Engine, RunOptions
from mpconnect.engine.ledger import PAUSED
from mpconnect.engine.progress import Progress
from mpconnect.errors import MpconnectError
from mpconnect.plugins import Plugins
from mpconnect.scheduler.clock import Clock, SystemClock
from mpconnect.scheduler.cron import format_time
from mpconnect.scheduler.heartbeat import Heartbeat
from mpconnect.scheduler.plan import Plan, make_plan
from mpconnect.scheduler.reload import file_digest, reschedule
from mpconnect.scheduler.runs import run_source
from mpconnect.scheduler.slots import Slot
from mpconnect.scheduler.startup import start_reason
from mpconnect.scheduler.state import SchedulerLock, SchedulerState

log = logging.getLogger("mpconnect.scheduler")


class Scheduler:
    """Runs the scheduled sources of a configuration until asked to stop.

    :param plan: the checked configuration (:func:`mpconnect.scheduler.plan.make_plan`).
    :param plugins: the loaded plugins (new configurations are checked against them).
    :param home: the data directory: the scheduler keeps ``scheduler.json`` there.
    :param clock: the clock (tests pass one they can move).
    :param load: reads the configuration again on reload (default: the same file).
    :param engine_factory: makes the engine for a configuration.
    :param progress_factory: makes each run's progress reporter.
    :param reload_interval: seconds between checks of the file for changes; None: never.
    :param stop_timeout: seconds :meth:`serve` waits for running runs after a stop.
    """

    def __init__(
        self,
        plan: Plan,
        plugins: Plugins,
        *,
        home: Path,
        clock: Clock | None = None,
        load: Callable[[], Config] | None = None,
        engine_factory: Callable[[Config], Engine] | None = None,
        progress_factory: Callable[[], Progress] = Progress,
        reload_interval: float | None = 10.0,
        stop_timeout: float = 60.0,
    ) -> None:
        self.plugins = plugins
        self.home = home
        self.clock: Clock = clock or SystemClock()
        path = plan.config.path
        self._load = load or ((lambda: load_config(path)) if path else None)
        self._engine_factory = engine_factory or (lambda config: Engine(config, plugins, home))
        self._progress_factory = progress_factory
        self.reload_interval = reload_interval
        self.stop_timeout = stop_timeout
        self.state = SchedulerState(home / "scheduler.json")
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop_runs = threading.Event()
        self._force = threading.Event()
        self._stopping = False
        self._reload_requested = False
        self._started = False
        self._plan = plan
        self._engine = self._engine_factory(plan.config)
        self._slots: dict[str, Slot] = {}
        self._pending: dict[str, tuple[str, datetime | None]] = {}  # reason, scheduled time
        self._running: dict[str, threading.Thread] = {}
        self._file_digest = file_digest(path)
        self._rejected_digest: str | None = None
        self._next_poll: datetime | None = None
        #: Beats each time the loop goes round (``/healthz``).
        self.heartbeat = Heartbeat()

    # -- what tests and the command line look at -----------------------------------------

    @property
    def plan(self) -> Plan:
        """The configuration in use."""
        return self._plan

    @property
    def running(self) -> list[str]:
        """Sources with a run in progress."""
        with self._cond:
            return sorted(self._running)

    @property
    def pending(self) -> list[str]:
        """Sources due and waiting for a free slot, in the order they came due."""
        with self._cond:
            return list(self._pending)

    def next_run(self, source: str) -> datetime | None:
        """When ``source`` runs next (its next scheduled time, or an earlier retry)."""
        with self._cond:
            slot = self._slots.get(source)
            return self._slot_next(slot) if slot else None

    def next_wake(self) -> datetime | None:
        """When something next falls due: a scheduled time, a retry, a look at the file."""
        with self._cond:
            return self._next_wake()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in progress or pending; return False after ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running and not self._pending, timeout)

    # -- requests (safe from signal handlers: they take no lock) -------------------------

    def request_stop(self, force: bool = False) -> None:
        """Start nothing more; ask running runs to stop at their next checkpoint.

        :param force: also stop waiting for them (a second SIGINT/SIGTERM).
        """
        self._stopping = True
        self._stop_runs.set()
        if force:
            self._force.set()
        self._wake.set()

    def request_run(self, source: str) -> str:
        """Queue a run of ``source`` now ("run now" on the status page); return what
        happened, in words."""
        with self._cond:
            if self._stopping:
                return f"{source}: not started: the scheduler is stopping"
            if source not in self._slots:
                return f"{source}: not started: it has no schedule here"
            if source in self._running or source in self._pending:
                return f"{source}: not started: a run is already going or waiting"
            self._make_due(source, "asked for on the status page", None)
        self._wake.set()
        return f"{source}: run queued"

    def request_reload(self) -> None:
        """Reload the configuration at the next step (SIGHUP)."""
        self._reload_requested = True
        self._wake.set()

    # -- the loop ------------------------------------------------------------------------

    def serve(self) -> bool:
        """Run sources until :meth:`request_stop`, then wait for running runs.

        :returns: True when every run ended before ``stop_timeout``.
        :raises MpconnectError: when another scheduler uses the same data directory.
        """
        lock = SchedulerLock(self.home / "scheduler.lock")
        lock.acquire()
        try:
            while not self._stopping:
                self.heartbeat.beat()
                self._wake.clear()
                wake_at = self.step()
                if self._stopping:
                    break
                timeout = 3600.0
                if wake_at is not None:
                    timeout = max((wake_at - self.clock.now()).total_seconds(), 0.0)
                self.clock.wait(self._wake, timeout)
            return self._drain()
        finally:
            lock.release()

    def step(self) -> datetime | None:
        """Do what is due now: reload, start due runs, skip overlapping ones.

        :returns: when something next falls due (None: nothing scheduled).
        """
        now = self.clock.now()
        with self._cond:
            if self._stopping:
                return None
            if not self._started:
                self._begin(now)
            self._maybe_reload(now)
            for name, slot in self._slots.items():
                if now >= slot.next_due:
                    due = slot.cron.latest_at_or_before(now)
                    slot.next_due = slot.cron.next_after(now)
                    slot.retry_at = None
                    self._make_due(name, f"scheduled for {self._fmt(due)}", due)
                elif slot.retry_at is not None and now >= slot.retry_at:
                    slot.retry_at = None
                    self._make_due(name, f"retry {slot.failures} after a failed run", None)
            self._start_pending()
            return self._next_wake()

    def _begin(self, now: datetime) -> None:
        """Set up every source's next time; resume interrupted runs, catch up missed ones."""
        self._started = True
        plan = self._plan
        if not plan.crons:
            log.warning(
                "no source has a schedule; nothing to run until the configuration "
                'gives one (schedule = "0 * * * *" in a [sources.NAME] table)'
            )
        catch_up = plan.config.scheduler.catch_up
        for name, cron in plan.crons.items():
            self._slots[name] = Slot(cron=cron, next_due=cron.next_after(now))
            reason, due = start_reason(
                name, cron, now, self._engine, self.state, catch_up, self._fmt
            )
            if reason is not None:
                self._make_due(name, reason, due)
            log.info(
                "%s: schedule %r (%s); next run %s",
                name,
                cron.expression,
                plan.zone.key,
                self._fmt(self._slots[name].next_due),
            )
        if self.reload_interval:
            self._next_poll = now + timedelta(seconds=self.reload_interval)

    # -- due, pending, running -----------------------------------------------------------

    def _make_due(self, name: str, reason: str, due: datetime | None) -> None:
        """Queue a run of ``name``, or skip it while one is running or pending.

        ``due`` (a scheduled time) is remembered as handled once its run starts or is
        skipped, so a time still pending at a stop is caught up at the next start.
        """
        slot = self._slots[name]
        if name in self._running:
            if due is not None:
                self.state.set_last_due(name, due)
            log.warning(
                "%s: skipped the run %s: the previous run is still going; next run %s",
                name,
                reason,
                self._fmt(slot.next_due),
            )
        elif name in self._pending:
            log.warning(
                "%s: skipped the run %s: the previous one is still waiting for a free "
                "slot (max_parallel = %d); next run %s",
                name,
                reason,
                self._plan.config.scheduler.max_parallel,
                self._fmt(slot.next_due),
            )
        else:
            self._pending[name] = (reason, due)

    def _start_pending(self) -> None:
        limit = self._plan.config.scheduler.max_parallel
        while self._pending and len(self._running) < limit and not self._stopping:
            name = next(iter(self._pending))
            reason, due = self._pending.pop(name)
            if name not in self._slots:
                continue
            if due is not None:
                self.state.set_last_due(name, due)
            thread = threading.Thread(
                target=self._run_one,
                args=(name, self._engine, reason),
                name=f"mpconnect-run-{name}",
                daemon=True,
            )
            self._running[name] = thread
            thread.start()
        if self._pending and not self._stopping:
            log.debug(
                "waiting for a free slot (max_parallel = %d): %s", limit, ", ".join(self._pending)
            )

    def _run_one(self, name: str, engine: Engine, reason: str) -> None:
        outcome, detail = "failed", ""
        try:
            options = RunOptions(stop=self._stop_runs, progress=self._progress_factory())
            outcome, detail = run_source(engine, name, reason, options)
        finally:
            self._finished(name, outcome, detail)

    def _finished(self, name: str, outcome: str, detail: str) -> None:
        with self._cond:
            self._running.pop(name, None)
            slot = self._slots.get(name)
            if slot is None:
                log.info("%s: run %s (%s); no longer scheduled", name, outcome, detail)
            elif outcome == "succeeded":
                slot.failures, slot.retry_at = 0, None
                log.info(
                    "%s: run succeeded: %s; next run %s", name, detail, self._fmt(slot.next_due)
                )
            elif outcome == "superseded":  # its data is loaded; another run's went live
                slot.failures, slot.retry_at = 0, None
                log.warning(
                    "%s: run superseded: %s; next run %s", name, detail, self._fmt(slot.next_due)
                )
            elif outcome == "interrupted":
                log.info("%s: run interrupted (%s)", name, detail)
            elif outcome.startswith(PAUSED):  # not a failure: retrying soon would not help
                slot.failures, slot.retry_at = 0, None
                log.warning(
                    "%s: run %s: %s; the next run, %s, continues where it stopped",
                    name,
                    outcome,
                    detail,
                    self._fmt(slot.next_due),
                )
            elif outcome == "locked":
                log.warning("%s: skipped: %s; next run %s", name, detail, self._fmt(slot.next_due))
            else:
                slot.failures += 1
                self._plan_retry(name, slot, detail)
            if not self._stopping:
                self._start_pending()
            self._cond.notify_all()
        self._wake.set()

    def _plan_retry(self, name: str, slot: Slot, detail: str) -> None:
        backoff = self._plan.config.scheduler.retry_after
        if backoff is not None:
            # The exponent is capped: past it the wait is longer than any schedule's period.
            delay = backoff * 2 ** min(slot.failures - 1, 20)
            retry_at = self.clock.now() + timedelta(seconds=delay)
            if retry_at < slot.next_due:
                slot.retry_at = retry_at
                log.warning(
                    "%s: run failed (%d in a row): %s; retrying at %s (retry_after)",
                    name,
                    slot.failures,
                    detail,
                    self._fmt(retry_at),
                )
                return
        log.warning(
            "%s: run failed (%d in a row): %s; retrying at the next scheduled time %s",
            name,
            slot.failures,
            detail,
            self._fmt(slot.next_due),
        )

    def _drain(self) -> bool:
        with self._cond:
            for name, (reason, _) in self._pending.items():
                log.info("%s: not started (%s): the scheduler is stopping", name, reason)
            self._pending.clear()
            if self._running:
                log.info(
                    "stopping: waiting up to %.0f s for %s to reach a checkpoint",
                    self.stop_timeout,
                    ", ".join(sorted(self._running)),
                )
            deadline = time.monotonic() + self.stop_timeout
            while self._running and not self._force.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
            if self._running:
                log.warning(
                    "stopping without waiting for %s: the next run resumes or restarts it",
                    ", ".join(sorted(self._running)),
                )
                return False
        log.info("scheduler stopped")
        return True

    def _next_wake(self) -> datetime | None:
        times = [self._slot_next(slot) for slot in self._slots.values()]
        if self._next_poll is not None:
            times.append(self._next_poll)
        return min(times) if times else None

    @staticmethod
    def _slot_next(slot: Slot) -> datetime:
        return min(slot.next_due, slot.retry_at) if slot.retry_at else slot.next_due

    def _fmt(self, moment: datetime) -> str:
        return format_time(moment, self._plan.zone)

    # -- reloading -----------------------------------------------------------------------

    def _maybe_reload(self, now: datetime) -> None:
        if self._reload_requested:
            self._reload_requested = False
            self._reload(now, self._current_digest())
            return
        if self._next_poll is None or now < self._next_poll or self.reload_interval is None:
            return
        self._next_poll = now + timedelta(seconds=self.reload_interval)
        digest = self._current_digest()
        if digest != self._file_digest and digest != self._rejected_digest:
            log.info("%s changed; reloading it", self._plan.config.path)
            self._reload(now, digest)

    def _current_digest(self) -> str | None:
        return file_digest(self._plan.config.path)

    def _reload(self, now: datetime, digest: str | None) -> bool:
        if self._load is None:
            log.info("no configuration file to reload (the built-in configuration is in use)")
            return False
        try:
            plan = make_plan(self._load(), self.plugins)
        except (MpconnectError, OSError) as exc:
            self._rejected_digest = digest
            log.error("configuration not reloaded, keeping the previous one: %s", exc)
            return False
        self._file_digest, self._rejected_digest = digest, None
        self._plan = plan
        self._engine = self._engine_factory(plan.config)
        reschedule(self._slots, self._pending, self._running, plan, now, self._fmt)
        log.info(
            "configuration reloaded from %s: %d scheduled sources",
            plan.config.path,
            len(plan.crons),
        )
        return True
