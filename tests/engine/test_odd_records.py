"""Odd records (values that contain themselves, lone surrogates, values whose own methods
raise, anything hypothesis can build) are imported or quarantined with a reason, never a
crash, and the counts add up: read = imported + quarantined."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_support import make_config, make_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpconnect
from mpconnect.engine import RunSummary
from mpconnect.errors import RecordError
from mpconnect.sinks.ingestion import IngestionSink
from mpconnect.store.datasets import DatasetStore

NOW = 1_700_000_000


def self_containing_dict() -> dict[str, Any]:
    """A dict that holds itself."""
    value: dict[str, Any] = {"name": "loop"}
    value["self"] = value
    return value


def self_containing_list() -> list[Any]:
    """A list that holds itself."""
    value: list[Any] = [1]
    value.append(value)
    return value


class RaisingRepr:
    """A value whose repr (and so describe and JSON fallback) raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class OddConnector(mpconnect.Connector):
    """Yields whatever records the test puts in :attr:`records`."""

    name = "odd"
    records: list[Any] = []
    people_records: list[Any] = []

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        """The test's events."""
        yield from type(self).records

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        """The test's profiles."""
        yield from type(self).people_records


class OddPlugin:
    """Registers :class:`OddConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        """Register the connector."""
        register(OddConnector)


def run_odd(
    tmp_path: Path, home: Path, events: list[Any], people: list[Any] | None = None
) -> tuple[RunSummary, list[dict[str, Any]]]:
    """Run the odd connector into the embedded store; return the summary and the
    quarantine file's lines."""
    OddConnector.records = events
    OddConnector.people_records = people or []
    config = make_config(
        tmp_path, {"odd": {"connector": "odd", "dataset_id": "ODD", "max_quarantined": "unlimited"}}
    )
    summary = make_engine(config, home, OddPlugin()).run("odd")
    lines: list[dict[str, Any]] = []
    if summary.quarantine_file:
        raw = Path(summary.quarantine_file).read_bytes().splitlines()
        lines = [orjson.loads(line) for line in raw]
    return summary, lines


def stored_events(home: Path, summary: RunSummary) -> list[dict[str, Any]]:
    """The events the run's version holds."""
    store = DatasetStore(home / "embedded.sqlite3")
    return list(store.iter_events("ODD", summary.version_id or ""))


def test_self_containing_values_and_lone_surrogates_are_quarantined_naming_the_field(
    tmp_path: Path, home: Path
) -> None:
    def event(object_id: str, **changes: Any) -> mpconnect.Event:
        fields: dict[str, Any] = {
            "name": "Tick",
            "distinct_id": "user-0000001",
            "time": NOW,
            "object_id": object_id,
        }
        return mpconnect.Event(**{**fields, **changes})

    events = [
        event("good-1"),
        event("loop-dict", properties={"loop": self_containing_dict()}),
        event("loop-list", properties={"loop": self_containing_list()}),
        event("name", name="Tick \ud800"),
        event("distinct", distinct_id="user-\udfff-0001"),
        event("key", properties={"k\ud800": 1}),
        event("value", properties={"nested": {"deeper": ["ok", "bad \ud800"]}}),
        event("raising", properties={"odd": RaisingRepr()}),
        event("raising-id", distinct_id=RaisingRepr()),
        event("object-\ud800"),  # the object id only feeds $insert_id: imported
        event("good-2"),
    ]
    profiles = [
        mpconnect.Profile("user-0000001", set={"plan": "\ud800"}),
        mpconnect.Profile("user-0000002", set={"loop": self_containing_dict()}),
    ]

    summary, lines = run_odd(tmp_path, home, events, profiles)

    assert summary.status == "succeeded"
    assert (summary.read, summary.imported, summary.quarantined) == (13, 3, 10)
    assert len(lines) == 10
    by_field = {line["field"]: line for line in lines}
    assert by_field["properties.loop.self.self.self"]["reason"] == (
        "field 'properties.loop.self.self.self': objects nested more than 3 deep cannot be "
        "held by Mixpanel; flatten it"
    )
    assert by_field["properties.loop[1][1][1]"]["reason"] == (
        "field 'properties.loop[1][1][1]': lists and objects nested more than 3 deep cannot "
        "be held by Mixpanel; flatten it"
    )
    assert {
        "event",
        "properties.distinct_id",
        "properties.k\\ud800",
        "properties.nested.deeper[1]",
        "$set.plan",
    } <= set(by_field)
    assert "surrogates not allowed" in by_field["event"]["reason"]
    assert by_field["event"]["what"].startswith("event 'Tick \\ud800'")
    raising = by_field["properties.odd"]
    assert raising["what"] == "event 'Tick' object raising (distinct_id 'user-0000001')"
    assert raising["reason"] == (
        "field 'properties.odd': RaisingRepr values cannot be sent "
        "to Mixpanel; convert it to a string or number"
    )
    assert raising["record"]["properties"]["odd"].startswith("<RaisingRepr ")
    [raising_id] = [line for line in lines if line["what"].startswith("Event (")]
    assert raising_id["what"] == "Event (not describable: RuntimeError)"
    assert raising_id["reason"] == "cannot be converted: RuntimeError: no repr for you"
    ids = sorted(e["properties"]["$insert_id"] for e in stored_events(home, summary))
    assert ids == sorted(
        mpconnect.make_insert_id(o, "Tick") for o in ("good-1", "object-\ud800", "good-2")
    )


