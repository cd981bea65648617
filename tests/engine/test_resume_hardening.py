"""Never publish a wrong snapshot: the resume key, the run's deadline, stops that end retry
waits at once, and versions superseded by another installation's (issue 13)."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import SAFETY_TIMEOUT, GatedPlugin, make_config, make_engine, wait_until
from pydantic import SecretStr

import mpconnect
from mpconnect.engine import Engine, RunOptions
from mpconnect.engine.deadline import RunStop
from mpconnect.engine.ledger import SqliteRunLedger
from mpconnect.errors import ApiError, RetryableApiError, RunFailed
from mpconnect.sink import ImportResult, VersionInfo
from mpconnect.sinks.embedded import EmbeddedSink
from mpconnect.store.datasets import DatasetStore
from mpconnect.transport.retry import call_with_retries

pytestmark = pytest.mark.timeout(120)


class FlakySink(EmbeddedSink):
    """The embedded sink; imports fail for good (403) after ``healthy`` batches, or keep
    failing with 503 while ``unavailable``; ``create_version`` keeps failing while
    ``create_unavailable``, setting ``create_tried``."""

    name = "flaky"
    healthy = 10**6
    unavailable = False
    create_unavailable = False
    create_tried = threading.Event()
    calls: list[int] = []
    lock = threading.Lock()

    def import_batch(self, kind, dataset_id, version_id, payload, count) -> ImportResult:
        with self.lock:
            type(self).calls.append(count)
            if self.unavailable:
                raise RetryableApiError(503, "service unavailable")
            if len(type(self).calls) > self.healthy:
                raise ApiError(403, "project suspended")
        return super().import_batch(kind, dataset_id, version_id, payload, count)

    def create_version(self, dataset_id: str) -> VersionInfo:
        if self.create_unavailable:
            type(self).create_tried.set()
            raise RetryableApiError(503, "service unavailable")
        return super().create_version(dataset_id)


class KeyedConnector(mpconnect.Connector):
    """Yields ``events`` events; has a secret setting; its version is a class attribute."""

    name = "keyed"
    version = "1.0"

    class Settings(mpconnect.ConnectorSettings):
        api_key: SecretStr
        events: int = 3000

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(self.settings.events):
            yield mpconnect.Event(
                "Tick", f"user-{index % 7}", 1_700_000_000 + index, object_id=f"tick-{index}"
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class RetryingConnector(mpconnect.Connector):
    """A connector whose request keeps failing: it waits to retry (minutes) through
    transport.retry, as the shared HTTP client does; ``waiting`` is set at the first wait."""

    name = "retrying"
    waiting = threading.Event()

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        def request() -> None:
            raise RetryableApiError(503, "the source is down")

        call_with_retries(
            request,
            max_retries=5,
            initial_wait=120,
            max_wait=240,
            on_retry=lambda *_: type(self).waiting.set(),
        )
        yield from ()

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class Plugin:
    @mpconnect.hookimpl
    def register_sinks(self, register: Callable[[type], None]) -> None:
        register(FlakySink)

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(KeyedConnector)
        register(RetryingConnector)


@pytest.fixture(autouse=True)
def fresh_sink() -> Iterator[None]:
    FlakySink.healthy, FlakySink.unavailable, FlakySink.calls = 10**6, False, []
    FlakySink.create_unavailable, FlakySink.create_tried = False, threading.Event()
    RetryingConnector.waiting = threading.Event()
    yield
    KeyedConnector.version = "1.0"


def engine_for(tmp_path: Path, home: Path, sources: dict[str, Any], **engine: Any) -> Engine:
    config = make_config(
        tmp_path,
        sources,
        mixpanel={"sink": "flaky", "store": str(home / "embedded.sqlite3")},
        engine={"concurrency": 1, **engine},
    )
    return make_engine(config, home, Plugin())


def keyed_source(events: int = 3000) -> dict[str, Any]:
    return {
        "keyed": {
            "connector": "keyed",
            "dataset_id": "KEYED",
            "settings": {"api_key": "${KEYED_API_KEY}", "events": events},
        }
    }


def fail_after_one_batch(engine: Engine, source: str) -> dict[str, Any]:
    """Run ``source`` into a sink that refuses every batch after the first; return the
    failed run's ledger row (its version is unfinished and resumable)."""
    FlakySink.healthy = 1
    with pytest.raises(RunFailed, match="project suspended"):
        engine.run(source)
    FlakySink.healthy, FlakySink.calls = 10**6, []
    row = engine.ledger.list_runs(source)[0]
    assert row["status"] == "failed" and row["extraction_done"] == 1
    return row


