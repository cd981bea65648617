"""Checks of what a Datasets API request carries: dataset ids, version state, records.

Each refuses bad input with :class:`~mpconnect.emulator.responses.Refused` and a message
naming the parameter, field or record at fault.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

import orjson

from mpconnect.emulator.options import MAX_RECORDS
from mpconnect.emulator.responses import Refused

_DATASET_ID = re.compile(r"[A-Za-z0-9]{1,255}")
_READ_WRITE = ("readable", "writable")
_READ_ONLY = ("ready", "ready_at", "readable_at")


def shown(value: str, limit: int = 40) -> str:
    """``value`` cut to ``limit`` characters for an error message."""
    return value if len(value) <= limit else value[:limit] + "..."


def check_dataset_id(dataset_id: str | None, name: str = "dataset_id") -> str:
    """Return ``dataset_id``, or refuse it: missing, or not alphanumeric below 256 chars."""
    if not dataset_id:
        raise Refused(400, f"{name} is required")
    if not _DATASET_ID.fullmatch(dataset_id):
        problem = (
            "is longer than 255 characters" if len(dataset_id) > 255 else "is not alphanumeric"
        )
        raise Refused(
            400,
            f"{name} {shown(dataset_id)!r} {problem}: it must be an "
            "alphanumeric string less than 256 characters",
        )
    return dataset_id


def parse_state(raw: str | None) -> tuple[bool, bool]:
    """Return ``(readable, writable)`` from the ``state`` parameter, or refuse it."""
    if raw is None or raw == "":
        raise Refused(400, 'state is required: a JSON object with both "readable" and "writable"')
    try:
        state = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"state is not valid JSON: {exc}") from None
    if not isinstance(state, dict):
        raise Refused(400, 'state must be a JSON object with "readable" and "writable"')
    for key in state:
        if key in _READ_ONLY:
            raise Refused(
                400, f"state.{key} is read-only; only readable and writable can be changed"
            )
        if key not in _READ_WRITE:
            raise Refused(
                400,
                f"state.{shown(key)} is not a field of the dataset version "
                "state; only readable and writable can be changed",
            )
    missing = [key for key in _READ_WRITE if key not in state]
    if missing:
        raise Refused(
            400,
            f"state.{missing[0]} is missing: updates to state must include "
            'both "readable" and "writable"',
        )
    for key in _READ_WRITE:
        if not isinstance(state[key], bool):
            raise Refused(400, f"state.{key} must be true or false")
    return state["readable"], state["writable"]


def decode_records(data: str, max_records: int = MAX_RECORDS) -> list[Any]:
    """Decode the ``data`` parameter: base64 of a JSON object or array of objects."""
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise Refused(400, f"data is not valid base64: {exc}") from None
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"data is not valid JSON once base64-decoded: {exc}") from None
    if isinstance(decoded, dict):
        return [decoded]
    if not isinstance(decoded, list):
        raise Refused(400, "data must hold a JSON object or an array of objects")
    if len(decoded) > max_records:
        raise Refused(
            400, f"data holds {len(decoded)} records; the limit is {max_records} per request"
        )
    return decoded


def _bad(index: int, problem: str) -> Refused:
    return Refused(400, f"record {index}: {problem}")


def check_events(records: list[Any], token: str) -> None:
    """Refuse the batch unless every event has a name, a distinct_id and this token."""
    for index, record in enumerate(records):
        if type(record) is not dict:
            raise _bad(index, "is not a JSON object")
        name = record.get("event")
        if not isinstance(name, str) or not name:
            raise _bad(index, 'event is missing: every event needs an "event" name')
        props = record.get("properties")
        if type(props) is not dict:
            raise _bad(index, "properties is missing or not an object")
        if props.get("token") != token:
            if props.get("token") in (None, ""):
                raise _bad(
                    index, "properties.token is missing: every record needs the project token"
                )
            raise _bad(index, "properties.token is not this project's token")
        if props.get("distinct_id") in (None, ""):
            raise _bad(index, "properties.distinct_id is missing")
        when = props.get("time")
        if when is not None and (
            isinstance(when, bool)
            or not isinstance(when, int | float)
            or not -(2**63) <= when < 2**63
        ):
            raise _bad(index, "properties.time must be a number of seconds since 1970")
        insert_id = props.get("$insert_id")
        if insert_id is not None and not isinstance(insert_id, str):
            raise _bad(index, "properties.$insert_id must be a string")


def check_people(records: list[Any], token: str) -> None:
    """Refuse the batch unless every people record has ``$distinct_id`` and this ``$token``."""
    for index, record in enumerate(records):
        if type(record) is not dict:
            raise _bad(index, "is not a JSON object")
        if record.get("$token") != token:
            if record.get("$token") in (None, ""):
                raise _bad(index, "$token is missing: every record needs the project token")
            raise _bad(index, "$token is not this project's token")
        if record.get("$distinct_id") in (None, ""):
            raise _bad(index, "$distinct_id is missing")
