"""Mixpanel-shaped records: what connectors yield and what the engine sends.

Connectors yield :class:`Event` and :class:`Profile` objects without the project token;
the engine validates and converts them with :meth:`Event.to_mixpanel` /
:meth:`Profile.to_mixpanel`, which add the token. Conversion rules for property values:

===========================  ==========================================================
value                        sent as
===========================  ==========================================================
str, int, bool, None         itself
float                        itself; NaN and infinity are rejected
aware ``datetime``           ISO 8601 in UTC, ``"2024-01-31T12:00:00"`` (Mixpanel's date
                             property format); a naive datetime is rejected
``date``                     ``"2024-01-31"``
``Decimal``                  float; NaN and infinity are rejected
``UUID``                     its canonical string
``Enum``                     its value, converted by these rules
list, tuple, set, frozenset  a list, each element converted (at most 254 elements)
dict                         an object with string keys (at most 254 of them)
===========================  ==========================================================

Objects and lists are nested at most 3 deep (a value that contains itself is rejected
there). The checks are those of Mixpanel's ``/import``, so a record it would refuse is
quarantined here with the reason instead: fewer than 255 properties counting
``distinct_id``, ``time``, ``token`` and ``$insert_id`` (so at most 250 of the
connector's own), an event time from 1971-01-01 on (and, where the sink asks for it, at
most an hour ahead), and no placeholder ``distinct_id`` or ``$insert_id`` such as
``"anon"``, ``"null"`` or the all-zero UUID (:data:`PLACEHOLDER_DISTINCT_IDS`). Events of
1 MB of JSON or more are quarantined when spooled.

===========================  ==========================================================
value                        sent as
anything else (bytes, ...)   rejected
===========================  ==========================================================

A rejected record raises :class:`~mpconnect.errors.RecordError` naming the record and the
field; the engine writes it to the run's quarantine file and counts it.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from mpconnect.errors import RecordError

__all__ = ["Event", "Profile", "make_insert_id", "to_epoch_seconds"]

#: Mixpanel takes fewer than 255 properties per event, keys per object, list elements.
MAX_PROPERTIES = 254
MAX_OBJECT_KEYS = 254
MAX_LIST_LENGTH = 254
MAX_NESTING_DEPTH = 3
#: Mixpanel refuses events of 1 MB of JSON or more.
MAX_EVENT_BYTES = 1024 * 1024
#: 1971-01-01T00:00:00Z: Mixpanel refuses events before it.
MIN_EVENT_TIME = 31_536_000
#: /import refuses events more than this many seconds ahead of its clock.
FUTURE_LEEWAY = 3600
#: Reserved property names the engine fills in; a connector sets them through Event fields.
RESERVED_EVENT_PROPERTIES = frozenset({"distinct_id", "time", "token", "$insert_id"})
#: Properties a connector may give an event, the reserved ones added making MAX_PROPERTIES.
MAX_OWN_PROPERTIES = MAX_PROPERTIES - len(RESERVED_EVENT_PROPERTIES)
#: Values Mixpanel refuses as ``distinct_id`` and ``$insert_id`` (its documented list,
#: compared trimmed and in lower case), with the empty id and ``lmy47d`` (an Android build
#: name that devices report as an id), which mpconnect refuses too.
PLACEHOLDER_DISTINCT_IDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        "<nil>",
        "0",
        "-1",
        "true",
        "false",
        "[]",
        "{}",
        "",
        "lmy47d",
    }
)
_blake2b = hashlib.blake2b
_PLAIN_TYPES = (str, int, bool, type(None))
_PLAIN_SET = frozenset(_PLAIN_TYPES)
_STR_TYPE = frozenset({str})
_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
# Epoch seconds past this are almost surely milliseconds (year 5138).
_MAX_EPOCH_SECONDS = 99_999_999_999


def make_insert_id(object_id: object, event_name: str) -> str:
    """Return a deterministic ``$insert_id`` for one event about one source object.

    The result is a 128-bit BLAKE2b digest of the two, written like a UUID: 36 characters
    of hex digits and ``-``, within Mixpanel's limit of 36 letters, digits and dashes, and
    the same on every run, so a re-sent batch deduplicates.

    :param object_id: the source object's id, such as ``"ch_3MmlLrLkdIwHu7ix0snN0B15"``.
    :param event_name: the event's name, such as ``"Charge Succeeded"``.

    >>> make_insert_id("ch_1", "Charge Succeeded") == make_insert_id("ch_1", "Charge Succeeded")
    True
    """
    text = f"{object_id}\x1f{event_name}"
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate: still hashed (the id itself is not sent)
        data = text.encode("utf-8", "surrogatepass")
    h = _blake2b(data, digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_epoch_seconds(value: object, field_name: str = "time") -> int:
    """Convert an aware datetime or epoch seconds to whole epoch seconds.

    :raises RecordError: for naive datetimes, booleans, negative or millisecond values,
        and other types.
    """
    if type(value) is int and 0 <= value <= _MAX_EPOCH_SECONDS:
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise RecordError(
                f"field '{field_name}': naive datetime {value.isoformat()} has no time zone; "
                "give an aware datetime (for example with tzinfo=UTC)",
                field_name,
            )
        seconds = int(value.timestamp())
        if seconds < 0:
            raise RecordError(
                f"field '{field_name}': {value.isoformat()} is before 1970", field_name
            )
        return seconds
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise RecordError(
            f"field '{field_name}': {type(value).__name__} {value!r} is not a time; "
            "give an aware datetime or epoch seconds",
            field_name,
        )
    if not (value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)):
        raise RecordError(f"field '{field_name}': {value!r} is not a finite time", field_name)
    if value < 0:
        raise RecordError(f"field '{field_name}': {value!r} is before 1970", field_name)
    if value > _MAX_EPOCH_SECONDS:
        raise RecordError(
            f"field '{field_name}': {value!r} looks like milliseconds; give epoch seconds",
            field_name,
        )
    return int(value)


def _convert(value: Any, path: str, depth: int) -> Any:
    """Convert one property value to what Mixpanel can hold, or raise RecordError."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise RecordError(f"field '{path}': {value!r} is not a finite number", path)
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise RecordError(
                f"field '{path}': naive datetime {value.isoformat()} has no time zone; "
                "give an aware datetime",
                path,
            )
        try:
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        except OverflowError:
            raise RecordError(
                f"field '{path}': {value.isoformat()} is out of the range of dates", path
            ) from None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        number = float(value) if value.is_finite() else math.nan
        if not math.isfinite(number):
            raise RecordError(
                f"field '{path}': Decimal {value} is not a finite number a float can hold", path
            )
        return number
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return _convert(value.value, path, depth)
    if isinstance(value, bool | int | str):  # subclasses such as IntEnum handled above
        return value
    if isinstance(value, float):
        return _convert(float(value), path, depth)
    if isinstance(value, Mapping):
        if depth >= MAX_NESTING_DEPTH:
            raise RecordError(
                f"field '{path}': objects nested more than {MAX_NESTING_DEPTH} deep "
                "cannot be held by Mixpanel; flatten it",
                path,
            )
        if len(value) > MAX_OBJECT_KEYS:
            raise RecordError(
                f"field '{path}': object of {len(value)} keys is over Mixpanel's "
                f"limit of {MAX_OBJECT_KEYS}",
                path,
            )
        return _convert_mapping(value, path, depth + 1)
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= MAX_NESTING_DEPTH:
            raise RecordError(
                f"field '{path}': lists and objects nested more than {MAX_NESTING_DEPTH} "
                "deep cannot be held by Mixpanel; flatten it",
                path,
            )
        if len(value) > MAX_LIST_LENGTH:
            raise RecordError(
                f"field '{path}': list of {len(value)} elements is over Mixpanel's "
                f"limit of {MAX_LIST_LENGTH}",
                path,
            )
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [
            item if type(item) in _PLAIN_SET else _convert(item, f"{path}[{i}]", depth + 1)
            for i, item in enumerate(items)
        ]
    raise RecordError(
        f"field '{path}': {type(value).__name__} values cannot be sent to Mixpanel; "
        "convert it to a string or number",
        path,
    )


