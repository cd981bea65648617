"""The C accelerator (mpconnect._speedups) gives exactly what the Python path gives: the
same JSON line as ``orjson.dumps(event.to_mixpanel(...))``, the same duplicate key, the
same ``$insert_id``; and it never takes an event the Python path would refuse or change."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpconnect
from mpconnect import event_lines
from mpconnect.engine.duplicates import DuplicateCounter
from mpconnect.errors import RecordError
from mpconnect.record_values import _INSERT_ID, PLACEHOLDER_DISTINCT_IDS, make_insert_id

speedups = pytest.importorskip("mpconnect._speedups") if event_lines.compiled() else None
LATEST = 99_999_999_999
TOKEN = "project-token"


def test_the_accelerator_is_built_where_ci_requires_it() -> None:
    """CI sets MPCONNECT_REQUIRE_COMPILED=1: a build that lost the C module fails there."""
    if os.environ.get("MPCONNECT_REQUIRE_COMPILED") == "1":
        assert event_lines.compiled(), "mpconnect._speedups was not compiled"
    elif not event_lines.compiled():
        pytest.skip("mpconnect._speedups is not compiled here (no C compiler at install)")
    assert event_lines.event_line_function() is not None


def test_pure_python_switches_the_accelerator_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPCONNECT_PURE_PYTHON", "1")
    assert event_lines.event_line_function() is None
    monkeypatch.setenv("MPCONNECT_PURE_PYTHON", "0")
    assert event_lines.event_line_function() is (speedups.event_line if speedups else None)


needs_c = pytest.mark.skipif(speedups is None, reason="mpconnect._speedups is not compiled")


def python_result(event: mpconnect.Event, latest: int, key_mode: int) -> tuple[bytes, Any] | None:
    """What the Python path makes of ``event``: (line, key), or None when it refuses it."""
    try:
        converted = event.to_mixpanel(TOKEN, latest)
        line = orjson.dumps(converted)
    except (RecordError, TypeError):
        return None
    if key_mode == event_lines.NO_KEY:
        return line, None
    counter = DuplicateCounter("test", full_key=key_mode == event_lines.FULL_KEY)
    return line, counter.key(converted)


def assert_same_as_python(event: mpconnect.Event, latest: int = LATEST) -> bool:
    """Assert the C result equals the Python path's; return whether C took the event."""
    assert speedups is not None
    taken = False
    for key_mode in (event_lines.NO_KEY, event_lines.INSERT_ID_KEY, event_lines.FULL_KEY):
        compiled = speedups.event_line(event, TOKEN, latest, key_mode)
        if compiled is not None:
            taken = True
            assert compiled == python_result(event, latest, key_mode), event
    return taken


@needs_c
def test_the_usual_events_of_the_demo_are_taken_and_equal() -> None:
    from mpconnect.connector import RunContext
    from mpconnect_demo import DemoConnector

    connector = DemoConnector(DemoConnector.Settings(events=3000))
    events = list(connector.events(RunContext(source="t", dataset_id="T")))
    assert events and all(assert_same_as_python(event) for event in events)


def plain(**changes: Any) -> mpconnect.Event:
    fields: dict[str, Any] = {
        "name": "Charge Succeeded",
        "distinct_id": "cus_NffrFeUfNV2Hib",
        "time": 1_680_000_000,
        "object_id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
        "properties": {"amount": 1099, "currency": "usd", "paid": True, "refund": None},
    }
    return mpconnect.Event(**{**fields, **changes})


class Colour(Enum):
    RED = "red"


