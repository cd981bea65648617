"""The engine on the embedded store: locking, pruning, quarantine, failures, resume."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from engine_support import SAFETY_TIMEOUT, GatedPlugin, make_config, make_engine, wait_until

import mpconnect
from mpconnect.engine import Engine, RunOptions, RunSummary
from mpconnect.errors import ApiError, RunFailed, RunLocked
from mpconnect.sink import ImportResult
from mpconnect.sinks.embedded import EmbeddedSink
from mpconnect.store.datasets import DatasetStore


def demo_source(events: int = 1500, **extra: object) -> dict:
    return {
        "demo": {"connector": "demo", "dataset_id": "DEMO", "settings": {"events": events}, **extra}
    }


def store(home: Path) -> DatasetStore:
    return DatasetStore(home / "embedded.sqlite3")


def test_a_run_loads_exactly_what_the_source_yields(tmp_path: Path, home: Path) -> None:
    engine = make_engine(make_config(tmp_path, demo_source(2500)), home)
    summary = engine.run("demo")
    assert (summary.status, summary.read, summary.imported, summary.quarantined) == (
        "succeeded",
        2750,
        2750,
        0,
    )
    contents = store(home).contents("DEMO", summary.version_id)
    assert contents.events_total == contents.events_received == 2500
    assert contents.profiles == 250
    assert summary.batches == 4  # 3 event batches (1000, 1000, 500) + 1 people batch
    assert not list((home / "spool").glob("*")), "a finished run leaves no spool"


def test_second_run_of_a_running_source_refuses_naming_the_first(
    tmp_path: Path, home: Path, gated: type
) -> None:
    config = make_config(tmp_path, {"slow": {"connector": "gated", "dataset_id": "SLOW"}})
    first = make_engine(config, home, GatedPlugin())
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=first.run("slow")))
    thread.start()
    try:
        assert gated.started.wait(SAFETY_TIMEOUT)
        with pytest.raises(RunLocked) as refused:
            make_engine(config, home, GatedPlugin()).run("slow")
        message = str(refused.value)
        assert "source 'slow' is already running" in message
        assert "pid " in message and "started " in message
    finally:
        gated.gate.set()
        thread.join(SAFETY_TIMEOUT)
    assert outcome["summary"].status == "succeeded"
    assert outcome["summary"].imported == 100


def test_pruning_keeps_keep_versions_and_never_the_live_or_a_newer_one(
    tmp_path: Path, home: Path
) -> None:
    engine = make_engine(make_config(tmp_path, demo_source(100, keep_versions=3)), home)
    ids = [engine.run("demo").version_id for _ in range(4)]
    versions = store(home).list_versions("DEMO")
    assert [v.version_id for v in versions] == ids[::-1][:3]
    assert versions[0].is_live and not any(v.is_live for v in versions[1:])
    # a version another run is writing is never pruned; an orphan (no run) is
    writing = store(home).create_version("DEMO")
    engine.ledger.record_run(
        RunSummary(
            run_id="other",
            source="other",
            dataset_id="DEMO",
            sink="embedded",
            version_id=writing.version_id,
        )
    )
    orphan = store(home).create_version("DEMO")
    ids.append(engine.run("demo").version_id)
    remaining = [v.version_id for v in store(home).list_versions("DEMO")]
    assert writing.version_id in remaining
    assert orphan.version_id not in remaining
    assert ids[-1] in remaining and ids[-2] in remaining and ids[-3] in remaining


def test_bad_records_are_quarantined_counted_and_the_rest_published(
    tmp_path: Path, home: Path
) -> None:
    config = make_config(
        tmp_path,
        {
            "demo": {
                "connector": "demo",
                "dataset_id": "DEMO",
                "max_quarantined": "unlimited",
                "settings": {"events": 300, "bad_records": 4},
            }
        },
    )
    summary = make_engine(config, home).run("demo")
    assert summary.status == "succeeded"
    assert (summary.read, summary.imported, summary.quarantined) == (334, 330, 4)
    lines = [orjson.loads(line) for line in Path(summary.quarantine_file).read_bytes().splitlines()]
    assert len(lines) == 4
    assert lines[0]["field"] == "time"
    assert "bad-review-0" in lines[0]["what"]
    assert "naive datetime" in lines[0]["reason"]
    assert store(home).contents("DEMO", summary.version_id).events_total == 300


def test_too_many_quarantined_fails_before_publishing(tmp_path: Path, home: Path) -> None:
    config = make_config(
        tmp_path,
        {
            "demo": {
                "connector": "demo",
                "dataset_id": "DEMO",
                "max_quarantined": 3,
                "settings": {"events": 300, "bad_records": 4},
            }
        },
    )
    engine = make_engine(config, home)
    with pytest.raises(RunFailed, match="4 records quarantined, over the limit of 3"):
        engine.run("demo")
    (version,) = store(home).list_versions("DEMO")
    assert not version.readable and not version.is_live
    (row,) = engine.ledger.list_runs("demo")
    assert row["status"] == "failed" and "over the limit" in row["error"]
    assert row["error"].endswith(
        f"the next run resumes version {version.version_id} "
        "(give --restart to extract the source again)"
    )


def test_a_fraction_limit_is_relative_to_records_read(tmp_path: Path, home: Path) -> None:
    config = make_config(
        tmp_path,
        {
            "demo": {
                "connector": "demo",
                "dataset_id": "DEMO",
                "settings": {"events": 300, "bad_records": 4},
            }
        },
    )
    engine = make_engine(config, home)
    assert engine.run("demo", RunOptions(max_quarantined=0.05)).status == "succeeded"
    with pytest.raises(RunFailed, match="over the limit of 1% of 334 records read"):
        engine.run("demo", RunOptions(max_quarantined=0.01))


def test_a_connector_that_raises_is_named_and_nothing_is_published(
    tmp_path: Path, home: Path, gated: type
) -> None:
    gated.gate.set()
    config = make_config(
        tmp_path,
        {"slow": {"connector": "gated", "dataset_id": "SLOW", "settings": {"fail_after": 50}}},
    )
    engine = make_engine(config, home, GatedPlugin())
    with pytest.raises(
        RunFailed,
        match="connector 'gated' failed while reading events: ValueError: the source went away",
    ):
        engine.run("slow")
    (version,) = store(home).list_versions("SLOW")
    assert not version.readable


class FlakySink(EmbeddedSink):
    """The embedded sink, refusing every batch after the first ``healthy_batches``."""

    name = "flaky"
    healthy_batches = 2
    calls: list[int] = []
    lock = threading.Lock()

    def import_batch(self, kind, dataset_id, version_id, payload, count) -> ImportResult:
        with self.lock:
            type(self).calls.append(count)
            if len(type(self).calls) > self.healthy_batches:
                raise ApiError(403, "project suspended")
        return super().import_batch(kind, dataset_id, version_id, payload, count)


class FlakySinkPlugin:
    @mpconnect.hookimpl
    def register_sinks(self, register: Callable[[type], None]) -> None:
        register(FlakySink)


def failed_flaky_run(
    tmp_path: Path, home: Path, healthy_batches: int, sources: dict
) -> tuple[Engine, dict]:
    """Run ``sources['demo']`` into a sink that fails after ``healthy_batches`` batches;
    return the engine (the sink healthy again) and the failed run's ledger row."""
    FlakySink.calls = []
    FlakySink.healthy_batches = healthy_batches
    config = make_config(
        tmp_path,
        sources,
        mixpanel={"sink": "flaky", "store": str(home / "embedded.sqlite3")},
        engine={"concurrency": 1},
    )
    engine = make_engine(config, home, FlakySinkPlugin())
    with pytest.raises(RunFailed, match="HTTP 403: project suspended"):
        engine.run("demo")
    FlakySink.healthy_batches = 10**6
    FlakySink.calls = []
    return engine, engine.ledger.list_runs("demo")[0]