def _convert_mapping(values: Mapping[Any, Any], prefix: str, depth: int) -> dict[str, Any]:
    if type(values) is not dict and not isinstance(values, Mapping):
        raise RecordError(
            f"field '{prefix}': {type(values).__name__} given; it must be a dict of properties",
            prefix,
        )
    if set(map(type, values)) <= _STR_TYPE and set(map(type, values.values())) <= _PLAIN_SET:
        return dict(values)  # the common case, checked at C speed
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise RecordError(
                f"field '{prefix}.{key!r}': property names must be strings", f"{prefix}.{key!r}"
            )
        path = f"{prefix}.{key}" if prefix else key
        out[key] = value if type(value) in _PLAIN_TYPES else _convert(value, path, depth)
    return out


def _distinct_id(value: object, field_name: str = "distinct_id") -> str:
    if (
        type(value) is str
        and len(value) > 9
        and value[0] != "0"
        and not value[0].isspace()
        and not value[-1].isspace()
    ):
        return value  # longer than every placeholder but the all-zero UUID
    if isinstance(value, bool) or not isinstance(value, str | int | uuid.UUID):
        raise RecordError(
            f"field '{field_name}': {type(value).__name__} {value!r} is not an id; give a string",
            field_name,
        )
    text = str(value)
    if text.strip().lower() in PLACEHOLDER_DISTINCT_IDS:
        raise RecordError(
            f"field '{field_name}': {text!r} is a placeholder id Mixpanel rejects; "
            "give the user's real id",
            field_name,
        )
    return text


