"""The demo's records are the same as they always were for the same settings.

Users and the docs see these names, ids, times and property values, and incremental runs
compare what one run read with what the next reads, so a faster generator must draw the
very same records. Each digest below was computed by :func:`digest` with the demo's code
as it was before its generation was optimised (main at 27a1869, issue 18), by running
this file's scenarios and printing ``digest(...)``; the test asserts the current code
still gives them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pytest

import mpconnect
from mpconnect.connector import RunContext
from mpconnect_demo import DemoConnector
from mpconnect_demo.blocks import BLOCK


def digest(records: Iterable[mpconnect.Event | mpconnect.Profile]) -> tuple[int, str]:
    """How many records, and a SHA-256 over every field of each one, in order (property
    order included: ``repr`` of a dict lists its items as inserted)."""
    sha = hashlib.sha256()
    count = 0
    for record in records:
        count += 1
        if isinstance(record, mpconnect.Event):
            fields: tuple[Any, ...] = (
                "event",
                record.name,
                record.distinct_id,
                type(record.time).__name__,
                record.time,
                record.object_id,
                list(record.properties.items()),
                record.insert_id,
                record.unattributed,
                record.stream,
            )
        else:
            fields = (
                "profile",
                record.distinct_id,
                list(record.set.items()),
                record.set_once,
                record.add,
                record.union,
                record.append,
                record.remove,
                record.unset,
                record.object_id,
                record.stream,
            )
        sha.update(repr(fields).encode())
        sha.update(b"\n")
    return count, sha.hexdigest()


def read(settings: dict[str, Any], **context: Any) -> list[mpconnect.Event | mpconnect.Profile]:
    """Every record one read of the demo yields: its events, then its people."""
    connector = DemoConnector(DemoConnector.Settings(**settings))
    ctx = RunContext(source="demo", dataset_id="DEMO", **context)
    records: list[mpconnect.Event | mpconnect.Profile] = list(connector.events(ctx))
    records.extend(connector.people(ctx))
    return records


def test_a_default_run_reads_the_records_it_always_has() -> None:
    records = read({})

    assert len(records) == 11_000
    first = records[0]
    assert isinstance(first, mpconnect.Event)
    assert (first.name, first.distinct_id, first.time, first.object_id) == (
        "Airline Review",
        "reviewer-275",
        1712861127,
        "review-0",
    )
    assert first.properties == {
        "airline_name": "air-new-zealand",
        "rating": 1,
        "cabin_class": "Premium Economy",
        "recommended": False,
        "seat_comfort": 4,
        "value_for_money": 5,
        "review_date": "2024-04-11",
    }
    assert digest(records[:1000]) == (
        1000,
        "7df09e32d42dde74450f2b8d167e2b2df81218a8ad74048aaaad7162fb0aa78c",
    )
    assert digest(records) == (
        11_000,
        "b111cee1bdfa8881c7c2d3c3b012da8fc28c43755b6b4807b9d3c9a46ff4666c",
    )


@pytest.mark.parametrize(
    ("settings", "partition", "expected"),
    [
        # three blocks, each owning a third of the reviewers; read in two partitions
        (
            {"events": 25_000, "partitions": 2},
            0,
            (10_833, "4ab699804609d558c9f8325a5229b15d28727f95ed5bad67eeb6bd3693911907"),
        ),
        (
            {"events": 25_000, "partitions": 2},
            1,
            (16_667, "8cb46711d4f7011538e7dc6d846b361877a4fd8fc550bd267ea252c3bac3ecf7"),
        ),
        # fewer reviewers than blocks: any review may be by any reviewer
        (
            {"events": 25_000, "reviewers": 2, "seed": 7, "bad_records": 3},
            None,
            (25_005, "00ffbed3473ac5d4ca2ea3887aae8059ebd63cbf1406893f067458c8c4348924"),
        ),
    ],
)
def test_blocks_and_partitions_read_the_records_they_always_have(
    settings: dict[str, Any], partition: int | None, expected: tuple[int, str]
) -> None:
    connector = DemoConnector(DemoConnector.Settings(**settings))
    ctx = RunContext(source="demo", dataset_id="DEMO")
    context: dict[str, Any] = {}
    if partition is not None:
        context["partition"] = connector.partitions(ctx)[partition]

    assert digest(read(settings, **context)) == expected


def test_a_changing_source_reads_the_records_it_always_has() -> None:
    settings = {"events": 12_000, "changes": 0.05, "bad_records": 2}
    before = read({**settings, "generation": 1})
    profiles = [record for record in before if isinstance(record, mpconnect.Profile)]

    full = read({**settings, "generation": 3})
    changed = read(
        {**settings, "generation": 3},
        state={"generation": 1},
        full_refresh=False,
        unchanged=lambda stream: iter(profiles if stream == "reviewers" else ()),
    )

    assert digest(before) == (
        13_202,
        "8b22f104af94ac8a1695270331b35fa9bf4f6c552c3ae6352160ab0bfd81237c",
    )
    assert digest(full) == (
        13_209,
        "f44b234c3bba0a37437dc4e49b35da344770245c1d8f33a1cd9d12fd223fad7b",
    )
    assert digest(changed) == (
        1_633,
        "8015b398ea5d6152fbe7f3d876377921b7b05230823d9dc969458533e81a71ee",
    )


def test_replayed_base_reviews_are_those_a_full_read_yields() -> None:
    settings = {"events": 2 * BLOCK + 500}
    events = {
        record.object_id: record for record in read(settings) if isinstance(record, mpconnect.Event)
    }
    indices = [0, 1, 17, BLOCK - 1, BLOCK, BLOCK + 4_321, 2 * BLOCK + 499]

    replayed = DemoConnector(DemoConnector.Settings(**settings))._base_reviews(indices)

    assert replayed == {
        index: (
            events[f"review-{index}"].distinct_id,
            events[f"review-{index}"].properties["rating"],
        )
        for index in indices
    }
