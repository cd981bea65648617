"""Rows as the connector sees them: flat dicts of typed values, however they were read.

REST answers JSON with parents nested (``{"Account": {"Name": ...}}``); Bulk 2.0 answers
CSV where every value is a string and parents are dotted columns (``Account.Name``).
Both become ``{"Account.Name": "Acme", "Amount": 1500.0, "CreatedDate": datetime(...)}``,
typed by the field's Salesforce type, so an object reads the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["Field", "converter", "flatten", "jsonable", "parse_datetime", "when"]

Row = dict[str, Any]


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


def _datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_datetime(value)


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _boolean(value: Any) -> bool:
    return value if isinstance(value, bool) else value.lower() == "true"


def _integer(value: Any) -> int:
    return int(float(value))


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "datetime": _datetime,
    "date": _date,
    "boolean": _boolean,
    "double": float,
    "currency": float,
    "percent": float,
    "int": _integer,
    "long": _integer,
}


def converter(kind: str) -> Callable[[Any], Any] | None:
    """The function converting a non-empty value of Salesforce type ``kind`` (None: as is)."""
    return _CONVERTERS.get(kind)


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
        key: value.isoformat() if isinstance(value, date) else value for key, value in row.items()
    }
