"""The values of Mixpanel records: limits, ``$insert_id``, event times and the
conversion of property values (the rules are in :mod:`mpconnect.records`' docstring).

Every function raises :class:`~mpconnect.errors.RecordError` naming the field for a value
Mixpanel cannot take. The common case (plain strings and numbers) is checked at C speed.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from mpconnect.errors import RecordError

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
_BLAKE2B_128 = hashlib.blake2b(digest_size=16)
#: The five groups of a UUID's 32 hex digits (8-4-4-4-12), cut in one call.
_UUID_GROUPS = operator.itemgetter(
    slice(0, 8), slice(8, 12), slice(12, 16), slice(16, 20), slice(20, None)
)
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
    digest = _BLAKE2B_128.copy()  # cheaper than a new hash object with its parameters
    # "surrogatepass": a lone surrogate is still hashed (the id itself is not sent); for
    # every other string the bytes are UTF-8's.
    digest.update(f"{object_id}\x1f{event_name}".encode("utf-8", "surrogatepass"))
    return "-".join(_UUID_GROUPS(digest.hexdigest()))


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
    if kind is datetime and value.tzinfo is UTC and value.year >= 1000:
        return value.isoformat(timespec="seconds")[:19]  # as below, without a conversion
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
    if _STR_TYPE.issuperset(map(type, values)):
        out = dict(values)
        if _PLAIN_SET.issuperset(map(type, out.values())):
            return out  # the common case, checked at C speed
        for key, value in values.items():  # only the values that need it are converted
            if type(value) not in _PLAIN_SET:
                out[key] = _convert(value, f"{prefix}.{key}" if prefix else key, depth)
        return out
    out = {}
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