def test_an_event_of_1_mb_or_more_is_quarantined_and_the_rest_imported(
    tmp_path: Path, home: Path
) -> None:
    big = "x" * 250
    events = [
        mpconnect.Event(
            "Big",
            "user-0000001",
            NOW,
            object_id=f"o{i}",
            properties={f"p{j}": big for j in range(200 if i == 2 else 2)},
        )
        for i in range(4)
    ]
    events[3].properties = {
        "blob": ["y" * 250] * 254,
        **{f"q{j}": "z" * 250 for j in range(4000 // 250)},
    }
    huge = {f"p{j}": {f"k{k}": "w" * 250 for k in range(200)} for j in range(21)}
    events.append(mpconnect.Event("Huge", "user-0000001", NOW, object_id="huge", properties=huge))

    summary, lines = run_odd(tmp_path, home, events)

    assert (summary.read, summary.imported, summary.quarantined) == (5, 4, 1)
    [line] = lines
    assert line["what"].startswith("event 'Huge'")
    assert (
        "bytes of JSON: Mixpanel refuses a record of 1 MB (1,048,576 bytes) or more"
        in (line["reason"])
    )
    assert line["record"]["properties"]["$insert_id"] == mpconnect.make_insert_id("huge", "Huge")


def test_times_before_1971_are_quarantined(tmp_path: Path, home: Path) -> None:
    events = [
        mpconnect.Event("Tick", "user-0000001", when, object_id=f"o{i}")
        for i, when in enumerate([0, 31_535_999, 31_536_000, datetime(1970, 6, 1, tzinfo=UTC)])
    ]
    summary, lines = run_odd(tmp_path, home, events)
    assert (summary.imported, summary.quarantined) == (1, 3)
    assert {line["reason"] for line in lines} >= {
        "field 'time': 0 is before 1971-01-01, which Mixpanel rejects"
    }


# -- any value a connector may put in a record ---------------------------------------------

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(alphabet=st.characters(), max_size=8),  # lone surrogates included
    st.binary(max_size=4),
    st.decimals(allow_nan=True),
    st.uuids(),
    st.datetimes(
        timezones=st.one_of(st.none(), st.just(UTC), st.just(timezone(timedelta(hours=14))))
    ),
    st.dates(),
    st.builds(self_containing_dict),
    st.builds(self_containing_list),
)
_values = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), children, max_size=4),
    ),
    max_leaves=12,
)
_ids = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["anon", "N/A", "null", "0", "true"]),
    st.integers(),
    st.none(),
)
_times = st.one_of(
    st.integers(min_value=-10, max_value=2 * 10**11),
    st.datetimes(timezones=st.just(UTC)),
    st.floats(),
    st.text(max_size=3),
)
_counter = itertools.count()


