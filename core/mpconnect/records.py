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

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mpconnect.errors import RecordError
from mpconnect.record_values import (
    _INSERT_ID,
    _MAX_EPOCH_SECONDS,
    _PLAIN_SET,
    _STR_TYPE,
    FUTURE_LEEWAY,
    MAX_EVENT_BYTES,
    MAX_LIST_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_OBJECT_KEYS,
    MAX_OWN_PROPERTIES,
    MAX_PROPERTIES,
    MIN_EVENT_TIME,
    PLACEHOLDER_DISTINCT_IDS,
    RESERVED_EVENT_PROPERTIES,
    _convert_mapping,
    _distinct_id,
    _event_distinct_id,
    _event_time,
    make_insert_id,
    to_epoch_seconds,
)

__all__ = ["Event", "Profile", "make_insert_id", "to_epoch_seconds"]
#: Re-exported from :mod:`mpconnect.record_values`, where they live.
_REEXPORTED = (
    FUTURE_LEEWAY,
    MAX_EVENT_BYTES,
    MAX_LIST_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_OBJECT_KEYS,
    MAX_PROPERTIES,
)


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
            and _STR_TYPE.issuperset(map(type, properties))
            and _PLAIN_SET.issuperset(map(type, properties.values()))
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
