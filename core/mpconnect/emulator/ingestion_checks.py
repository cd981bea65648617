"""Mixpanel's limits and strict-mode checks of one event or one profile update.

The checks answer ``(field, message)`` for the first problem found, as Mixpanel's
``failed_records`` name it, or None when the record is valid.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_RECORDS = 2000
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PROPERTIES = 255
#: 1971-01-01T00:00:00Z: Mixpanel rejects events before it.
MIN_EVENT_TIME = 31_536_000
FUTURE_LEEWAY = 3600
#: Above this an event time is read as milliseconds.
MILLISECONDS_FROM = 100_000_000_000
#: Placeholder ids Mixpanel refuses as ``distinct_id`` and ``$insert_id`` (its documented list).
DENIED_IDS = frozenset(
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
    }
)
PROFILE_OPERATIONS = (
    "$set",
    "$set_once",
    "$add",
    "$union",
    "$append",
    "$remove",
    "$unset",
    "$delete",
)
PROFILE_OPTIONS = frozenset(
    {"$ip", "$time", "$ignore_time", "$ignore_alias", "$latitude", "$longitude"}
)
_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")


def record_failure(index: int, record: Any, field_name: str, message: str) -> dict[str, Any]:
    """An entry of ``failed_records``: the event's index, ``$insert_id``, field and problem."""
    insert_id = None
    if isinstance(record, dict):
        props = record.get("properties")
        if isinstance(props, dict):
            insert_id = props.get("$insert_id")
    return {"index": index, "$insert_id": insert_id, "field": field_name, "message": message}


def _id_problem(value: Any, name: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return f"'{name}' is invalid: must be a string"
    if str(value).strip().lower() in DENIED_IDS:
        return f"'{name}' is invalid: {value!r} is a placeholder value Mixpanel does not allow"
    return None


def check_event(
    record: Any, token: str | None, now: float, *, check_size: bool = True
) -> tuple[str, str] | None:
    """Validate one event as Mixpanel's strict mode does.

    :param token: the project token ``properties.token`` must equal, if any.
    :param now: the server's clock, epoch seconds.
    :param check_size: check the 1 MB limit (needless when the whole body is smaller).
    :returns: ``(field, message)`` for the first problem, or None when the event is valid.
    """
    if not isinstance(record, dict):
        return "", "each event must be a JSON object"
    name = record.get("event")
    if not isinstance(name, str) or not name.strip():
        return "event", "'event' is required and must be a non-empty string"
    props = record.get("properties")
    if not isinstance(props, dict):
        return "properties", "'properties' is required and must be an object"
    if len(props) > MAX_PROPERTIES:
        return "properties", f"'properties' has {len(props)} properties; the limit is 255"
    when = props.get("time")
    if when is None:
        return "properties.time", "'properties.time' is required"
    if isinstance(when, bool) or not isinstance(when, int | float):
        return (
            "properties.time",
            "'properties.time' is invalid: must be specified as seconds since epoch",
        )
    seconds = when / 1000 if when >= MILLISECONDS_FROM else when
    if seconds < MIN_EVENT_TIME:
        return "properties.time", "'properties.time' is invalid: must be after 1971-01-01"
    if seconds > now + FUTURE_LEEWAY:
        return (
            "properties.time",
            "'properties.time' is invalid: must not be more than 1 hour in the future",
        )
    if "distinct_id" not in props:
        return "properties.distinct_id", "'properties.distinct_id' is required"
    problem = _id_problem(props["distinct_id"], "properties.distinct_id")
    if problem:
        return "properties.distinct_id", problem
    insert_id = props.get("$insert_id")
    if insert_id is None:
        return "properties.$insert_id", "'properties.$insert_id' is required"
    if (
        not isinstance(insert_id, str)
        or not _INSERT_ID.fullmatch(insert_id)
        or insert_id.lower() in DENIED_IDS
    ):
        return (
            "properties.$insert_id",
            "'properties.$insert_id' is invalid: must be at most "
            "36 bytes of letters, digits and '-'",
        )
    if token is not None and "token" in props and props["token"] != token:
        return "properties.token", "'properties.token' is not this project's token"
    if check_size and len(orjson.dumps(record)) > MAX_RECORD_BYTES:
        return "", "event is larger than 1 MB of JSON"
    return None


def check_profile_update(
    record: Any, token: str | None, *, check_size: bool = True
) -> tuple[str, str] | None:
    """Validate one ``/engage`` profile update.

    :param token: the project token ``$token`` must equal, if any.
    :param check_size: check the 1 MB limit (needless when the whole body is smaller).
    :returns: ``(field, message)`` for the first problem, or None when it is valid.
    """
    if not isinstance(record, dict):
        return "", "each profile update must be a JSON object"
    if "$token" not in record:
        return "$token", "'$token' is required"
    if token is not None and record["$token"] != token:
        return "$token", "'$token' is not this project's token"
    if "$distinct_id" not in record:
        return "$distinct_id", "'$distinct_id' is required"
    problem = _id_problem(record["$distinct_id"], "$distinct_id")
    if problem:
        return "$distinct_id", problem
    operations = [key for key in record if key in PROFILE_OPERATIONS]
    if not operations:
        return "", f"a profile update needs one of {', '.join(PROFILE_OPERATIONS)}"
    for key in record:
        if (
            key not in PROFILE_OPERATIONS
            and key not in PROFILE_OPTIONS
            and key not in ("$token", "$distinct_id")
        ):
            return key, f"'{key}' is not a profile update key"
    for key in operations:
        value = record[key]
        if key == "$delete":
            continue
        if key == "$unset":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return key, "'$unset' must be a list of property names"
            continue
        if not isinstance(value, dict):
            return key, f"'{key}' must be an object"
        if len(value) > MAX_PROPERTIES:
            return key, f"'{key}' has {len(value)} properties; the limit is 255"
        for name, item in value.items():
            if key == "$add" and (isinstance(item, bool) or not isinstance(item, int | float)):
                return f"{key}.{name}", f"'{key}.{name}' must be a number"
            if key == "$union" and not isinstance(item, list):
                return f"{key}.{name}", f"'{key}.{name}' must be a list"
    if check_size and len(orjson.dumps(record)) > MAX_RECORD_BYTES:
        return "", "profile update is larger than 1 MB of JSON"
    return None


def normalise_time(record: dict[str, Any]) -> dict[str, Any]:
    """Store event times as whole seconds, as Mixpanel reports them."""
    props = record["properties"]
    when = props["time"]
    if when >= MILLISECONDS_FROM:
        props["time"] = int(when // 1000)
    return record