def test_a_failed_run_is_resumed_sending_only_unacknowledged_batches(
    tmp_path: Path, home: Path
) -> None:
    engine, failed = failed_flaky_run(tmp_path, home, 2, demo_source(5000))
    assert failed["status"] == "failed" and failed["imported"] == 2000

    summary = engine.run("demo")
    assert summary.resumed and summary.version_id == failed["version_id"]
    assert sum(FlakySink.calls) == 5500 - 2000, "only the unacknowledged batches are re-sent"
    assert (summary.read, summary.imported) == (5500, 5500)
    contents = store(home).contents("DEMO", summary.version_id)
    assert (contents.events_total, contents.profiles) == (5000, 500)
    statuses = [row["status"] for row in engine.ledger.list_runs("demo")]
    assert statuses == ["succeeded", "resumed"]


def test_restart_abandons_the_unfinished_version(tmp_path: Path, home: Path) -> None:
    engine, failed = failed_flaky_run(tmp_path, home, 1, demo_source(3000))
    abandoned = failed["version_id"]
    summary = engine.run("demo", RunOptions(restart=True))
    assert not summary.resumed and summary.version_id != abandoned
    assert abandoned not in [v.version_id for v in store(home).list_versions("DEMO")]
    assert engine.ledger.list_runs("demo")[1]["status"] == "abandoned"


def test_stop_request_interrupts_and_the_next_run_starts_a_complete_snapshot(
    tmp_path: Path, home: Path, gated: type
) -> None:
    config = make_config(tmp_path, {"slow": {"connector": "gated", "dataset_id": "SLOW"}})
    engine = make_engine(config, home, GatedPlugin())
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            engine.run("slow", RunOptions(stop=stop))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert gated.started.wait(SAFETY_TIMEOUT)
    stop.set()
    gated.gate.set()
    thread.join(SAFETY_TIMEOUT)
    assert errors and "stopped on request" in str(errors[0])
    wait_until(lambda: engine.ledger.list_runs("slow")[0]["status"] == "interrupted")
    summary = engine.run("slow")
    assert summary.status == "succeeded" and summary.imported == 100
    assert store(home).contents("SLOW", summary.version_id).events_total == 100