@st.composite
def odd_events(draw: st.DrawFn) -> mpconnect.Event:
    """An event with arbitrary fields; its object id is unique so none is a duplicate."""
    return mpconnect.Event(
        name=draw(st.one_of(st.text(max_size=10), st.none(), st.integers())),
        distinct_id=draw(_ids),
        time=draw(_times),
        object_id=f"obj-{next(_counter)}-{draw(st.text(max_size=4))}",
        properties=draw(
            st.one_of(st.dictionaries(st.text(max_size=8), _values, max_size=5), _values)
        ),
    )


@st.composite
def odd_profiles(draw: st.DrawFn) -> mpconnect.Profile:
    """A profile with arbitrary ids and operations."""
    return mpconnect.Profile(
        distinct_id=draw(_ids),
        set=draw(st.dictionaries(st.text(max_size=6), _values, max_size=3)),
        add=draw(st.dictionaries(st.text(max_size=4), _values, max_size=2)),
        unset=draw(st.lists(st.one_of(st.text(max_size=4), st.integers()), max_size=2)),
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=st.lists(odd_events(), max_size=6), people=st.lists(odd_profiles(), max_size=3))
def test_every_record_is_imported_or_quarantined_and_the_counts_add_up(
    tmp_path: Path, events: list[mpconnect.Event], people: list[mpconnect.Profile]
) -> None:
    home = tmp_path / f"home-{next(_counter)}"
    try:
        summary, lines = run_odd(tmp_path, home, events, people)
        assert summary.status == "succeeded"
        assert summary.read == len(events) + len(people)
        assert len(lines) == summary.quarantined
        assert all(line["reason"] for line in lines)
        # a profile becomes one people record per operation; an event is one event
        records = [
            r
            for r in (
                stored_events(home, summary)
                + list(
                    DatasetStore(home / "embedded.sqlite3").iter_people(
                        "ODD", summary.version_id or ""
                    )
                )
            )
        ]
        imported_events = len(stored_events(home, summary))
        assert imported_events + summary.quarantined <= summary.read
        # The store keeps one copy of identical people records (the Datasets semantics):
        # every people record sent was imported, the version holds each distinct one.
        sent_people = _people_records_sent(people, "mpconnect-embedded")
        assert summary.imported == imported_events + len(sent_people)
        assert len(records) - imported_events == len(
            {orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in sent_people}
        )
        quarantined_events = sum(1 for line in lines if line["what"].startswith(("event", "Event")))
        assert imported_events + quarantined_events == len(events)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _people_records_sent(people: list[mpconnect.Profile], token: str) -> list[dict[str, Any]]:
    """The people records of the profiles that convert (the others are quarantined)."""
    sent: list[dict[str, Any]] = []
    for profile in people:
        try:
            records = profile.to_mixpanel(token)
        except Exception:  # quarantined as the engine does
            continue
        for record in records:
            try:
                orjson.dumps(record)
            except TypeError:  # refused by the batcher: quarantined
                continue
            sent.append(record)
    return sent


def test_the_future_limit_is_the_sinks_ingestion_only(tmp_path: Path, home: Path) -> None:
    ahead = int(time.time()) + 2 * 3600
    event = mpconnect.Event("Renewal Due", "user-0000001", ahead, object_id="sub-1")
    with pytest.raises(
        RecordError,
        match=r"^field 'time': \d+ is more than an hour in the "
        r"future, which Mixpanel's /import rejects$",
    ):
        event.to_mixpanel("token", latest_time=ahead - 1)
    assert IngestionSink.future_leeway == 3600
    # A dataset version is a snapshot: the embedded store (as the Datasets API) keeps it.
    summary, lines = run_odd(tmp_path, home, [event])
    assert (summary.imported, summary.quarantined, lines) == (1, 0, [])
