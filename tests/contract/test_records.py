"""Records: Mixpanel's structures, every conversion rule, every rejection and its message,
and rejected records reaching the run's quarantine file through a real run."""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mpconnect
from mpconnect import Event, Profile, RecordError, make_insert_id, to_epoch_seconds
from mpconnect.store.datasets import DatasetStore

TOKEN = "tok-123"
PLUS_TWO = timezone(timedelta(hours=2))


def event(**overrides: Any) -> Event:
    """An event that is valid unless ``overrides`` break it."""
    fields: dict[str, Any] = {
        "name": "Charge Succeeded",
        "distinct_id": "cus_NffrFeUfNV2Hib",
        "time": 1_700_000_000,
        "object_id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
    }
    fields.update(overrides)
    return Event(**fields)


def converted_property(value: Any) -> Any:
    """What one property value is sent as."""
    return event(properties={"value": value}).to_mixpanel(TOKEN)["properties"]["value"]


def rejection(record: Event | Profile) -> RecordError:
    """The RecordError converting ``record`` raises."""
    with pytest.raises(RecordError) as info:
        record.to_mixpanel(TOKEN)
    return info.value


# -- the structures ----------------------------------------------------------------------


def test_event_has_mixpanels_standard_structure() -> None:
    sent = event(properties={"amount": 20.5, "currency": "usd"}).to_mixpanel(TOKEN)

    assert sent == {
        "event": "Charge Succeeded",
        "properties": {
            "distinct_id": "cus_NffrFeUfNV2Hib",
            "time": 1_700_000_000,
            "token": TOKEN,
            "$insert_id": make_insert_id("ch_3MmlLrLkdIwHu7ix0snN0B15", "Charge Succeeded"),
            "amount": 20.5,
            "currency": "usd",
        },
    }


def test_event_with_an_explicit_insert_id_sends_it() -> None:
    sent = event(object_id=None, insert_id="order-77-paid").to_mixpanel(TOKEN)

    assert sent["properties"]["$insert_id"] == "order-77-paid"


def test_profile_set_has_mixpanels_people_structure() -> None:
    sent = Profile(distinct_id="cus_1", set={"$email": "a@example.com", "plan": "pro"})

    assert sent.to_mixpanel(TOKEN) == [
        {
            "$token": TOKEN,
            "$distinct_id": "cus_1",
            "$set": {"$email": "a@example.com", "plan": "pro"},
        },
    ]


def test_profile_makes_one_record_per_operation_in_mixpanels_order() -> None:
    profile = Profile(
        distinct_id="cus_1",
        unset=["old_plan"],
        remove={"tags": "trial"},
        append={"logins": "2024-01-31"},
        union={"products": ["prod_1", "prod_2"]},
        add={"charges": 2},
        set={"plan": "pro"},
        set_once={"first_seen": "2024-01-01"},
    )

    records = profile.to_mixpanel(TOKEN)

    assert [next(k for k in r if k not in ("$token", "$distinct_id")) for r in records] == [
        "$set_once",
        "$set",
        "$add",
        "$union",
        "$append",
        "$remove",
        "$unset",
    ]
    assert all(r["$token"] == TOKEN and r["$distinct_id"] == "cus_1" for r in records)
    assert records[-1]["$unset"] == ["old_plan"]
    assert records[3]["$union"] == {"products": ["prod_1", "prod_2"]}
    assert records[2]["$add"] == {"charges": 2}


def test_profile_converts_values_like_events() -> None:
    created = datetime(2024, 1, 31, 14, 0, tzinfo=PLUS_TWO)
    profile = Profile(distinct_id=42, set={"$created": created, "ltv": Decimal("12.50")})

    [record] = profile.to_mixpanel(TOKEN)

    assert record["$distinct_id"] == "42"
    assert record["$set"] == {"$created": "2024-01-31T12:00:00", "ltv": 12.5}