def _event_distinct_id(value: object, unattributed: bool) -> str:
    """An event's distinct_id: ``""`` exactly when the event says it is tied to no user."""
    if not unattributed:
        return _distinct_id(value)
    if value != "":
        raise RecordError(
            f"field 'distinct_id': {value!r} given for an unattributed event; "
            "an event tied to no user has distinct_id ''",
            "distinct_id",
        )
    return ""


def _event_time(value: object, latest: int) -> int:
    """Epoch seconds of an event time Mixpanel takes: from 1971-01-01 to ``latest``."""
    seconds = to_epoch_seconds(value)
    if seconds < MIN_EVENT_TIME:
        raise RecordError(
            f"field 'time': {value!r} is before 1971-01-01, which Mixpanel rejects", "time"
        )
    if seconds > latest:
        raise RecordError(
            f"field 'time': {value!r} is more than an hour in the future, which Mixpanel's "
            "/import rejects",
            "time",
        )
    return seconds


@dataclass(slots=True)
class Event:
    """One Mixpanel event, as a connector yields it.

    :param name: the event name, such as ``"Charge Succeeded"``.
    :param distinct_id: whose event it is.
    :param time: when it happened: an aware datetime or epoch seconds.
    :param object_id: the source object's id; with ``name`` it makes the ``$insert_id``.
    :param properties: further properties; values are converted as the module says.
    :param insert_id: an explicit ``$insert_id``; by default made from ``object_id``.
    :param unattributed: True for an event tied to no user (revenue from a guest with no
        id, say): ``distinct_id`` must then be ``""``, which Mixpanel's ``/import``
        documents for such events. An empty ``distinct_id`` without this flag is refused
        as a placeholder, so a connector cannot send one by mistake.
    :param stream: the source stream the object belongs to (``"charges"``, say); with
        ``object_id`` it keys the object in the source-object cache of incremental runs.
        Default: ``"events"``.
    """

    name: str
    distinct_id: str
    time: datetime | int | float
    object_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    insert_id: str | None = None
    unattributed: bool = False
    stream: str | None = None

    def describe(self) -> str:
        """Name this record for error messages and the quarantine file."""
        ref = f" object {self.object_id}" if self.object_id else ""
        return f"event {self.name!r}{ref} (distinct_id {self.distinct_id!r})"

    def to_mixpanel(self, token: str, latest_time: int | None = None) -> dict[str, Any]:
        """Validate and convert to Mixpanel's event structure, with the project token.

        :param latest_time: the latest event time (epoch seconds) the sink takes, if it
            limits it (``/import``: an hour from now).
        :raises RecordError: naming the field when a value cannot be sent.
        """
        name = self.name
        if not isinstance(name, str) or not name or name.isspace():
            raise RecordError("field 'event': an event needs a non-empty name", "event")
        insert_id = self.insert_id
        if insert_id is None:
            if self.object_id is None:
                raise RecordError(
                    "field '$insert_id': give object_id (or insert_id) so the event "
                    "deduplicates when re-sent",
                    "$insert_id",
                )
            insert_id = make_insert_id(self.object_id, name)
        elif not isinstance(insert_id, str) or not _INSERT_ID.fullmatch(insert_id):
            raise RecordError(
                f"field '$insert_id': {insert_id!r} must be 1 to 36 ASCII letters, digits or '-'",
                "$insert_id",
            )
        elif insert_id.lower() in PLACEHOLDER_DISTINCT_IDS:
            raise RecordError(
                f"field '$insert_id': {insert_id!r} is a placeholder id Mixpanel rejects; "
                "give the event's own id",
                "$insert_id",
            )
        properties = self.properties
        if (
            type(properties) is dict
            and len(properties) <= MAX_OWN_PROPERTIES
            and properties.keys().isdisjoint(RESERVED_EVENT_PROPERTIES)
            and set(map(type, properties)) <= _STR_TYPE
            and set(map(type, properties.values())) <= _PLAIN_SET
        ):
            converted = properties.copy()  # the common case, checked at C speed
        else:
            converted = self._checked_properties(properties)
        distinct_id = self.distinct_id
        converted["distinct_id"] = (
            distinct_id
            if (
                type(distinct_id) is str
                and len(distinct_id) > 9
                and distinct_id[0] != "0"
                and not self.unattributed
                and not distinct_id[0].isspace()
                and not distinct_id[-1].isspace()
            )
            else _event_distinct_id(distinct_id, self.unattributed)
        )
        when = self.time
        latest = _MAX_EPOCH_SECONDS if latest_time is None else latest_time
        converted["time"] = (
            when
            if (type(when) is int and MIN_EVENT_TIME <= when <= latest)
            else _event_time(when, latest)
        )
        converted["token"] = token
        converted["$insert_id"] = insert_id
        return {"event": name, "properties": converted}

    @staticmethod
    def _checked_properties(properties: Any) -> dict[str, Any]:
        if type(properties) is not dict and not isinstance(properties, Mapping):
            raise RecordError(
                f"field 'properties': {type(properties).__name__} given; it must be a dict",
                "properties",
            )
        if len(properties) > MAX_OWN_PROPERTIES:
            raise RecordError(
                f"field 'properties': {len(properties)} properties is over Mixpanel's "
                f"limit of {MAX_OWN_PROPERTIES} (fewer than 255 with distinct_id, time, "
                "token and $insert_id)",
                "properties",
            )
        reserved = RESERVED_EVENT_PROPERTIES.intersection(properties)
        if reserved:
            name = sorted(reserved)[0]
            raise RecordError(
                f"field 'properties.{name}': reserved; set it through the Event's own fields",
                f"properties.{name}",
            )
        return _convert_mapping(properties, "properties", 0)


