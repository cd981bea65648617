"""The scheduler in-process, on a clock the tests move: no test waits for real minutes.

Runs go through the real engine into the embedded store. A "gate" connector holds a run
open until the test releases it, so overlap, parallelism and stopping are observed,
not guessed from timings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import mpconnect
import mpconnect_demo
from mpconnect.config import load_config
from mpconnect.engine import Engine, RunOptions
from mpconnect.engine.ledger import SqliteRunLedger
from mpconnect.engine.lock import FileSourceLock
from mpconnect.errors import ConfigError, MpconnectError, SinkError, SourceError
from mpconnect.plugins import Plugins, load_plugins
from mpconnect.scheduler import CronSchedule, Scheduler, load_zone, make_plan
from mpconnect.scheduler.state import SchedulerLock, SchedulerState
from mpconnect.sinks import builtin
from mpconnect.sinks.embedded import EmbeddedSink
from mpconnect.store.datasets import DatasetStore

pytestmark = pytest.mark.timeout(300)

T0 = datetime(2100, 1, 1, 10, 0, tzinfo=UTC)  # after every real run the ledger holds
UTC_ZONE = load_zone("UTC")
#: Seconds a wait on a run, the gate or the loop allows before failing the test: a safety
#: net for a hang, never reached by a test that is only slow (CI machines under load).
SAFETY_TIMEOUT = 120.0


def at(text: str) -> datetime:
    """``"10:05"`` or ``"10:05:30"`` on the test day, UTC."""
    parts = [int(p) for p in text.split(":")]
    return T0.replace(hour=parts[0], minute=parts[1], second=parts[2] if len(parts) > 2 else 0)


class ManualClock:
    """A clock that moves only when the test moves it."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        """The time the test set."""
        return self.moment

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Return when ``event`` is set, or once the test moved the clock past the timeout."""
        deadline = self.moment + timedelta(seconds=timeout)
        while not event.wait(0.005):
            if self.moment >= deadline:
                return False
        return True


class Gate:
    """Holds runs of the gate connector open until released; counts them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.active = 0
        self.peak = 0
        self.started: list[str] = []
        self.failures: dict[str, int] = {}
        self.pauses: dict[str, int] = {}
        self._release: dict[str, threading.Event] = {}

    def release_event(self, source: str) -> threading.Event:
        with self.cond:
            return self._release.setdefault(source, threading.Event())

    def release(self, *sources: str) -> None:
        for source in sources:
            self.release_event(source).set()

    def enter(self, source: str) -> None:
        with self.cond:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(source)
            self.cond.notify_all()

    def leave(self) -> None:
        with self.cond:
            self.active -= 1

    def wait_started(self, count: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.started) >= count, SAFETY_TIMEOUT), (
                self.started
            )


class GateSettings(mpconnect.ConnectorSettings):
    events: int = 5


def gate_plugin(gate: Gate) -> object:
    """A plugin registering the ``gate`` connector bound to ``gate``."""

    class GateConnector(mpconnect.Connector):
        name = "gate"
        Settings = GateSettings

        def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
            gate.enter(ctx.source)
            try:
                if not gate.release_event(ctx.source).wait(SAFETY_TIMEOUT):
                    raise SourceError("the test never released the gate")
                with gate.cond:
                    failing = gate.failures.get(ctx.source, 0)
                    gate.failures[ctx.source] = max(failing - 1, 0)
                    pausing = gate.pauses.get(ctx.source, 0)
                    gate.pauses[ctx.source] = max(pausing - 1, 0)
                if failing:
                    raise SourceError("the source refused (as the test asked)")
                if pausing:
                    raise mpconnect.SourcePaused("api quota", "as the test asked")
                for index in range(self.settings.events):
                    yield mpconnect.Event(
                        name="Tick",
                        distinct_id=f"user-{index}",
                        time=1_700_000_000 + index,
                        object_id=str(index),
                    )
            finally:
                gate.leave()

        def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
            return iter(())

    class BrokenSink(EmbeddedSink):
        name = "broken"

        def __init__(self, settings: Any, home: Path) -> None:
            raise SinkError("the broken sink cannot open (as the test asked)")

    class Plugin:
        @mpconnect.hookimpl
        def register_connectors(self, register: Callable[[type], None]) -> None:
            register(GateConnector)

        @mpconnect.hookimpl
        def register_sinks(self, register: Callable[[type], None]) -> None:
            register(BrokenSink)

    return Plugin()


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    for event in list(gate._release.values()):
        event.set()  # never leave a run thread blocked behind a failed test


@pytest.fixture
def plugins(gate: Gate) -> Plugins:
    return load_plugins([mpconnect_demo, builtin, gate_plugin(gate)], entry_points=False)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """The scheduler's log messages."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("mpconnect.scheduler")
    handler = Collect(logging.DEBUG)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(previous)