def store(home: Path) -> DatasetStore:
    return DatasetStore(home / "embedded.sqlite3")


# -- the resume key ------------------------------------------------------------------------


def test_changed_settings_abandon_the_unfinished_version_and_load_the_new_snapshot(
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("KEYED_API_KEY", "sk_test_first")
    failed = fail_after_one_batch(engine_for(tmp_path, home, keyed_source(3000)), "keyed")

    engine = engine_for(tmp_path, home, keyed_source(2000))  # the user changed a setting
    summary = engine.run("keyed")
    assert not summary.resumed and summary.version_id != failed["version_id"]
    assert store(home).contents("KEYED", summary.version_id).events_total == 2000
    assert engine.ledger.list_runs("keyed")[1]["error"] == (
        "abandoned: the source's settings changed since it was made"
    )
    assert (
        f"abandoning unfinished version {failed['version_id']}: the source's settings "
        "changed since it was made"
    ) in caplog.text
    assert failed["version_id"] not in [v.version_id for v in store(home).list_versions("KEYED")]


def test_a_changed_secret_is_noticed_yet_the_ledger_holds_no_secret_nor_its_plain_hash(
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = "sk_live_first_51HxYzSecret", "sk_live_second_51HxYzSecret"
    monkeypatch.setenv("KEYED_API_KEY", first)
    engine = engine_for(tmp_path, home, keyed_source())
    fail_after_one_batch(engine, "keyed")
    monkeypatch.setenv("KEYED_API_KEY", second)  # the key was rotated: another account?
    summary = engine_for(tmp_path, home, keyed_source()).run("keyed")
    assert not summary.resumed
    assert "the source's settings changed since it was made" in caplog.text

    ledger_bytes = b"".join(p.read_bytes() for p in home.glob("ledger.sqlite3*"))
    for secret in (first, second):
        assert secret.encode() not in ledger_bytes and secret not in caplog.text
        digest = hashlib.sha256(secret.encode()).hexdigest()
        assert digest[:16].encode() not in ledger_bytes, "no unkeyed hash of a secret"
    key_file = home / "resume.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_an_upgraded_connector_does_not_resume_the_old_versions_spool(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYED_API_KEY", "sk_test_same")
    failed = fail_after_one_batch(engine_for(tmp_path, home, keyed_source()), "keyed")
    KeyedConnector.version = "1.1"
    engine = engine_for(tmp_path, home, keyed_source())
    summary = engine.run("keyed")
    assert not summary.resumed and summary.version_id != failed["version_id"]
    assert engine.ledger.list_runs("keyed")[1]["error"] == (
        "abandoned: the connector changed (keyed 1.0 -> 1.1)"
    )


def test_an_unchanged_source_still_resumes_with_the_same_key(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYED_API_KEY", "sk_test_same")
    failed = fail_after_one_batch(engine_for(tmp_path, home, keyed_source()), "keyed")
    summary = engine_for(tmp_path, home, keyed_source()).run("keyed")
    assert summary.resumed and summary.version_id == failed["version_id"]
    assert sum(FlakySink.calls) == 2000, "only the unacknowledged batches are sent"


def test_a_row_from_an_older_ledger_is_migrated_and_its_spool_not_trusted(
    tmp_path: Path, home: Path
) -> None:
    old = tmp_path / "old" / "ledger.sqlite3"
    old.parent.mkdir()
    with sqlite3.connect(old) as db:  # the runs table before target and resume_key existed
        db.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, source TEXT NOT NULL, "
            "dataset_id TEXT NOT NULL, sink TEXT NOT NULL, version_id TEXT, spool_id "
            "TEXT, spool_dir TEXT, host TEXT, pid INTEGER, status TEXT NOT NULL, "
            "started_at REAL NOT NULL, ended_at REAL, read INTEGER NOT NULL DEFAULT 0,"
            " imported INTEGER NOT NULL DEFAULT 0, quarantined INTEGER NOT NULL "
            "DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0, batches INTEGER NOT NULL "
            "DEFAULT 0, resumed INTEGER NOT NULL DEFAULT 0, extraction_done INTEGER "
            "NOT NULL DEFAULT 0, published INTEGER NOT NULL DEFAULT 0, error TEXT, "
            "quarantine_file TEXT)"
        )
        db.execute(
            "INSERT INTO runs (run_id, source, dataset_id, sink, version_id, spool_id, "
            "spool_dir, host, status, started_at, extraction_done) VALUES ('r1', 'demo',"
            " 'DEMO', 'embedded', 'v1', 'r1', '/nowhere', 'h', 'failed', 1.0, 1)"
        )
    point = SqliteRunLedger(old).resume_point("demo")
    assert point is not None and point.version_id == "v1" and point.resume_key is None

    engine = engine_for(
        tmp_path,
        home,
        {"demo": {"connector": "demo", "dataset_id": "DEMO", "settings": {"events": 3000}}},
    )
    failed = fail_after_one_batch(engine, "demo")
    engine.ledger._db().execute("UPDATE runs SET resume_key = NULL")  # as an older row
    summary = engine.run("demo")
    assert not summary.resumed and summary.version_id != failed["version_id"]
    assert engine.ledger.list_runs("demo")[1]["error"] == (
        "abandoned: it was made by an earlier mpconnect that did not record the source's "
        "settings and connector"
    )


# -- Retry-After, the run's deadline, stops during retry waits -----------------------------


def test_a_run_past_max_run_time_fails_cleanly_and_the_next_run_resumes_it(
    tmp_path: Path, home: Path
) -> None:
    sources = {"demo": {"connector": "demo", "dataset_id": "DEMO", "settings": {"events": 1500}}}
    # Every import answers 503 and each retry waits minutes: only the deadline ends the run.
    engine = engine_for(
        tmp_path,
        home,
        sources,
        max_run_time=2,
        max_retries=100,
        retry_initial_wait=60,
        retry_max_wait=600,
    )
    FlakySink.unavailable = True
    with pytest.raises(RunFailed) as failure:
        engine.run("demo")
    row = engine.ledger.list_runs("demo")[0]
    assert str(failure.value) == (
        f"demo: stopped after engine.max_run_time (2 s) before publishing; the next run "
        f"resumes version {row['version_id']} (give --restart to extract the source again)"
    )
    assert row["status"] == "failed" and row["error"] in str(failure.value)

    FlakySink.unavailable = False
    summary = engine.run("demo")
    assert summary.resumed and summary.version_id == row["version_id"]
    assert (summary.status, summary.imported) == ("succeeded", 1650)
    assert store(home).contents("DEMO", summary.version_id).events_total == 1500


def test_a_retry_after_of_an_hour_waits_only_retry_max_wait(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class HourSink(FlakySink):
        name = "flaky"
        asked = 0

        def import_batch(self, kind, dataset_id, version_id, payload, count) -> ImportResult:
            with self.lock:
                type(self).asked += 1
                if type(self).asked == 1:
                    raise RetryableApiError(429, "slow down", retry_after=3600)
            return super().import_batch(kind, dataset_id, version_id, payload, count)

    class HourPlugin:
        @mpconnect.hookimpl
        def register_sinks(self, register: Callable[[type], None]) -> None:
            register(HourSink)

    config = make_config(
        tmp_path,
        {"demo": {"connector": "demo", "dataset_id": "DEMO", "settings": {"events": 100}}},
        mixpanel={"sink": "flaky", "store": str(home / "embedded.sqlite3")},
        engine={"retry_max_wait": 0.2},
    )
    caplog.set_level(logging.INFO, "mpconnect.engine")
    summary = make_engine(config, home, HourPlugin()).run("demo")
    assert (summary.status, summary.retries, summary.imported) == ("succeeded", 1, 110)
    assert "slow down; retry 1 of 8 in 0." in caplog.text, "the wait is cut to retry_max_wait"


def run_in_thread(
    engine: Engine, source: str, stop: threading.Event
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            engine.run(source, RunOptions(stop=stop))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def test_a_stop_request_is_seen_by_the_runs_very_next_checkpoint() -> None:
    requested = threading.Event()  # what SIGTERM, Ctrl-C or the scheduler's stop set
    run_stop = RunStop(requested, max_run_time=3600)
    try:
        assert not run_stop.event.is_set()
        requested.set()
        # No wait for the watcher thread: a checkpoint right after the request stops.
        assert run_stop.event.is_set() and run_stop.event.wait(0)
        assert not run_stop.timed_out, "stopped on request, not by engine.max_run_time"
    finally:
        run_stop.close()


def test_a_stop_ends_the_engines_retry_wait_on_the_sink_at_once(tmp_path: Path, home: Path) -> None:
    engine = engine_for(
        tmp_path,
        home,
        {"demo": {"connector": "demo", "dataset_id": "DEMO"}},
        max_retries=100,
        retry_initial_wait=60,
        retry_max_wait=600,
    )
    FlakySink.create_unavailable = True
    stop = threading.Event()
    thread, errors = run_in_thread(engine, "demo", stop)
    assert FlakySink.create_tried.wait(SAFETY_TIMEOUT)
    stop.set()  # what SIGTERM, Ctrl-C or the scheduler's stop do
    thread.join(SAFETY_TIMEOUT)
    assert not thread.is_alive(), "the run still waits to retry after the stop"
    assert str(errors[0]) == (
        "demo: stopped on request before its version was created; nothing was loaded"
    )
    assert engine.ledger.list_runs("demo")[0]["status"] == "interrupted"


def test_a_stop_ends_an_upload_workers_retry_wait_and_the_next_run_resumes(
    tmp_path: Path, home: Path
) -> None:
    sources = {"demo": {"connector": "demo", "dataset_id": "DEMO", "settings": {"events": 800}}}
    engine = engine_for(
        tmp_path, home, sources, max_retries=100, retry_initial_wait=60, retry_max_wait=600
    )
    FlakySink.unavailable = True
    stop = threading.Event()
    thread, errors = run_in_thread(engine, "demo", stop)
    wait_until(lambda: len(FlakySink.calls) > 0)
    wait_until(lambda: engine.ledger.list_runs("demo")[0]["extraction_done"] == 1)
    stop.set()
    thread.join(SAFETY_TIMEOUT)
    assert not thread.is_alive()
    assert str(errors[0]) == "demo: stopped on request before publishing; the next run resumes"
    FlakySink.unavailable = False
    summary = engine.run("demo")
    assert summary.resumed and summary.imported == 880


def test_a_stop_ends_a_connectors_own_retry_wait(tmp_path: Path, home: Path) -> None:
    engine = engine_for(tmp_path, home, {"down": {"connector": "retrying", "dataset_id": "DOWN"}})
    stop = threading.Event()
    thread, errors = run_in_thread(engine, "down", stop)
    assert RetryingConnector.waiting.wait(SAFETY_TIMEOUT)
    stop.set()
    thread.join(SAFETY_TIMEOUT)
    assert not thread.is_alive(), "the connector still waits to retry after the stop"
    assert str(errors[0]).startswith(
        "down: stopped on request during extraction; the next run starts a new version"
    )
    assert engine.ledger.list_runs("down")[0]["status"] == "interrupted"


# -- superseded versions -------------------------------------------------------------------


def test_a_version_superseded_by_a_newer_live_one_ends_the_wait_naming_it(
    tmp_path: Path, home: Path, gated: type, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        tmp_path, {"slow": {"connector": "gated", "dataset_id": "SLOW"}}, engine={"live_timeout": 5}
    )
    engine = make_engine(config, home, GatedPlugin())
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(engine.run("slow")), daemon=True)
    thread.start()
    assert gated.started.wait(SAFETY_TIMEOUT)
    # Meanwhile another installation loads the same dataset: its newer version goes live.
    other = store(home)
    newer = other.create_version("SLOW")
    other.update_state("SLOW", newer.version_id, readable=True, writable=False)
    gated.gate.set()
    thread.join(SAFETY_TIMEOUT)
    [summary] = result
    assert summary.status == "superseded"
    assert summary.error == f"superseded by version {newer.version_id}"
    assert f"note: superseded by version {newer.version_id}" in summary.describe()
    row = engine.ledger.list_runs("slow")[0]
    assert (row["status"], row["error"]) == ("superseded", summary.error)
    versions = {v.version_id: v for v in other.list_versions("SLOW")}
    assert versions[newer.version_id].is_live
    assert summary.version_id in versions and versions[summary.version_id].readable, (
        "its own version is published, and left for the newer run's owner to prune"
    )
    assert "was superseded by version" in caplog.text
