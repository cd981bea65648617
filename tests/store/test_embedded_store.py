"""The embedded store keeps the Datasets API's semantics: datasets, versions and their
state object, events and people per version, five versions retained, one live."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from mpconnect.config import MixpanelConfig
from mpconnect.errors import SinkError
from mpconnect.sink import ZERO_TIME
from mpconnect.sinks.embedded import EmbeddedSink, embedded_store_path
from mpconnect.store.datasets import DatasetStore, StoreError


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DatasetStore]:
    """A fresh store file."""
    opened = DatasetStore(tmp_path / "store.sqlite3")
    yield opened
    opened.close()


def an_event(insert_id: str, name: str = "Airline Review", distinct_id: str = "u1") -> dict:
    """An event in Mixpanel's structure."""
    return {
        "event": name,
        "properties": {
            "distinct_id": distinct_id,
            "time": 1_700_000_000,
            "token": "t",
            "$insert_id": insert_id,
        },
    }


def a_person(distinct_id: str, **values: Any) -> dict:
    """A ``$set`` people record."""
    return {"$token": "t", "$distinct_id": distinct_id, "$set": values}


def test_a_new_version_is_writable_and_not_readable(store: DatasetStore) -> None:
    version = store.create_version("SKYTRAX", create_dataset=True)

    assert version.to_api() == {
        "created_at": version.created_at,
        "is_live": False,
        "state": {
            "readable": False,
            "readable_at": ZERO_TIME,
            "ready": False,
            "ready_at": ZERO_TIME,
            "writable": True,
        },
        "version_id": version.version_id,
    }
    assert version.version_id.isdigit()
    assert store.list_versions("SKYTRAX") == [version]


def test_versions_need_an_existing_dataset(store: DatasetStore) -> None:
    with pytest.raises(StoreError) as created:
        store.create_version("NOPE")
    with pytest.raises(StoreError) as listed:
        store.list_versions("NOPE")

    assert (created.value.status, created.value.message) == (404, "dataset NOPE does not exist")
    assert listed.value.status == 404
    assert store.list_datasets() == []


def test_publishing_makes_a_version_ready_and_live(store: DatasetStore) -> None:
    version = store.create_version("D", create_dataset=True)

    store.update_state("D", version.version_id, readable=True, writable=False)
    published = store.get_version("D", version.version_id)

    assert published is not None
    assert published.is_live and published.readable and published.ready
    assert not published.writable
    assert published.readable_at != ZERO_TIME and published.ready_at != ZERO_TIME
    assert store.live_version("D") == published


def test_a_version_is_live_only_after_the_live_delay(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "slow.sqlite3", live_delay=3600)
    version = store.create_version("D", create_dataset=True)

    store.update_state("D", version.version_id, readable=True, writable=True)
    published = store.get_version("D", version.version_id)
    store.close()

    assert published is not None
    assert published.readable and published.ready and not published.is_live
    assert published.writable


def test_one_live_version_per_dataset_the_newest_published(store: DatasetStore) -> None:
    first = store.create_version("D", create_dataset=True)
    second = store.create_version("D")
    unpublished = store.create_version("D")
    other = store.create_version("OTHER", create_dataset=True)
    for dataset, version in (("D", first), ("D", second), ("OTHER", other)):
        store.update_state(dataset, version.version_id, readable=True, writable=False)

    listed = store.list_versions("D")

    assert [v.version_id for v in listed] == [
        unpublished.version_id,
        second.version_id,
        first.version_id,
    ]
    assert [v.is_live for v in listed] == [False, True, False]
    assert store.live_version("OTHER").version_id == other.version_id  # type: ignore[union-attr]


def test_only_the_five_latest_versions_are_retained(store: DatasetStore) -> None:
    created = [store.create_version("D", create_dataset=True).version_id for _ in range(7)]

    assert [v.version_id for v in store.list_versions("D")] == created[::-1][:5]


def test_retention_never_deletes_the_live_version(store: DatasetStore) -> None:
    live = store.create_version("D", create_dataset=True)
    store.import_events("D", live.version_id, [an_event("e1")])
    store.update_state("D", live.version_id, readable=True, writable=False)

    later = [store.create_version("D").version_id for _ in range(6)]
    kept = [v.version_id for v in store.list_versions("D")]

    assert kept == [*later[::-1][:4], live.version_id]
    assert store.live_version("D").version_id == live.version_id  # type: ignore[union-attr]
    assert store.contents("D", live.version_id).events_total == 1


def test_version_ids_are_unique_and_increasing_even_across_store_objects(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    one, two = DatasetStore(path, max_versions=100), DatasetStore(path, max_versions=100)
    one.ensure_dataset("D")

    ids = [(one if i % 2 else two).create_version("D").version_id for i in range(40)]
    one.close()
    two.close()

    assert len(set(ids)) == 40
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)


def test_events_deduplicate_by_insert_id_within_a_version(store: DatasetStore) -> None:
    version = store.create_version("D", create_dataset=True).version_id
    other = store.create_version("D").version_id

    store.import_events("D", version, [an_event("a"), an_event("b", name="Refund")])
    store.import_events("D", version, [an_event("a"), an_event("c")])
    store.import_events("D", other, [an_event("a")])
    contents = store.contents("D", version)

    assert contents.events_total == 3
    assert contents.events_received == 4
    assert contents.events_by_name == {"Airline Review": 2, "Refund": 1}
    assert store.contents("D", other).events_total == 1
    assert sorted(e["properties"]["$insert_id"] for e in store.iter_events("D", version)) == [
        "a",
        "b",
        "c",
    ]