class Setup:
    """A configuration file, a data directory and the plugins, for one test."""

    def __init__(self, tmp_path: Path, plugins: Plugins) -> None:
        self.home = tmp_path / "home"
        self.config_path = tmp_path / "mpconnect.toml"
        self.plugins = plugins
        # Two runs opening a brand-new embedded store at the same instant can fail with
        # "database is locked" (its WAL switch; reported to the store's owner). A home that
        # has seen one run does not: start from such a home.
        DatasetStore(self.home / "embedded.sqlite3").close()
        self.schedulers: list[Scheduler] = []

    def write(self, text: str) -> None:
        self.config_path.write_text(text, encoding="utf-8")

    def scheduler(self, clock: ManualClock, **options: Any) -> Scheduler:
        plan = make_plan(load_config(self.config_path), self.plugins)
        options.setdefault("reload_interval", None)
        scheduler = Scheduler(plan, self.plugins, home=self.home, clock=clock, **options)
        self.schedulers.append(scheduler)
        return scheduler

    def runs(self, source: str) -> list[dict[str, Any]]:
        """The source's runs in the ledger, oldest first."""
        ledger = SqliteRunLedger(self.home / "ledger.sqlite3")
        return list(reversed(ledger.list_runs(source, limit=100)))


@pytest.fixture
def setup(tmp_path: Path, plugins: Plugins, gate: Gate) -> Iterator[Setup]:
    setup = Setup(tmp_path, plugins)
    yield setup
    for scheduler in setup.schedulers:  # a failed test must not leave a loop running
        scheduler.request_stop(force=True)
    gate.release(*gate.started)


def source(name: str, schedule: str, connector: str = "gate", events: int = 5) -> str:
    return (
        f'[sources.{name}]\nconnector = "{connector}"\ndataset_id = "{name.upper()}"\n'
        f'schedule = "{schedule}"\nsettings = {{ events = {events} }}\n'
    )


def start_serving(scheduler: Scheduler) -> tuple[threading.Thread, dict[str, bool]]:
    """Run :meth:`Scheduler.serve` in a thread; return once it has made its first step."""
    result: dict[str, bool] = {}
    loop = threading.Thread(target=lambda: result.update(ended=scheduler.serve()), daemon=True)
    loop.start()
    ready = threading.Event()
    while scheduler.next_wake() is None and loop.is_alive():
        ready.wait(0.005)
    return loop, result


def step_and_settle(scheduler: Scheduler, clock: ManualClock, moment: datetime) -> datetime:
    """Move the clock, do what is due, wait for the runs it started; return the next wake."""
    clock.moment = moment
    scheduler.step()
    assert scheduler.wait_idle(SAFETY_TIMEOUT), scheduler.running
    wake = scheduler.next_wake()
    assert wake is not None
    return wake


# -- cron expressions ----------------------------------------------------------------------


def test_five_fields_are_standard_cron_and_six_put_seconds_first() -> None:
    daily = CronSchedule("0 2 * * *", UTC_ZONE)
    assert daily.next_after(at("10:00")) == T0.replace(day=2, hour=2)
    assert daily.latest_at_or_before(at("10:00")) == T0.replace(hour=2)
    assert not daily.has_seconds
    every_ten_seconds = CronSchedule("*/10 * * * * *", UTC_ZONE)
    assert every_ten_seconds.has_seconds
    assert every_ten_seconds.next_after(at("10:00:05")) == at("10:00:10")
    assert every_ten_seconds.latest_at_or_before(at("10:00:10")) == at("10:00:10")
    assert CronSchedule("@hourly", UTC_ZONE).next_after(at("10:00")) == at("11:00")