# -- time -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (1_700_000_000, 1_700_000_000),
        (1_700_000_000.9, 1_700_000_000),
        (Decimal("1700000000"), 1_700_000_000),
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), 1_700_000_000),
        (datetime(2023, 11, 15, 0, 13, 20, tzinfo=PLUS_TWO), 1_700_000_000),
        (31_536_000, 31_536_000),  # 1971-01-01, the earliest time Mixpanel takes
    ],
)
def test_time_is_sent_as_epoch_seconds(given: Any, sent: int) -> None:
    properties = event(time=given).to_mixpanel(TOKEN)["properties"]

    assert properties["time"] == sent
    assert type(properties["time"]) is int


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (datetime(2024, 1, 1), "field 'time': naive datetime 2024-01-01T00:00:00 has no time zone"),
        (1_700_000_000_000, "field 'time': 1700000000000 looks like milliseconds"),
        (-1, "field 'time': -1 is before 1970"),
        (True, "field 'time': bool True is not a time"),
        ("2024-01-01", "field 'time': str '2024-01-01' is not a time"),
        (None, "field 'time': NoneType None is not a time"),
        (float("nan"), "field 'time': nan is not a finite time"),
        (float("inf"), "field 'time': inf is not a finite time"),
        (Decimal("NaN"), "field 'time': Decimal('NaN') is not a finite time"),
        (Decimal("sNaN"), "field 'time': Decimal('sNaN') is not a finite time"),
    ],
)
def test_bad_times_are_rejected_naming_the_field(given: Any, message: str) -> None:
    error = rejection(event(time=given))

    assert str(error).startswith(message)
    assert error.field == "time"


def test_to_epoch_seconds_names_the_field_it_is_given() -> None:
    with pytest.raises(RecordError, match=r"^field 'created': naive datetime"):
        to_epoch_seconds(datetime(2024, 1, 1), "created")
    assert to_epoch_seconds(datetime(1970, 1, 2, tzinfo=UTC)) == 86_400


# -- property values ----------------------------------------------------------------------


class Plan(enum.Enum):
    PRO = "pro"


class Tier(enum.IntEnum):
    GOLD = 3


class Colour(enum.StrEnum):
    RED = "red"


VALUE_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("text", "text"),
        (7, 7),
        (True, True),
        (None, None),
        (2.5, 2.5),
        (datetime(2024, 1, 31, 14, 0, 5, 123, tzinfo=PLUS_TWO), "2024-01-31T12:00:05"),
        (date(2024, 1, 31), "2024-01-31"),
        (Decimal("19.99"), 19.99),
        (VALUE_ID, "12345678-1234-5678-1234-567812345678"),
        (Plan.PRO, "pro"),
        (Tier.GOLD, 3),
        (Colour.RED, "red"),
        (("a", 1), ["a", 1]),
        ({"b", "a"}, ["a", "b"]),
        (frozenset({2, 1}), [1, 2]),
        ([Decimal("1.5"), date(2024, 2, 1)], [1.5, "2024-02-01"]),
        ({"amount": Decimal("3"), "at": date(2024, 1, 1)}, {"amount": 3.0, "at": "2024-01-01"}),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 1}}}),  # 3 deep: Mixpanel's limit
        ([{"sku": "A", "price": Decimal("30")}], [{"sku": "A", "price": 30.0}]),
        (["x"] * 254, ["x"] * 254),  # Mixpanel: fewer than 255 elements
    ],
    ids=repr,
)
def test_property_values_are_converted(given: Any, sent: Any) -> None:
    converted = converted_property(given)

    assert converted == sent
    assert type(converted) is type(sent)


def test_a_converted_event_is_plain_json() -> None:
    properties = {
        "at": datetime(2024, 1, 1, tzinfo=UTC),
        "price": Decimal("1.10"),
        "id": VALUE_ID,
        "tags": {"b", "a"},
        "nested": {"plan": Plan.PRO, "since": date(2023, 5, 1)},
    }

    sent = event(properties=properties).to_mixpanel(TOKEN)

    assert json.loads(json.dumps(sent)) == sent