_PROFILE_OPERATIONS = (
    ("set_once", "$set_once"),
    ("set", "$set"),
    ("add", "$add"),
    ("union", "$union"),
    ("append", "$append"),
    ("remove", "$remove"),
    ("unset", "$unset"),
)


@dataclass(slots=True)
class Profile:
    """One Mixpanel people profile and the operations to apply to it.

    Each non-empty operation becomes one people record, in the order ``$set_once``,
    ``$set``, ``$add``, ``$union``, ``$append``, ``$remove``, ``$unset``.

    :param distinct_id: whose profile it is.
    :param set: properties to set (``$set``), such as ``{"$email": ..., "plan": ...}``.
    :param set_once: properties set only if absent (``$set_once``).
    :param add: numeric increments (``$add``).
    :param union: list properties to merge without duplicates (``$union``).
    :param append: values to append to list properties (``$append``).
    :param remove: values to remove from list properties (``$remove``).
    :param unset: property names to remove (``$unset``).
    :param object_id: the source object's id, for error messages and, with ``stream``, the
        key of the object in the source-object cache of incremental runs.
    :param stream: the source stream the object belongs to (``"customers"``, say).
        Default: ``"people"``.
    """

    distinct_id: str
    set: dict[str, Any] = field(default_factory=dict)
    set_once: dict[str, Any] = field(default_factory=dict)
    add: dict[str, int | float] = field(default_factory=dict)
    union: dict[str, list[Any]] = field(default_factory=dict)
    append: dict[str, Any] = field(default_factory=dict)
    remove: dict[str, Any] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    object_id: str | None = None
    stream: str | None = None

    def describe(self) -> str:
        """Name this record for error messages and the quarantine file."""
        ref = f" object {self.object_id}" if self.object_id else ""
        return f"profile{ref} (distinct_id {self.distinct_id!r})"

    def to_mixpanel(self, token: str, latest_time: int | None = None) -> list[dict[str, Any]]:
        """Validate and convert to Mixpanel people records, one per operation.

        :param latest_time: accepted for symmetry with :meth:`Event.to_mixpanel`; profiles
            carry no event time.

        :raises RecordError: naming the field when a value cannot be sent, or when the
            profile has no operation at all.
        """
        distinct_id = _distinct_id(self.distinct_id, "$distinct_id")
        records: list[dict[str, Any]] = []
        for attr, key in _PROFILE_OPERATIONS:
            values = getattr(self, attr)
            if not values:
                continue
            if key == "$unset":
                if not isinstance(values, list | tuple | set | frozenset) or not all(
                    isinstance(name, str) for name in values
                ):
                    raise RecordError(
                        "field '$unset': give a list of property names (strings)", key
                    )
                body: Any = list(values)
            else:
                if isinstance(values, Mapping) and len(values) > MAX_OBJECT_KEYS:
                    raise RecordError(
                        f"field '{key}': {len(values)} properties is over Mixpanel's limit "
                        f"of {MAX_OBJECT_KEYS}",
                        key,
                    )
                body = _convert_mapping(values, key, 0)
                if key == "$union":
                    for name, items in body.items():
                        if not isinstance(items, list):
                            raise RecordError(
                                f"field '$union.{name}': $union takes a list", f"$union.{name}"
                            )
                if key == "$add":
                    for name, number in body.items():
                        if isinstance(number, bool) or not isinstance(number, int | float):
                            raise RecordError(
                                f"field '$add.{name}': $add takes a number", f"$add.{name}"
                            )
            records.append({"$token": token, "$distinct_id": distinct_id, key: body})
        if not records:
            raise RecordError(
                "field '$set': a profile needs at least one operation ($set, $set_once, ...)",
                "$set",
            )
        return records