def test_schedules_follow_the_configured_time_zone_across_daylight_saving() -> None:
    paris = load_zone("Europe/Paris")
    cron = CronSchedule("0 2 * * *", paris)
    winter = cron.next_after(datetime(2100, 1, 1, tzinfo=UTC))
    summer = cron.next_after(datetime(2100, 7, 1, tzinfo=UTC))
    assert winter.astimezone(UTC).hour == 1  # 02:00 CET
    assert summer.astimezone(UTC).hour == 0  # 02:00 CEST


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 2 * *", "write 5 fields"),
        ("1 2 3 4 5 6 7", "write 5 fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("@reboot", "write 5 fields"),
        ("0 2 * * mon-funday", "not a valid cron expression"),
    ],
)
def test_a_bad_expression_is_an_error_naming_the_key(expression: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        CronSchedule(expression, UTC_ZONE, "sources.billing.schedule")
    assert str(caught.value).startswith("sources.billing.schedule: ")


def test_an_unknown_time_zone_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"scheduler.timezone: unknown time zone 'Mars/Base'"):
        load_zone("Mars/Base")


def test_the_plan_checks_schedules_connectors_and_settings(setup: Setup) -> None:
    setup.write(source("a", "61 * * * *"))
    with pytest.raises(ConfigError, match=r"mpconnect.toml: sources.a.schedule: '61"):
        make_plan(load_config(setup.config_path), setup.plugins)
    setup.write(source("a", "0 * * * *", connector="nosuch"))
    with pytest.raises(MpconnectError, match=r"sources.a.connector: unknown connector 'nosuch'"):
        make_plan(load_config(setup.config_path), setup.plugins)
    setup.write(
        '[sources.a]\nconnector = "gate"\ndataset_id = "A"\nschedule = "0 * * * *"\n'
        "settings = { event = 3 }\n"
    )
    with pytest.raises(ConfigError, match=r"sources.a.settings.event: unknown key"):
        make_plan(load_config(setup.config_path), setup.plugins)
    setup.write('[scheduler]\ntimezone = "Mars/Base"\n' + source("a", "0 * * * *"))
    with pytest.raises(ConfigError, match=r"mpconnect.toml: scheduler.timezone: unknown"):
        make_plan(load_config(setup.config_path), setup.plugins)


# -- running at the right times ------------------------------------------------------------


def test_two_sources_on_different_schedules_run_at_their_times(
    setup: Setup, logs: list[str]
) -> None:
    setup.write(
        source("fast", "*/5 * * * *", "demo", 20) + source("slow", "*/15 * * * *", "demo", 30)
    )
    clock = ManualClock(at("09:58"))
    scheduler = setup.scheduler(clock)
    assert step_and_settle(scheduler, clock, at("09:58")) == at("10:00")
    assert "fast: schedule '*/5 * * * *' (UTC); next run 2100-01-01 10:00:00 UTC" in logs
    assert "slow: schedule '*/15 * * * *' (UTC); next run 2100-01-01 10:00:00 UTC" in logs
    assert setup.runs("fast") == setup.runs("slow") == []

    assert step_and_settle(scheduler, clock, at("10:00")) == at("10:05")
    assert step_and_settle(scheduler, clock, at("10:02")) == at("10:05")
    assert step_and_settle(scheduler, clock, at("10:05")) == at("10:10")
    assert step_and_settle(scheduler, clock, at("10:10")) == at("10:15")
    assert step_and_settle(scheduler, clock, at("10:15")) == at("10:20")

    fast, slow = setup.runs("fast"), setup.runs("slow")
    assert [r["status"] for r in fast] == ["succeeded"] * 4
    assert [r["status"] for r in slow] == ["succeeded"] * 2
    assert {r["imported"] for r in fast} == {20 + 2}  # 20 events, 2 reviewers
    assert {r["imported"] for r in slow} == {30 + 3}
    assert scheduler.next_run("fast") == at("10:20")
    assert scheduler.next_run("slow") == at("10:30")
    assert any(
        line.startswith("slow: run succeeded: read 33, imported 33")
        and line.endswith("next run 2100-01-01 10:30:00 UTC")
        for line in logs
    )


