"""Rows as the connector sees them: flat dicts of typed values, however they were read.

REST answers JSON with parents nested (``{"Account": {"Name": ...}}``); Bulk 2.0 answers
CSV where every value is a string and parents are dotted columns (``Account.Name``).
Both become ``{"Account.Name": "Acme", "Amount": 1500.0, "CreatedDate": datetime(...)}``,
typed by the field's Salesforce type, so an object reads the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["Field", "coerce", "flatten", "jsonable", "parse_datetime", "when"]

Row = dict[str, Any]

_FLOAT_TYPES = frozenset({"double", "currency", "percent"})
_INT_TYPES = frozenset({"int", "long"})


@dataclass(frozen=True)
class Field:
    """A field to select: its path (``Name`` or ``Account.Name``) and Salesforce type."""

    path: str
    type: str = "string"


def flatten(record: Mapping[str, Any], prefix: str = "") -> Row:
    """Flatten a REST record: drop ``attributes``, turn parents into dotted keys."""
    row: Row = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, Mapping) and "attributes" in value:
            row.update(flatten(value, f"{prefix}{key}."))
        else:
            row[f"{prefix}{key}"] = value
    return row


def parse_datetime(text: str) -> datetime:
    """Parse Salesforce's ``2024-01-31T12:00:00.000+0000`` (REST) or ``...000Z`` (CSV)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def coerce(value: Any, kind: str) -> Any:
    """Convert a REST or CSV value to the Python type of a field of Salesforce type ``kind``.

    Empty strings become None (Salesforce stores no empty strings; CSV writes null as "").

    :raises ValueError: when the value does not parse as its type.
    """
    if value is None or value == "":
        return None
    if kind == "datetime":
        return value if isinstance(value, datetime) else parse_datetime(value)
    if kind == "date":
        return value if isinstance(value, date) else date.fromisoformat(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else value.lower() == "true"
    if kind in _FLOAT_TYPES:
        return float(value)
    if kind in _INT_TYPES:
        return int(float(value))
    return value


def when(value: Any) -> datetime | None:
    """An event time from a date or datetime value: a date is midnight UTC that day."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return parse_datetime(str(value))


def jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a row that JSON can hold (dates as ISO strings), for the quarantine file."""
    return {
        key: value.isoformat() if isinstance(value, date) else value
        for key, value in row.items()
    }
