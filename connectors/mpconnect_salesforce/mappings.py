"""Custom mappings: any object's rows as events or profiles, by configuration alone.

A mapping is checked against the object's ``describe``: the object must exist, and every
field it names too (an error names the settings key, the field, and close spellings).
``fields = "all"`` takes every field ``describe`` lists that Mixpanel can hold.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mpconnect import ConfigError, Event, Profile
from mpconnect_salesforce.build import tracked
from mpconnect_salesforce.reads import Read, Run
from mpconnect_salesforce.rows import Field, when
from mpconnect_salesforce.settings import EventMapping, PeopleMapping

__all__ = [
    "CompiledMapping",
    "compile_mapping",
    "mapping_events",
    "mapping_profiles",
    "stream_name",
]

#: Compound and binary fields: REST answers them as objects, Bulk 2.0 cannot select them.
_UNSELECTABLE = frozenset({"address", "location", "base64"})
_TIME_TYPES = frozenset({"date", "datetime"})
_PEOPLE = frozenset({"Contact", "Lead"})
_MAX_PROPERTIES = 250


@dataclass
class CompiledMapping:
    """A mapping checked against ``describe``: what to read and how rows become records.

    :param key: the settings key, such as ``sources.crm.settings.events[0]``.
    :param properties: field -> property name.
    :param person_reference: True when ``distinct_id_field`` is a lookup to Contact or Lead,
        so it resolves through the source's ``identity``.
    """

    key: str
    mapping: EventMapping | PeopleMapping
    read: Read
    properties: dict[str, str]
    person_reference: bool
    references: tuple[str, ...]
    gone: list[Read] = field(default_factory=list)

    @property
    def stream(self) -> str:
        """Its stream name in the source's state and cache, such as
        ``events:Demo_Request__c:1f0c9a2e``: a changed mapping is a new stream."""
        kind = "events" if isinstance(self.mapping, EventMapping) else "people"
        return stream_name(kind, self.mapping)


def stream_name(kind: str, mapping: EventMapping | PeopleMapping) -> str:
    """``events:OBJECT:HASH`` or ``people:OBJECT:HASH``, the hash of the whole mapping."""
    digest = hashlib.sha256(mapping.model_dump_json().encode()).hexdigest()[:8]
    return f"{kind}:{mapping.object}:{digest}"


def _field_error(key: str, obj: str, name: str, known: dict[str, Any]) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"{key}: {obj} has no field {name!r}{hint}")


def compile_mapping(
    key: str, mapping: EventMapping | PeopleMapping, describe: dict[str, Any]
) -> CompiledMapping:
    """Check a mapping against the object's describe and plan its read.

    :raises ConfigError: naming the settings key and the missing or unusable field.
    """
    obj = mapping.object
    known = {f["name"]: f for f in describe.get("fields", [])}
    if mapping.fields == "all":
        properties = {name: name for name, f in known.items() if f.get("type") not in _UNSELECTABLE}
        if len(properties) > _MAX_PROPERTIES:
            raise ConfigError(
                f"{key}.fields: {obj} has {len(properties)} fields; Mixpanel takes at most "
                f"255 properties per record: list the ones you need in properties"
            )
    else:
        properties = mapping.property_names()
    for name in properties:
        if name not in known:
            raise _field_error(f"{key}.properties", obj, name, known)
        kind = known[name].get("type")
        if kind in _UNSELECTABLE:
            raise ConfigError(
                f"{key}.properties: {obj}.{name} is a compound {kind} field; list its parts "
                "instead (such as MailingCity, MailingCountry)"
            )
    who = mapping.distinct_id_field
    if who not in known:
        raise _field_error(f"{key}.distinct_id_field", obj, who, known)
    needed = ["Id", who, *properties]
    if isinstance(mapping, EventMapping):
        if mapping.time_field not in known:
            raise _field_error(f"{key}.time_field", obj, mapping.time_field, known)
        if known[mapping.time_field].get("type") not in _TIME_TYPES:
            raise ConfigError(
                f"{key}.time_field: {obj}.{mapping.time_field} is a "
                f"{known[mapping.time_field].get('type')} field, not a date or datetime"
            )
        needed.append(mapping.time_field)
    fields = [Field(name, known[name].get("type", "string")) for name in dict.fromkeys(needed)]
    references = tuple(r for r in known[who].get("referenceTo") or () if r in _PEOPLE)
    label = mapping.event if isinstance(mapping, EventMapping) else "people"
    read = Read(f"{obj} ({label})", obj, fields, mapping.where)
    return CompiledMapping(key, mapping, read, properties, bool(references), references)


def _distinct_id(run: Run, compiled: CompiledMapping, row: dict[str, Any]) -> str | None:
    value = row.get(compiled.mapping.distinct_id_field)
    if value is None or value == "":
        return None
    if compiled.person_reference:
        return run.identity.of(str(value))
    return str(value).strip() or None


def _values(compiled: CompiledMapping, row: dict[str, Any]) -> dict[str, Any]:
    return {
        prop: row[name] for name, prop in compiled.properties.items() if row.get(name) is not None
    }


def mapping_events(run: Run, compiled: CompiledMapping) -> Iterator[Event]:
    """An event mapping's events, one per row; rows with no person or time are quarantined."""
    mapping = compiled.mapping
    assert isinstance(mapping, EventMapping)
    obj = mapping.object
    for row in tracked(run, compiled.stream, compiled.read):
        distinct_id = _distinct_id(run, compiled, row)
        if distinct_id is None:
            run.skip(
                obj,
                row,
                f"{compiled.key}: {mapping.distinct_id_field} is empty, so "
                f"{mapping.event!r} has no one to be attributed to",
            )
            continue
        time = when(row.get(mapping.time_field))
        if time is None:
            run.skip(
                obj,
                row,
                f"{compiled.key}: {mapping.time_field} is empty, so {mapping.event!r} has no time",
            )
            continue
        properties = _values(compiled, row)
        properties.setdefault("salesforce_id", row["Id"])
        yield Event(
            name=mapping.event,
            distinct_id=distinct_id,
            time=time,
            object_id=row["Id"],
            properties=properties,
            stream=compiled.stream,
        )


def mapping_profiles(run: Run, compiled: CompiledMapping) -> Iterator[Profile]:
    """The profiles of a people mapping, one per row; rows without a person are quarantined."""
    mapping = compiled.mapping
    obj = mapping.object
    for row in tracked(run, compiled.stream, compiled.read):
        distinct_id = _distinct_id(run, compiled, row)
        if distinct_id is None:
            run.skip(
                obj,
                row,
                f"{compiled.key}: {mapping.distinct_id_field} is empty, so "
                "the profile has no distinct_id",
            )
            continue
        values = _values(compiled, row)
        if not values:
            run.skip(obj, row, f"{compiled.key}: every listed property is empty")
            continue
        yield Profile(
            distinct_id=distinct_id, set=values, object_id=row["Id"], stream=compiled.stream
        )