def test_a_source_never_overlaps_itself(setup: Setup, gate: Gate, logs: list[str]) -> None:
    setup.write(source("g", "* * * * *"))
    clock = ManualClock(at("10:00"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    clock.moment = at("10:01")
    scheduler.step()
    gate.wait_started(1)
    assert scheduler.running == ["g"]

    clock.moment = at("10:02")
    scheduler.step()
    clock.moment = at("10:03")
    scheduler.step()
    assert scheduler.running == ["g"] and scheduler.pending == []
    skipped = [line for line in logs if "skipped the run" in line]
    assert skipped == [
        "g: skipped the run scheduled for 2100-01-01 10:02:00 UTC: the previous run is still "
        "going; next run 2100-01-01 10:03:00 UTC",
        "g: skipped the run scheduled for 2100-01-01 10:03:00 UTC: the previous run is still "
        "going; next run 2100-01-01 10:04:00 UTC",
    ]
    gate.release("g")
    assert scheduler.wait_idle(SAFETY_TIMEOUT)
    assert [r["status"] for r in setup.runs("g")] == ["succeeded"]

    step_and_settle(scheduler, clock, at("10:04"))
    assert [r["status"] for r in setup.runs("g")] == ["succeeded", "succeeded"]
    assert gate.peak == 1


def test_a_source_running_in_another_process_is_skipped(setup: Setup, logs: list[str]) -> None:
    setup.write(source("a", "0 * * * *", "demo"))
    clock = ManualClock(at("09:59"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    with FileSourceLock(setup.home / "locks", "a", "someone-else"):
        step_and_settle(scheduler, clock, at("10:00"))
    assert setup.runs("a") == []
    assert any(
        line.startswith("a: skipped: source 'a' is already running: pid")
        and line.endswith("next run 2100-01-01 11:00:00 UTC")
        for line in logs
    )
    assert scheduler.next_run("a") == at("11:00")  # no retry: it was not a failure


def test_max_parallel_is_honoured(setup: Setup, gate: Gate, logs: list[str]) -> None:
    setup.write(
        "[scheduler]\nmax_parallel = 2\n"
        + "".join(source(name, "0 * * * *") for name in ("a", "b", "c"))
    )
    clock = ManualClock(at("09:59"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    clock.moment = at("10:00")
    scheduler.step()
    gate.wait_started(2)
    assert scheduler.running == ["a", "b"]
    assert scheduler.pending == ["c"]
    assert gate.started == ["a", "b"] or gate.started == ["b", "a"]

    gate.release("a")
    gate.wait_started(3)
    assert scheduler.pending == []
    assert "c" in scheduler.running
    gate.release("b", "c")
    assert scheduler.wait_idle(SAFETY_TIMEOUT)
    assert gate.peak == 2
    for name in ("a", "b", "c"):
        assert [r["status"] for r in setup.runs(name)] == ["succeeded"]


def test_a_pending_source_is_not_queued_twice(setup: Setup, gate: Gate, logs: list[str]) -> None:
    setup.write(
        "[scheduler]\nmax_parallel = 1\n" + source("a", "* * * * *") + source("b", "* * * * *")
    )
    clock = ManualClock(at("09:59:30"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    clock.moment = at("10:00")
    scheduler.step()
    gate.wait_started(1)
    assert scheduler.running == ["a"] and scheduler.pending == ["b"]
    clock.moment = at("10:01")
    scheduler.step()
    assert scheduler.pending == ["b"]
    assert any(
        line.startswith(
            "b: skipped the run scheduled for 2100-01-01 10:01:00 UTC: the "
            "previous one is still waiting for a free slot (max_parallel = 1)"
        )
        for line in logs
    )
    gate.release("a", "b")
    assert scheduler.wait_idle(SAFETY_TIMEOUT)
    assert len(setup.runs("a")) == len(setup.runs("b")) == 1


# -- catching up ---------------------------------------------------------------------------


def test_catch_up_once_runs_each_overdue_source_once_at_start(
    setup: Setup, logs: list[str]
) -> None:
    setup.write(source("late", "0 * * * *", "demo") + source("new", "0 * * * *", "demo"))
    SchedulerState(setup.home / "scheduler.json").set_last_due("late", at("08:00"))
    clock = ManualClock(at("10:30"))
    scheduler = setup.scheduler(clock)
    assert step_and_settle(scheduler, clock, at("10:30")) == at("11:00")
    assert [r["status"] for r in setup.runs("late")] == ["succeeded"]  # once, not twice
    assert setup.runs("new") == []  # no history: it waits for its first time
    assert (
        "late: its run at 2100-01-01 10:00:00 UTC was missed while the scheduler was "
        'down; running it once now (catch_up = "once")'
    ) in logs
    assert "late: starting run (catching up the run missed at 2100-01-01 10:00:00 UTC)" in logs

    restarted = setup.scheduler(clock)  # nothing missed since: nothing to catch up
    step_and_settle(restarted, clock, at("10:40"))
    assert len(setup.runs("late")) == 1


def test_catch_up_skip_waits_for_the_next_time(setup: Setup, logs: list[str]) -> None:
    setup.write('[scheduler]\ncatch_up = "skip"\n' + source("late", "0 * * * *", "demo"))
    SchedulerState(setup.home / "scheduler.json").set_last_due("late", at("08:00"))
    clock = ManualClock(at("10:30"))
    scheduler = setup.scheduler(clock)
    assert step_and_settle(scheduler, clock, at("10:30")) == at("11:00")
    assert setup.runs("late") == []
    assert (
        "late: its run at 2100-01-01 10:00:00 UTC was missed while the scheduler was "
        'down; skipped (catch_up = "skip")'
    ) in logs
    step_and_settle(scheduler, clock, at("11:00"))
    assert [r["status"] for r in setup.runs("late")] == ["succeeded"]


def test_catch_up_also_counts_runs_made_outside_the_scheduler(setup: Setup) -> None:
    setup.write(source("a", "0 * * * *", "demo") + source("b", "0 * * * *", "demo"))
    engine = Engine(load_config(setup.config_path), setup.plugins, setup.home)
    engine.run("a")
    engine.run("b")
    ran = datetime.fromtimestamp(setup.runs("a")[0]["started_at"], UTC)
    clock = ManualClock(ran.replace(minute=59, second=59))  # the next hour has not come yet
    step_and_settle(setup.scheduler(clock), clock, clock.moment)
    assert len(setup.runs("a")) == 1

    clock = ManualClock(ran + timedelta(hours=2))  # an hour boundary passed: overdue
    step_and_settle(setup.scheduler(clock), clock, clock.moment)
    assert len(setup.runs("a")) == len(setup.runs("b")) == 2


# -- failures and retries ------------------------------------------------------------------


def test_a_failed_run_is_retried_with_backoff_and_every_attempt_is_in_the_ledger(
    setup: Setup, gate: Gate, logs: list[str]
) -> None:
    setup.write("[scheduler]\nretry_after = 30\n" + source("a", "0 * * * *"))
    gate.failures["a"] = 2
    gate.release("a")
    clock = ManualClock(at("09:59"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    assert step_and_settle(scheduler, clock, at("10:00")) == at("10:00:30")
    assert (
        "a: run failed (1 in a row): a: the source refused (as the test asked); retrying "
        "at 2100-01-01 10:00:30 UTC (retry_after)"
    ) in logs
    assert step_and_settle(scheduler, clock, at("10:00:30")) == at("10:01:30")  # doubled
    assert step_and_settle(scheduler, clock, at("10:01:30")) == at("11:00")
    # every attempt is in the ledger; each retry abandoned the failed attempt's version
    assert [r["status"] for r in setup.runs("a")] == ["abandoned", "abandoned", "succeeded"]
    assert "a: starting run (retry 2 after a failed run)" in logs


def test_a_paused_run_is_no_failure_and_its_next_scheduled_run_goes_on(
    setup: Setup, gate: Gate, logs: list[str]
) -> None:
    setup.write("[scheduler]\nretry_after = 30\n" + source("a", "0 * * * *"))
    gate.pauses["a"] = 1
    gate.release("a")
    clock = ManualClock(at("09:59"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    assert step_and_settle(scheduler, clock, at("10:00")) == at("11:00")  # not retried early
    assert any(
        line.startswith("a: run paused: api quota: read 0,")
        and line.endswith("the next run, 2100-01-01 11:00:00 UTC, continues where it stopped")
        for line in logs
    ), logs
    assert not any("run failed" in line for line in logs)
    step_and_settle(scheduler, clock, at("11:00"))
    assert [r["status"] for r in setup.runs("a")] == ["paused: api quota", "succeeded"]


def test_without_retry_after_a_failed_run_waits_for_its_next_time(
    setup: Setup, gate: Gate, logs: list[str]
) -> None:
    setup.write(source("a", "0 * * * *"))
    gate.failures["a"] = 1
    gate.release("a")
    clock = ManualClock(at("09:59"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    assert step_and_settle(scheduler, clock, at("10:00")) == at("11:00")
    assert any(
        line.endswith("retrying at the next scheduled time 2100-01-01 11:00:00 UTC")
        for line in logs
    )
    assert [(r["status"], r["error"]) for r in setup.runs("a")] == [
        ("failed", "the source refused (as the test asked)")
    ]
    step_and_settle(scheduler, clock, at("11:00"))
    assert [r["status"] for r in setup.runs("a")] == ["abandoned", "succeeded"]


def test_a_run_that_fails_before_the_engine_records_it_is_still_in_the_ledger(
    setup: Setup, logs: list[str]
) -> None:
    setup.write(
        '[mixpanel]\nsink = "broken"\nproject_token = "t"\n' + source("a", "0 * * * *", "demo")
    )
    clock = ManualClock(at("09:59"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    step_and_settle(scheduler, clock, at("10:00"))
    [attempt] = setup.runs("a")
    assert attempt["status"] == "failed"
    assert attempt["error"] == "the broken sink cannot open (as the test asked)"
    assert attempt["sink"] == "broken" and attempt["dataset_id"] == "A"


# -- stopping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "where", "then"),
    [
        (2500, "during extraction", "abandoned"),  # the engine checks stop once per batch
        (50, "before publishing", "resumed"),  # extraction had finished: its spool is reused
    ],
)
def test_stop_mid_run_then_the_next_run_resumes_or_starts_anew_with_exact_counts(
    setup: Setup, gate: Gate, logs: list[str], events: int, where: str, then: str
) -> None:
    setup.write(source("a", "0 * * * *", events=events))
    clock = ManualClock(at("09:59:59"))
    scheduler = setup.scheduler(clock, stop_timeout=SAFETY_TIMEOUT)
    loop, result = start_serving(scheduler)
    clock.moment = at("10:00")
    gate.wait_started(1)
    scheduler.request_stop()
    gate.release("a")  # the connector yields; the engine stops at its next checkpoint
    loop.join(SAFETY_TIMEOUT)
    assert not loop.is_alive() and result == {"ended": True}
    [stopped] = setup.runs("a")
    assert stopped["status"] == "interrupted"
    assert f"a: run interrupted (a: stopped on request {where}" in "\n".join(logs)
    assert logs[-1] == "scheduler stopped"

    engine = Engine(load_config(setup.config_path), setup.plugins, setup.home)
    summary = engine.run("a")
    assert summary.resumed is (then == "resumed")
    assert (summary.status, summary.read, summary.imported) == ("succeeded", events, events)
    assert [r["status"] for r in setup.runs("a")] == [then, "succeeded"]


def test_stop_starts_nothing_pending_and_the_next_start_catches_it_up(
    setup: Setup, gate: Gate, logs: list[str]
) -> None:
    setup.write(
        "[scheduler]\nmax_parallel = 1\n" + source("a", "0 * * * *") + source("b", "0 * * * *")
    )
    state = SchedulerState(setup.home / "scheduler.json")
    state.set_last_due("a", at("09:00"))
    state.set_last_due("b", at("09:00"))
    clock = ManualClock(at("09:59:59"))
    scheduler = setup.scheduler(clock, stop_timeout=SAFETY_TIMEOUT)
    loop, _ = start_serving(scheduler)
    clock.moment = at("10:00")
    gate.wait_started(1)
    scheduler.request_stop()
    gate.release("a", "b")
    loop.join(SAFETY_TIMEOUT)
    assert not loop.is_alive()
    assert gate.started == ["a"] and setup.runs("b") == []
    assert (
        "b: not started (scheduled for 2100-01-01 10:00:00 UTC): the scheduler is stopping" in logs
    )

    restarted = setup.scheduler(ManualClock(at("10:00:30")))
    restarted.clock.moment = at("10:00:30")
    restarted.step()
    assert restarted.wait_idle(SAFETY_TIMEOUT)
    assert gate.started == ["a", "b"]  # b's 10:00 was never served; a's was
    assert [r["status"] for r in setup.runs("b")] == ["succeeded"]
    # a's interrupted run is resumed at the start (its extraction had finished)
    assert [(r["status"], r["resumed"]) for r in setup.runs("a")] == [
        ("resumed", 0),
        ("succeeded", 1),
    ]
    assert "a: its last run (interrupted) did not finish; resuming it now" in logs


def test_a_second_scheduler_on_the_same_home_is_refused(tmp_path: Path) -> None:
    first = SchedulerLock(tmp_path / "scheduler.lock")
    first.acquire()
    try:
        with pytest.raises(
            MpconnectError,
            match="another mpconnect schedule is already "
            r"running with this data directory \(pid",
        ):
            SchedulerLock(tmp_path / "scheduler.lock").acquire()
    finally:
        first.release()
    SchedulerLock(tmp_path / "scheduler.lock").acquire()


# -- reloading -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_text", "problem"),
    [
        ("[sources.a\n", "not valid TOML"),
        (source("a", "0 */2 * * * * *"), "sources.a.schedule: '0 */2 * * * * *' is not a cron"),
        (source("a", "*/30 * * * *", connector="nosuch"), "unknown connector 'nosuch'"),
        ('[mixpanel]\nsink = "embeded"\n' + source("a", "0 * * * *"), "unknown sink 'embeded'"),
        (
            '[mixpanel]\nprojet_token = "t"\n' + source("a", "0 * * * *"),
            "mixpanel.projet_token: unknown key for the 'embedded' sink",
        ),
    ],
)
def test_an_invalid_reload_keeps_the_old_configuration(
    setup: Setup, logs: list[str], bad_text: str, problem: str
) -> None:
    setup.write(source("a", "0 * * * *", "demo"))
    clock = ManualClock(at("09:30"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    setup.write(bad_text)
    scheduler.request_reload()
    assert scheduler.step() == at("10:00")
    errors = [line for line in logs if line.startswith("configuration not reloaded")]
    assert len(errors) == 1 and problem in errors[0]
    assert "keeping the previous one" in errors[0]
    step_and_settle(scheduler, clock, at("10:00"))
    assert [r["status"] for r in setup.runs("a")] == ["succeeded"]
    assert scheduler.plan.crons["a"].expression == "0 * * * *"


def test_a_valid_reload_applies_without_dropping_a_running_run(
    setup: Setup, gate: Gate, logs: list[str]
) -> None:
    setup.write(source("g", "0 * * * *") + source("old", "0 * * * *"))
    clock = ManualClock(at("09:59"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    clock.moment = at("10:00")
    scheduler.step()
    gate.wait_started(2)

    setup.write(source("g", "*/20 * * * *") + source("new", "10 * * * *", "demo"))
    clock.moment = at("10:05")
    scheduler.request_reload()
    scheduler.step()
    assert "configuration reloaded from " + str(setup.config_path) + ": 2 scheduled sources" in logs
    assert "g: schedule now '*/20 * * * *' (UTC); next run 2100-01-01 10:20:00 UTC" in logs
    assert "new: scheduled '10 * * * *' (UTC); next run 2100-01-01 10:10:00 UTC" in logs
    assert "old: no longer scheduled (its run in progress continues)" in logs
    assert scheduler.next_run("old") is None
    assert scheduler.running == ["g", "old"]

    gate.release("g", "old")
    assert scheduler.wait_idle(SAFETY_TIMEOUT)
    assert [r["status"] for r in setup.runs("g")] == ["succeeded"]
    assert [r["status"] for r in setup.runs("old")] == ["succeeded"]
    step_and_settle(scheduler, clock, at("10:10"))
    assert [r["status"] for r in setup.runs("new")] == ["succeeded"]
    assert len(setup.runs("old")) == 1


def test_a_changed_file_is_picked_up_without_a_signal_and_a_bad_one_reported_once(
    setup: Setup, logs: list[str]
) -> None:
    setup.write(source("a", "0 * * * *", "demo"))
    clock = ManualClock(at("09:30"))
    scheduler = setup.scheduler(clock, reload_interval=10)
    assert scheduler.step() == at("09:30:10")  # the next look at the file

    setup.write("this is not toml")
    for seconds in (10, 20, 30):
        clock.moment = at("09:30") + timedelta(seconds=seconds)
        scheduler.step()
    assert len([line for line in logs if line.startswith("configuration not reloaded")]) == 1

    setup.write(source("a", "45 * * * *", "demo"))
    clock.moment = at("09:30:40")
    scheduler.step()
    assert scheduler.next_run("a") == at("09:45")


def test_a_daily_time_in_the_hour_clocks_go_back_runs_once() -> None:
    schedule = CronSchedule("30 2 * * *", load_zone("Europe/Paris"))
    moment = datetime(2025, 10, 25, 12, tzinfo=UTC)
    runs = []
    for _ in range(3):
        moment = schedule.next_after(moment)
        runs.append(moment.astimezone(UTC).strftime("%m-%d %H:%M"))
    assert runs == ["10-26 00:30", "10-27 01:30", "10-28 01:30"]


def test_many_failures_in_a_row_keep_the_retry_backoff_finite(
    setup: Setup, gate: Gate, logs: list[str]
) -> None:
    setup.write("[scheduler]\nretry_after = 30\n" + source("a", "0 * * * *"))
    gate.release("a")
    clock = ManualClock(at("09:59"))
    scheduler = setup.scheduler(clock)
    scheduler.step()
    slot = scheduler._slots["a"]  # what 40 failures in a row leave behind
    slot.failures = 40
    scheduler._plan_retry("a", slot, "the source refused")
    assert (
        "a: run failed (40 in a row): the source refused; retrying at the next scheduled"
        in (logs[-1])
    )


# -- start-up resume: only what the engine would really resume (issue 13) -------------------


def test_at_start_a_run_interrupted_after_publishing_is_not_run_again(
    setup: Setup, gate: Gate, logs: list[str]
) -> None:
    setup.write('[scheduler]\ncatch_up = "skip"\n' + source("a", "0 * * * *"))
    engine = Engine(load_config(setup.config_path), setup.plugins, setup.home)
    gate.release("a")
    summary = engine.run("a")
    # As if stopped while waiting until live: the version is published already.
    engine.ledger.set_status(summary.run_id, "interrupted")
    scheduler = setup.scheduler(ManualClock(at("10:00:30")))
    scheduler.step()
    assert scheduler.wait_idle(SAFETY_TIMEOUT)
    assert gate.started == ["a"], "no new extraction outside the schedule"
    assert (
        f"a: its last run (interrupted) did not finish; nothing to resume now (its "
        f"version {summary.version_id} was published and goes live by itself)"
    ) in logs
    assert scheduler.next_run("a") == at("11:00")


def test_at_start_an_unfinished_run_for_another_dataset_is_not_resumed(
    setup: Setup, gate: Gate, logs: list[str]
) -> None:
    setup.write('[scheduler]\ncatch_up = "skip"\n' + source("a", "0 * * * *"))
    engine = Engine(load_config(setup.config_path), setup.plugins, setup.home)
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            engine.run("a", RunOptions(stop=stop))
        except MpconnectError as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    gate.wait_started(1)
    stop.set()
    gate.release("a")
    thread.join(SAFETY_TIMEOUT)
    assert "stopped on request before publishing" in str(failures[0])  # resumable as it was
    setup.write(
        '[scheduler]\ncatch_up = "skip"\n' + source("a", "0 * * * *").replace('"A"', '"ELSEWHERE"')
    )
    scheduler = setup.scheduler(ManualClock(at("10:00:30")))
    scheduler.step()
    assert scheduler.wait_idle(SAFETY_TIMEOUT)
    assert gate.started == ["a"], "no new extraction outside the schedule"
    assert (
        "a: its last run (interrupted) did not finish; nothing to resume now (the "
        "dataset changed (A -> ELSEWHERE))"
    ) in logs