def test_people_records_resent_are_kept_once(store: DatasetStore) -> None:
    version = store.create_version("D", create_dataset=True).version_id
    batch = [a_person("u1", plan="pro"), a_person("u2", plan="free")]

    store.import_people("D", version, batch)
    store.import_people("D", version, [*batch, a_person("u1", plan="team")])
    contents = store.contents("D", version)

    assert (contents.people_total, contents.profiles, contents.people_received) == (3, 2, 5)
    assert a_person("u1", plan="team") in list(store.iter_people("D", version))


def test_a_published_unwritable_version_refuses_imports(store: DatasetStore) -> None:
    version = store.create_version("D", create_dataset=True).version_id
    store.update_state("D", version, readable=True, writable=False)

    with pytest.raises(StoreError) as info:
        store.import_events("D", version, [an_event("late")])

    assert info.value.status == 400
    assert info.value.message == f"version {version} of dataset D is not writable"
    assert store.contents("D", version).events_received == 0


def test_imports_into_a_missing_version_are_404(store: DatasetStore) -> None:
    store.ensure_dataset("D")

    with pytest.raises(StoreError) as info:
        store.import_people("D", "123", [a_person("u1")])

    assert (info.value.status, info.value.message) == (
        404,
        "version 123 of dataset D does not exist",
    )


@pytest.mark.parametrize(
    ("kind", "record", "message"),
    [
        ("events", {"properties": {"distinct_id": "u1"}}, "event 1 of the batch has no"),
        ("events", {"event": "E"}, "event 1 of the batch has no"),
        ("events", {"event": "E", "properties": ["distinct_id"]}, "event 1 of the batch"),
        ("events", "not a record", "event 1 of the batch has no"),
        ("people", {"$set": {"a": 1}}, 'people record 1 of the batch has no "$distinct_id"'),
    ],
)
def test_malformed_records_are_refused_naming_them(
    store: DatasetStore, kind: str, record: Any, message: str
) -> None:
    version = store.create_version("D", create_dataset=True).version_id
    good = an_event("ok") if kind == "events" else a_person("u1")
    importer = store.import_events if kind == "events" else store.import_people

    with pytest.raises(StoreError) as info:
        importer("D", version, [good, record])

    assert info.value.status == 400
    assert message in info.value.message
    assert store.contents("D", version).events_received == 0


def test_deleting_a_version_removes_its_records(store: DatasetStore) -> None:
    keep = store.create_version("D", create_dataset=True).version_id
    drop = store.create_version("D").version_id
    store.import_events("D", drop, [an_event("x")])

    store.delete_version("D", drop)

    assert [v.version_id for v in store.list_versions("D")] == [keep]
    assert store.get_version("D", drop) is None
    with pytest.raises(StoreError):
        store.contents("D", drop)


def test_concurrent_imports_from_several_threads_all_land(store: DatasetStore) -> None:
    version = store.create_version("D", create_dataset=True).version_id
    errors: list[BaseException] = []

    def load(worker: int) -> None:
        try:
            for batch in range(5):
                store.import_events(
                    "D", version, [an_event(f"w{worker}-b{batch}-{i}") for i in range(100)]
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert store.contents("D", version).events_total == 2000


def test_samples_show_a_few_records(store: DatasetStore) -> None:
    version = store.create_version("D", create_dataset=True).version_id
    store.import_events("D", version, [an_event(f"e{i}") for i in range(10)])

    assert len(store.sample_events("D", version, 3)) == 3
    assert store.sample_people("D", version, 3) == []


# -- the embedded sink over the store --------------------------------------------------------


def test_the_embedded_sink_runs_the_lifecycle(tmp_path: Path) -> None:
    sink = EmbeddedSink(MixpanelConfig(), tmp_path)
    try:
        assert sink.list_versions("NEW") == []
        version = sink.create_version("NEW")
        payload = orjson.dumps([an_event("1"), an_event("2")])
        result = sink.import_batch("events", "NEW", version.version_id, payload, 2)
        sink.publish("NEW", version.version_id)
        published = sink.get_version("NEW", version.version_id)
        with pytest.raises(
            SinkError,
            match=r"^embedded store: version \d+ of dataset NEW is "
            r"not writable$",
        ):
            sink.import_batch("events", "NEW", version.version_id, payload, 2)
    finally:
        sink.close()

    assert result.imported == 2
    assert published is not None and published.is_live
    assert sink.describe() == f"embedded store {tmp_path / 'embedded.sqlite3'}"


def test_the_store_file_can_be_configured(tmp_path: Path) -> None:
    configured = MixpanelConfig(store=str(tmp_path / "elsewhere.sqlite3"))

    assert embedded_store_path(configured, tmp_path) == tmp_path / "elsewhere.sqlite3"
    assert embedded_store_path(MixpanelConfig(), tmp_path) == tmp_path / "embedded.sqlite3"