def test_a_damaged_spool_is_not_resumed_but_replaced_by_a_fresh_snapshot(
    tmp_path: Path, home: Path
) -> None:
    engine, failed = failed_flaky_run(tmp_path, home, 1, demo_source(3000))
    damaged = failed["version_id"]
    last = sorted((home / "spool").glob("*/*-events.json"))[-1]
    last.write_bytes(last.read_bytes()[:1000])  # what a power loss can leave behind
    summary = engine.run("demo")
    assert not summary.resumed and summary.version_id != damaged
    assert engine.ledger.list_runs("demo")[1]["error"] == (
        "abandoned: spooled batches are missing or damaged"
    )
    assert store(home).contents("DEMO", summary.version_id).events_total == 3000


def test_a_resumed_run_counts_and_keeps_the_extractions_quarantine(
    tmp_path: Path, home: Path
) -> None:
    engine, _ = failed_flaky_run(
        tmp_path,
        home,
        1,
        {
            "demo": {
                "connector": "demo",
                "dataset_id": "DEMO",
                "max_quarantined": 5,
                "settings": {"events": 3000, "bad_records": 4},
            }
        },
    )
    with pytest.raises(RunFailed, match="4 records quarantined, over the limit of 3"):
        engine.run("demo", RunOptions(max_quarantined=3))  # the resume counts them again
    summary = engine.run("demo")
    assert summary.resumed and summary.quarantined == 4
    lines = Path(summary.quarantine_file).read_bytes().splitlines()
    assert len(lines) == 4


def test_a_spool_made_for_another_sink_is_not_resumed(tmp_path: Path, home: Path) -> None:
    engine, failed = failed_flaky_run(tmp_path, home, 1, demo_source(3000))
    other_store = home / "other.sqlite3"
    config = make_config(
        tmp_path, demo_source(3000), mixpanel={"sink": "embedded", "store": str(other_store)}
    )
    summary = make_engine(config, home).run("demo")
    assert not summary.resumed, "the first spool's acknowledged batches went elsewhere"
    assert DatasetStore(other_store).contents("DEMO", summary.version_id).events_total == 3000
    assert engine.ledger.list_runs("demo")[1]["error"] == (
        "abandoned: the sink changed (flaky -> embedded)"
    )
    assert failed["version_id"] in [v.version_id for v in store(home).list_versions("DEMO")], (
        "the old sink's version is left alone: it is not this sink's to delete"
    )


class HugeNumberConnector(mpconnect.Connector):
    """Yields 1500 events, one of which holds an integer beyond 64 bits."""

    name = "huge"

    def events(self, ctx: mpconnect.RunContext):
        for index in range(1500):
            yield mpconnect.Event(
                "Tick",
                f"user-{index % 7}",
                1_700_000_000 + index,
                object_id=f"tick-{index}",
                properties={"n": 2**64 if index == 42 else index},
            )

    def people(self, ctx: mpconnect.RunContext):
        yield from ()


class HugeNumberPlugin:
    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(HugeNumberConnector)


def test_a_value_json_cannot_hold_is_quarantined_and_the_batch_goes_on(
    tmp_path: Path, home: Path
) -> None:
    config = make_config(tmp_path, {"huge": {"connector": "huge", "dataset_id": "HUGE"}})
    summary = make_engine(config, home, HugeNumberPlugin()).run("huge")
    assert (summary.status, summary.read, summary.imported, summary.quarantined) == (
        "succeeded",
        1500,
        1499,
        1,
    )
    (line,) = Path(summary.quarantine_file).read_bytes().splitlines()
    entry = orjson.loads(line)
    assert entry["what"].startswith("event 'Tick'")
    assert "cannot be encoded as JSON" in entry["reason"]
    assert "18446744073709551616" in entry["record"]["repr"]


def test_a_retry_after_is_honoured_up_to_retry_max_wait_not_beyond() -> None:
    from mpconnect.errors import RetryableApiError
    from mpconnect.transport.retry import call_with_retries

    waits: list[float] = []
    attempts = iter(
        [
            RetryableApiError(429, "slow down", retry_after=45),
            RetryableApiError(429, "slow down", retry_after=3600),
            "done",
        ]
    )

    def call() -> str:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert call_with_retries(call, initial_wait=0.5, max_wait=60, sleep=waits.append) == "done"
    assert len(waits) == 2
    assert 45 <= waits[0] < 45.2, "a Retry-After longer than the backoff is honoured"
    assert 60 <= waits[1] < 60.2, "an hour's Retry-After is cut to retry_max_wait"
