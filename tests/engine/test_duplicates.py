"""Counting duplicate events exactly in bounded memory: the latest keys name a duplicate
near its twin, every key spills to disk and is counted when the read ends."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import make_config, make_engine

import mpconnect
from mpconnect.engine.duplicates import SPILL_DIRECTORY, DuplicateCounter
from mpconnect.engine.key_spill import KeySpill
from mpconnect.errors import RunFailed
from mpconnect.sink import ImportResult
from mpconnect.sinks.embedded import EmbeddedSink
from mpconnect.store.datasets import DatasetStore

WHEN = 1_700_000_000


def event(insert_id: str, index: int = 0, name: str = "Tick") -> dict[str, Any]:
    return mpconnect.Event(name, f"user-{index}", WHEN + index, insert_id=insert_id).to_mixpanel(
        "token"
    )


def tiny_counter(**kwargs: Any) -> DuplicateCounter:
    """A counter with a window of 8 keys, spilling every 5 keys, counting 3 keys at once."""
    return DuplicateCounter("src", window=8, buffer_keys=5, max_bucket_keys=3, **kwargs)


def count_in_batches(
    counter: DuplicateCounter, directory: Path, ids: list[str], batch: int = 4
) -> int:
    counter.start(directory)
    events = [event(insert_id, index) for index, insert_id in enumerate(ids)]
    for start in range(0, len(events), batch):
        counter.see_batch(events[start : start + batch])
    return counter.finish()


def duplicate_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "duplicate events" in r.getMessage()]


# -- the counter, with a tiny window and tiny buckets --------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_count_equals_a_plain_set_over_the_same_keys(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    ids = [f"id-{rng.randrange(250)}" for _ in range(600)]  # repeats near and far

    counter = tiny_counter()
    found = count_in_batches(counter, tmp_path / "keys", ids, batch=7)

    assert found == counter.count == len(ids) - len(set(ids))
    assert found >= 350  # 600 events, at most 250 distinct ids


def test_a_duplicate_beyond_the_window_is_counted_and_reported_by_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"id-{i}" for i in range(100)] + ["id-3", "id-5"]  # 97 events after their twins

    with caplog.at_level(logging.WARNING, logger="mpconnect"):
        found = count_in_batches(tiny_counter(), tmp_path / "keys", ids)

    assert found == 2
    (warning,) = duplicate_warnings(caplog)
    assert warning == (
        "src: duplicate events: 2 events have the $insert_id of an earlier event of this run, "
        "more than 8 events before them; the destination keeps one of each "
        "(duplicates are counted in the run's summary)"
    )


def test_a_duplicate_near_its_twin_is_named_when_found_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"id-{i}" for i in range(40)]
    ids[20] = "id-14"  # six events after its twin, in another batch
    ids[30] = "id-29"  # in the same batch
    ids[39] = "id-0"  # far

    counter = tiny_counter()
    with caplog.at_level(logging.WARNING, logger="mpconnect"):
        counter.start(tmp_path / "keys")
        events = [event(insert_id, index) for index, insert_id in enumerate(ids)]
        for start in range(0, 20, 4):
            counter.see_batch(events[start : start + 4])
        assert duplicate_warnings(caplog) == []
        counter.see_batch(events[20:24])
        named = duplicate_warnings(caplog)
        for start in range(24, 40, 4):
            counter.see_batch(events[start : start + 4])
        counter.finish()

    assert named == [
        "src: duplicate events: event 'Tick' (distinct_id 'user-20') has $insert_id id-14 "
        "like an earlier event of this run; the destination keeps one of them "
        "(duplicates are counted in the run's summary)"
    ]
    assert duplicate_warnings(caplog) == named  # no second warning for the others
    assert counter.count == 3


def test_the_window_reaches_back_at_least_its_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for distance in range(1, 9):
        ids = [f"id-{i}" for i in range(30)]
        ids[29] = ids[29 - distance]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mpconnect"):
            counter = tiny_counter()
            counter.start(tmp_path / "keys")
            events = [event(insert_id, index) for index, insert_id in enumerate(ids)]
            for start in range(0, 30, 3):
                counter.see_batch(events[start : start + 3])
            named = duplicate_warnings(caplog)
            counter.finish()
        assert len(named) == 1, f"a duplicate {distance} events after its twin"
        assert f"has $insert_id {ids[29]} like an earlier event" in named[0]
        assert counter.count == 1


def test_the_full_key_counts_what_import_keeps_once(tmp_path: Path) -> None:
    counter = tiny_counter(full_key=True)
    counter.start(tmp_path / "keys")
    counter.see_batch(
        [
            event("a", 1),
            event("a", 1),  # same event, time, distinct_id and $insert_id: a duplicate
            event("a", 2),  # another time and distinct_id: kept
            event("a", 1, name="Other"),  # another name: kept
        ]
    )

    assert counter.finish() == 1


def test_events_without_a_key_are_not_counted(tmp_path: Path) -> None:
    counter = tiny_counter()
    counter.start(tmp_path / "keys")
    counter.see_batch(
        [
            {"event": "A", "properties": {"distinct_id": "u"}},
            {"event": "A", "properties": {"distinct_id": "u"}},
            event("x", 1),
            {"event": "B", "properties": "not a dict"},
            event("x", 2),
        ]
    )

    assert counter.finish() == 1


def test_a_resumed_count_goes_on_from_the_extractions(tmp_path: Path) -> None:
    counter = tiny_counter(count=5)
    counter.add(2)  # events the sink collapsed

    found = count_in_batches(counter, tmp_path / "keys", ["a", "b", "a", "a"])

    assert found == 2 and counter.count == 9


def test_the_spilled_keys_live_under_the_spool_and_go_when_counted(tmp_path: Path) -> None:
    counter = tiny_counter()
    spool = tmp_path / "spool"
    with counter.counting(spool):
        counter.see_batch([event(f"id-{i}", i) for i in range(12)])
        assert list((spool / SPILL_DIRECTORY).glob("*.keys"))  # past buffer_keys: on disk
    assert not (spool / SPILL_DIRECTORY).exists()

    with pytest.raises(ValueError, match="the source went away"), counter.counting(spool):
        counter.see_batch([event(f"id-{i}", i) for i in range(12)])
        raise ValueError("the source went away")
    assert not (spool / SPILL_DIRECTORY).exists()
    assert counter.count == 0  # a failed read counts nothing


# -- the spill, on keys chosen to share their leading bytes ---------------------------------


def spill_repeats(directory: Path, keys: list[int], max_bucket_keys: int) -> int:
    spill = KeySpill(directory, buffer_keys=10, max_bucket_keys=max_bucket_keys)
    for start in range(0, len(keys), 13):
        spill.add(keys[start : start + 13])
    try:
        return spill.count_repeats()
    finally:
        spill.remove()


def test_buckets_split_again_on_every_byte_count_exactly(tmp_path: Path) -> None:
    rng = random.Random(7)
    extremes = [-(2**63), 2**63 - 1, 0, -1, 1]
    low_bytes = [rng.randrange(300) for _ in range(150)]  # keys sharing seven leading bytes
    high = [rng.choice((-1, 1)) * (rng.randrange(40) << 50) for _ in range(150)]
    top_nibble = [(rng.randrange(16) << 56) + 5 for _ in range(60)]  # first spread's bits
    wide = [rng.randrange(-(2**63), 2**63) for _ in range(100)]
    keys = extremes * 3 + low_bytes + high + top_nibble + wide + wide[:20]
    rng.shuffle(keys)

    for max_bucket_keys in (1, 7, 10_000):
        found = spill_repeats(tmp_path / f"keys-{max_bucket_keys}", keys, max_bucket_keys)
        assert found == len(keys) - len(set(keys)), f"max_bucket_keys={max_bucket_keys}"


def test_a_read_that_fits_in_the_buffer_writes_no_file_and_counts_exactly(
    tmp_path: Path,
) -> None:
    spill = KeySpill(tmp_path / "keys", buffer_keys=1000)
    keys = [7, -7, 2**62, 7, -(2**63), 2**62, 3]
    spill.add(keys)
    assert list((tmp_path / "keys").iterdir()) == []
    assert spill.count_repeats() == 2
    spill.remove()
    assert not (tmp_path / "keys").exists()


def test_one_key_repeated_past_every_split_counts_all_but_one(tmp_path: Path) -> None:
    assert spill_repeats(tmp_path / "keys", [42] * 100 + [43], max_bucket_keys=4) == 99
    assert not (tmp_path / "keys").exists()


# -- through the engine ---------------------------------------------------------------------


class RepeatingConnector(mpconnect.Connector):
    """Events with the ``$insert_id`` values given, in ``partitions`` parts."""

    name = "repeating"

    class Settings(mpconnect.ConnectorSettings):
        ids: list[str] = []
        partitions: int = 1

    def partitions(self, ctx: mpconnect.RunContext) -> list[mpconnect.Partition]:
        count = self.settings.partitions
        return [mpconnect.Partition(f"p{part}", {"part": part}) for part in range(count)]

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        part = ctx.partition.spec.get("part", 0) if ctx.partition else 0
        ids = self.settings.ids
        for index in range(part, len(ids), self.settings.partitions):
            yield mpconnect.Event("Tick", f"user-{index}", WHEN + index, insert_id=ids[index])

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class FailingSink(EmbeddedSink):
    """The embedded sink, refusing every batch after the first while ``failing``."""

    name = "failing"
    failing = False
    calls = 0

    def import_batch(self, kind, dataset_id, version_id, payload, count) -> ImportResult:
        type(self).calls += 1
        if type(self).failing and type(self).calls > 1:
            raise mpconnect.errors.ApiError(403, "project suspended")
        return super().import_batch(kind, dataset_id, version_id, payload, count)


class Plugin:
    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(RepeatingConnector)

    @mpconnect.hookimpl
    def register_sinks(self, register: Callable[[type], None]) -> None:
        register(FailingSink)


def engine_for(tmp_path: Path, home: Path, ids: list[str], partitions: int = 1) -> Any:
    config = make_config(
        tmp_path,
        {
            "rep": {
                "connector": "repeating",
                "dataset_id": "REP",
                "settings": {"ids": ids, "partitions": partitions},
            }
        },
        mixpanel={"sink": "failing", "store": str(home / "embedded.sqlite3")},
        engine={"concurrency": 1},
    )
    return make_engine(config, home, Plugin())


def repeating_ids() -> list[str]:
    ids = [f"id-{i}" for i in range(5_000)]
    for index in range(100, 5_000, 50):
        ids[index] = ids[index - 7]  # 98 duplicates, each near its twin
    return ids


def test_a_run_counts_its_duplicates_and_a_resumed_run_keeps_the_count(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = repeating_ids()
    engine = engine_for(tmp_path, home, ids)
    FailingSink.failing, FailingSink.calls = True, 0
    with caplog.at_level(logging.WARNING, logger="mpconnect"), pytest.raises(RunFailed):
        engine.run("rep")
    (failed,) = engine.ledger.list_runs("rep")
    assert failed["extraction_done"] == 1 and failed["duplicates"] == 98
    assert list(home.glob("spool/*/*-events.json")), "the spool is kept for the resume"
    assert not list(home.glob(f"spool/*/{SPILL_DIRECTORY}")), "the spilled keys are gone"
    (warning,) = duplicate_warnings(caplog)
    assert "event 'Tick' (distinct_id 'user-100') has $insert_id id-93" in warning

    FailingSink.failing = False
    summary = engine.run("rep")

    assert summary.resumed and summary.status == "succeeded"
    assert summary.duplicates == 98
    assert "duplicates collapsed: 98" in summary.describe()
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        assert store.contents("REP", summary.version_id or "").events_total == len(set(ids))
    finally:
        store.close()


def test_a_partitioned_run_adds_up_each_partitions_duplicates(tmp_path: Path, home: Path) -> None:
    ids = [f"id-{i % 700}" for i in range(3_000)]  # each partition repeats its own ids
    FailingSink.failing = False

    summary = engine_for(tmp_path, home, ids, partitions=4).run("rep")

    per_partition = sum(
        len(ids[part::4]) - len(set(ids[part::4])) for part in range(4)
    )  # within a partition, not across partitions
    assert summary.status == "succeeded" and summary.duplicates == per_partition
    assert not list(home.glob("spool/*")), "a finished run leaves no spool"