@pytest.mark.parametrize(
    ("properties", "field", "message"),
    [
        ({"at": datetime(2024, 1, 1)}, "properties.at", "naive datetime 2024-01-01T00:00:00"),
        ({"ratio": float("nan")}, "properties.ratio", "nan is not a finite number"),
        ({"ratio": float("-inf")}, "properties.ratio", "-inf is not a finite number"),
        ({"amount": Decimal("NaN")}, "properties.amount", "Decimal NaN is not a finite number"),
        ({"amount": Decimal("1e400")}, "properties.amount", "is not a finite number"),
        ({"raw": b"\x00\x01"}, "properties.raw", "bytes values cannot be sent to Mixpanel"),
        ({"who": object()}, "properties.who", "object values cannot be sent to Mixpanel"),
        ({"items": [1, b"x"]}, "properties.items[1]", "bytes values cannot be sent"),
        ({"meta": {"when": datetime(2024, 1, 1)}}, "properties.meta.when", "naive datetime"),
        ({"meta": {1: "x"}}, "properties.meta.1", "property names must be strings"),
        (
            {"a": {"b": {"c": {"d": {"e": 1}}}}},
            "properties.a.b.c.d",
            "objects nested more than 3 deep cannot be held by Mixpanel",
        ),
        (
            {"many": list(range(255))},
            "properties.many",
            "list of 255 elements is over Mixpanel's limit of 254",
        ),
        (
            {f"p{i}": i for i in range(251)},
            "properties",
            "251 properties is over Mixpanel's limit of 250",
        ),
        ({"time": 1}, "properties.time", "reserved; set it through the Event's own fields"),
        ({"token": "x"}, "properties.token", "reserved"),
        ({"distinct_id": "x"}, "properties.distinct_id", "reserved"),
        ({"$insert_id": "x"}, "properties.$insert_id", "reserved"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_property_values_are_rejected_naming_the_field(
    properties: dict[Any, Any], field: str, message: str
) -> None:
    error = rejection(event(properties=properties))

    assert error.field == field
    assert str(error).startswith(f"field '{field}': ")
    assert message in str(error)


def test_non_string_property_name_is_rejected() -> None:
    error = rejection(event(properties={7: "x"}))

    assert str(error) == "field 'properties.7': property names must be strings"


def test_properties_must_be_a_dict() -> None:
    error = rejection(event(properties=[("a", 1)]))

    assert str(error) == "field 'properties': list given; it must be a dict"


# -- names, ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", None])
def test_event_needs_a_name(name: Any) -> None:
    error = rejection(event(name=name))

    assert str(error) == "field 'event': an event needs a non-empty name"


def test_event_needs_an_object_id_or_insert_id() -> None:
    error = rejection(event(object_id=None))

    assert error.field == "$insert_id"
    assert "give object_id (or insert_id)" in str(error)


@pytest.mark.parametrize("insert_id", ["a" * 37, "has_underscore", "ümlaut", "", "a b", 12345])
def test_bad_explicit_insert_ids_are_rejected(insert_id: Any) -> None:
    error = rejection(event(insert_id=insert_id))

    assert error.field == "$insert_id"
    assert "must be 1 to 36 ASCII letters, digits or '-'" in str(error)


@pytest.mark.parametrize(
    "distinct_id",
    [
        "",
        "anonymous",
        "  anon ",
        "NULL",
        "undefined",
        "0",
        "-1",
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_placeholder_distinct_ids_are_rejected(distinct_id: str) -> None:
    error = rejection(event(distinct_id=distinct_id))

    assert error.field == "distinct_id"
    assert "is a placeholder id Mixpanel rejects" in str(error)


@pytest.mark.parametrize("distinct_id", [None, 1.5, True, {"id": 1}])
def test_distinct_ids_that_are_not_ids_are_rejected(distinct_id: Any) -> None:
    error = rejection(event(distinct_id=distinct_id))

    assert str(error).startswith("field 'distinct_id': ")
    assert "is not an id; give a string" in str(error)


def test_int_and_uuid_distinct_ids_are_sent_as_strings() -> None:
    assert event(distinct_id=17).to_mixpanel(TOKEN)["properties"]["distinct_id"] == "17"
    sent = event(distinct_id=VALUE_ID).to_mixpanel(TOKEN)["properties"]["distinct_id"]
    assert sent == str(VALUE_ID)


# -- $insert_id helper ----------------------------------------------------------------------


def test_insert_id_is_deterministic_and_within_mixpanels_rules() -> None:
    first = make_insert_id("ch_3MmlLrLkdIwHu7ix0snN0B15", "Charge Succeeded")

    assert first == make_insert_id("ch_3MmlLrLkdIwHu7ix0snN0B15", "Charge Succeeded")
    assert re.fullmatch(r"[A-Za-z0-9-]{1,36}", first)
    assert first != make_insert_id("ch_3MmlLrLkdIwHu7ix0snN0B15", "Charge Refunded")
    assert first != make_insert_id("ch_other", "Charge Succeeded")


def test_insert_id_does_not_confuse_id_and_name_boundaries() -> None:
    assert make_insert_id("a b", "c") != make_insert_id("a", "b c")


@pytest.mark.parametrize("object_id", ["x" * 500, "日本語", 12345, "with\nnewline"])
def test_insert_id_is_valid_for_any_object_id(object_id: object) -> None:
    assert re.fullmatch(r"[A-Za-z0-9-]{1,36}", make_insert_id(object_id, "Événement"))


# -- profile rejections ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "field", "message"),
    [
        (Profile(distinct_id="cus_1"), "$set", "a profile needs at least one operation"),
        (Profile(distinct_id="anonymous", set={"a": 1}), "$distinct_id", "placeholder id"),
        (Profile(distinct_id="cus_1", set={"a": float("nan")}), "$set.a", "not a finite number"),
        (
            Profile(distinct_id="cus_1", set_once={"at": datetime(2024, 1, 1)}),
            "$set_once.at",
            "naive datetime",
        ),
        (Profile(distinct_id="cus_1", union={"tags": "vip"}), "$union.tags", "$union takes a list"),
        (Profile(distinct_id="cus_1", add={"n": "2"}), "$add.n", "$add takes a number"),
        (Profile(distinct_id="cus_1", add={"n": True}), "$add.n", "$add takes a number"),
        (Profile(distinct_id="cus_1", unset=["ok", 3]), "$unset", "list of property names"),
        (Profile(distinct_id="cus_1", unset="plan"), "$unset", "list of property names"),
        (Profile(distinct_id="cus_1", set=["plan"]), "$set", "list given; it must be a dict"),
        (Profile(distinct_id="cus_1", append={"a": b"x"}), "$append.a", "bytes values"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_profiles_are_rejected_naming_the_field(
    profile: Profile, field: str, message: str
) -> None:
    error = rejection(profile)

    assert error.field == field
    assert str(error).startswith(f"field '{field}': ")
    assert message in str(error)


def test_records_describe_themselves_for_errors() -> None:
    assert event().describe() == (
        "event 'Charge Succeeded' object ch_3MmlLrLkdIwHu7ix0snN0B15 "
        "(distinct_id 'cus_NffrFeUfNV2Hib')"
    )
    assert Profile(distinct_id="cus_1", object_id="cus_1").describe() == (
        "profile object cus_1 (distinct_id 'cus_1')"
    )


# -- quarantine through a real run ---------------------------------------------------------


class MixedConnector(mpconnect.Connector):
    """Yields good records, records Mixpanel cannot hold, and a quarantined source object."""

    name = "mixed"

    def events(self, ctx: mpconnect.RunContext) -> Iterator[Event]:
        """Two good events and two bad ones; one source object quarantined directly."""
        yield event(object_id="ch_good_1")
        yield event(object_id="ch_bad_time", time=datetime(2024, 1, 1))
        ctx.quarantine("charge ch_orphan", "no customer and no email", {"id": "ch_orphan"})
        yield event(object_id="ch_bad_value", properties={"raw": b"\x00"})
        yield event(object_id="ch_good_2")

    def people(self, ctx: mpconnect.RunContext) -> Iterator[Profile]:
        """One good profile and one with a placeholder id."""
        yield Profile(distinct_id="cus_NffrFeUfNV2Hib", set={"plan": "pro"})
        yield Profile(distinct_id="undefined", object_id="cus_ghost", set={"plan": "free"})


class MixedPlugin:
    """Registers MixedConnector."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Any) -> None:
        """Register the connector."""
        register(MixedConnector)


def test_rejected_records_go_to_the_quarantine_file_with_their_reason(
    cli: Any, write_config: Any, mpconnect_home: Path
) -> None:
    config = write_config(
        """
        [sources.mixed]
        connector = "mixed"
        dataset_id = "MIXED"
        max_quarantined = "unlimited"
        """
    )

    result = cli("--config", config, "run", "mixed", plugins=[MixedPlugin()])

    assert result.exit_code == 0, result.output
    # a source object the connector quarantines was read too: read = imported + quarantined
    assert "records read 7, imported 3, quarantined 4" in result.stdout
    [quarantine_file] = (mpconnect_home / "quarantine" / "mixed").glob("*.jsonl")
    assert f"quarantine file: {quarantine_file}" in result.stdout
    lines = [json.loads(line) for line in quarantine_file.read_text().splitlines()]
    by_what = {line["what"]: line for line in lines}
    assert set(by_what) == {
        "event 'Charge Succeeded' object ch_bad_time (distinct_id 'cus_NffrFeUfNV2Hib')",
        "charge ch_orphan",
        "event 'Charge Succeeded' object ch_bad_value (distinct_id 'cus_NffrFeUfNV2Hib')",
        "profile object cus_ghost (distinct_id 'undefined')",
    }
    bad_time = by_what[
        "event 'Charge Succeeded' object ch_bad_time (distinct_id 'cus_NffrFeUfNV2Hib')"
    ]
    assert bad_time["field"] == "time"
    assert bad_time["reason"].startswith("field 'time': naive datetime 2024-01-01T00:00:00")
    assert bad_time["record"]["object_id"] == "ch_bad_time"
    assert by_what["charge ch_orphan"]["reason"] == "no customer and no email"
    assert by_what["charge ch_orphan"]["record"] == {"id": "ch_orphan"}
    ghost = by_what["profile object cus_ghost (distinct_id 'undefined')"]
    assert ghost["field"] == "$distinct_id"

    store = DatasetStore(mpconnect_home / "embedded.sqlite3")
    version = store.live_version("MIXED")
    assert version is not None
    contents = store.contents("MIXED", version.version_id)
    store.close()
    assert (contents.events_total, contents.people_total) == (2, 1)


def test_an_aware_datetime_before_1970_is_rejected() -> None:
    from datetime import UTC, datetime

    import mpconnect

    event = mpconnect.Event("Old", "user-1", datetime(1969, 12, 31, tzinfo=UTC), object_id="o")
    with pytest.raises(
        mpconnect.RecordError,
        match="field 'time': 1969-12-31T00:00:00"
        r"\+00:00 is before 1970",
    ):
        event.to_mixpanel("tok")


@pytest.mark.parametrize(
    ("object_id", "name", "insert_id"),
    [
        ("ch_1", "Charge Succeeded", "145cd427-9a50-5259-699f-0025f310f17e"),
        ("review-0", "Airline Review", "274a96f4-0a91-1b8b-6ded-b3e520c6b1a1"),
        (12345, "Ünïcode 日本", "a16c82ea-6b68-c2de-5b6d-8d73785b5009"),
        ("x\ud800y", "Bad \udfff", "9d9f5598-ddf7-ad78-4da8-d24853c62966"),
    ],
)
def test_insert_ids_stay_those_of_earlier_versions(
    object_id: object, name: str, insert_id: str
) -> None:
    # A resumed run, and Mixpanel's deduplication, need the ids of earlier releases.
    assert make_insert_id(object_id, name) == insert_id


@given(when=st.datetimes(timezones=st.just(UTC)), offset=st.integers(-23, 23))
def test_an_aware_datetime_property_is_written_in_utc_whatever_its_zone(
    when: datetime, offset: int
) -> None:
    """UTC datetimes take a shorter path than other zones; both write the same text."""
    expected = when.strftime("%Y-%m-%dT%H:%M:%S")
    zoned = when.astimezone(timezone(timedelta(hours=offset))) if 1 < when.year < 9999 else when
    event = Event("Tick", "user-0000001", 1_700_000_000, "t", {"at": when, "zoned": zoned})
    properties = event.to_mixpanel("token")["properties"]
    assert properties["at"] == properties["zoned"] == expected