@needs_c
@pytest.mark.parametrize(
    ("changes", "taken"),
    [
        ({}, True),
        ({"properties": {}}, True),
        ({"properties": {"note": 'quote " backslash \\ newline \n tab \t \x01 \x7f é 名'}}, True),
        ({"properties": {"emoji": "😀"}}, True),
        ({"properties": {"big": 2**64 - 1, "small": -(2**63)}}, True),
        ({"properties": {"too_big": 2**64}}, False),  # orjson refuses it: quarantined
        ({"properties": {"too_small": -(2**63) - 1}}, False),
        ({"properties": {"ratio": 0.5}}, False),  # floats: the Python path
        ({"properties": {"when": datetime(2024, 1, 1, tzinfo=UTC)}}, False),
        ({"properties": {"amount": Decimal("1.5")}}, False),
        ({"properties": {"colour": Colour.RED}}, False),
        ({"properties": {"id": uuid.UUID(int=5)}}, False),
        ({"properties": {"nested": {"a": 1}}}, False),
        ({"properties": {"list": [1, 2]}}, False),
        ({"properties": {"time": 5}}, False),  # reserved: quarantined
        ({"properties": {"token": "x"}}, False),
        ({"properties": {1: "int key"}}, False),
        ({"properties": {f"p{i}": i for i in range(250)}}, True),
        ({"properties": {f"p{i}": i for i in range(251)}}, False),
        ({"name": ""}, False),
        ({"name": " \t"}, False),
        ({"name": " padded "}, True),
        ({"name": "Tick \ud800"}, False),
        ({"distinct_id": "anon"}, False),
        ({"distinct_id": "0123456789abc"}, False),
        ({"distinct_id": " cus_NffrFeUfNV2Hib"}, False),
        ({"distinct_id": "cus_NffrFeUfNV2Hib\u3000"}, False),
        ({"distinct_id": 12345678901}, False),
        ({"distinct_id": "", "unattributed": True}, False),
        ({"time": 31_535_999}, False),
        ({"time": 31_536_000}, True),
        ({"time": 1_680_000_000.0}, False),
        ({"time": True}, False),
        ({"time": datetime(2024, 1, 1, tzinfo=UTC)}, False),
        ({"time": 10**30}, False),
        ({"object_id": None}, False),
        ({"object_id": 42}, False),
        ({"object_id": "object-\ud800"}, False),  # hashed with surrogatepass in Python
        ({"object_id": "x" * 127}, True),  # the hash's block edges
        ({"object_id": "x" * 128}, True),
        ({"object_id": "x" * 300}, True),
        ({"object_id": None, "insert_id": "abc-DEF-123"}, True),
        ({"object_id": None, "insert_id": "x" * 36}, True),
        ({"object_id": None, "insert_id": "x" * 37}, False),
        ({"object_id": None, "insert_id": "NULL"}, False),
        ({"object_id": None, "insert_id": "00000000-0000-0000-0000-000000000000"}, False),
        ({"object_id": None, "insert_id": "has space"}, False),
        ({"object_id": None, "insert_id": "ünicode"}, False),
        ({"object_id": None, "insert_id": ""}, False),
    ],
)
def test_each_field_takes_the_c_path_only_where_python_passes_it_unchanged(
    changes: dict[str, Any], taken: bool
) -> None:
    event = plain(**changes)
    assert assert_same_as_python(event) is taken


@needs_c
def test_a_time_past_the_sinks_latest_is_left_to_python() -> None:
    event = plain(time=2_000_000_000)
    assert assert_same_as_python(event, latest=2_000_000_000)
    assert not assert_same_as_python(event, latest=1_999_999_999)


@needs_c
def test_an_object_that_is_no_event_is_left_to_python() -> None:
    assert speedups is not None
    assert speedups.event_line(object(), TOKEN, LATEST, 1) is None
    assert speedups.event_line(plain(), b"token", LATEST, 1) is None


@needs_c
def test_an_event_with_a_field_deleted_is_left_to_python() -> None:
    assert speedups is not None
    parts: list[bytes] = []
    event = plain()
    del event.properties
    read, added, status, item = speedups.fill_batch(
        iter([plain(), event]), TOKEN, LATEST, 1, parts, [], 1000, 10**6, 10**6, mpconnect.Event
    )
    assert (read, status, item) == (2, event_lines.FILL_LEFTOVER, event)
    assert parts == [orjson.dumps(plain().to_mixpanel(TOKEN))] and added == len(parts[0]) + 1
    assert speedups.event_line(event, TOKEN, LATEST, 1) is None


@needs_c
def test_its_placeholder_ids_are_the_python_ones_an_insert_id_could_spell() -> None:
    assert speedups is not None
    expected = {p for p in PLACEHOLDER_DISTINCT_IDS if _INSERT_ID.fullmatch(p)}
    assert set(speedups.INSERT_ID_PLACEHOLDERS) == expected


@needs_c
@given(object_id=st.text(), name=st.text())
@settings(max_examples=400)
def test_its_insert_id_is_blake2b_as_python_computes_it(object_id: str, name: str) -> None:
    assert speedups is not None
    try:
        expected = make_insert_id(object_id, name)
        f"{object_id}{name}".encode()
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            speedups.make_insert_id(object_id, name)
        return
    assert speedups.make_insert_id(object_id, name) == expected


scalars = st.one_of(
    st.text(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.decimals(allow_nan=True),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
events = st.builds(
    mpconnect.Event,
    name=st.text() | st.sampled_from(["Signed Up", " ", ""]),
    distinct_id=st.text() | st.sampled_from(["user-0000000001", "null", "0000000000001"]),
    time=st.integers(min_value=0, max_value=10**12) | st.floats() | st.booleans(),
    object_id=st.none() | st.text() | st.integers(),
    properties=st.dictionaries(st.text() | st.sampled_from(["time", "token"]), values),
    insert_id=st.none() | st.text(max_size=40) | st.sampled_from(["abc-123", "NaN", "-1"]),
    unattributed=st.booleans(),
)


@needs_c
@given(event=events, latest=st.integers(min_value=0, max_value=LATEST))
@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
def test_any_event_gets_the_python_paths_line_or_is_left_to_it(
    event: mpconnect.Event, latest: int
) -> None:
    assert_same_as_python(event, latest)
