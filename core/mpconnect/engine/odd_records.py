"""Naming records that resist the usual handling: ones whose ``repr`` raises, and
converted records orjson cannot encode."""

from __future__ import annotations

from typing import Any


def safe_describe(record: Any) -> str:
    """``record.describe()``, or its type when describing it fails."""
    try:
        return str(record.describe())
    except Exception as exc:
        return f"{type(record).__name__} (not describable: {type(exc).__name__})"


def unencodable_field(record: Any, path: str = "", depth: int = 0) -> str | None:
    """The dotted path of the first value JSON cannot hold in a converted record: a
    string with a lone surrogate (key or value) or an integer beyond 64 bits."""
    if isinstance(record, str):
        try:
            record.encode()
        except UnicodeEncodeError:
            return path or "(record)"
        return None
    if isinstance(record, int) and not isinstance(record, bool):
        return None if -(2**63) <= record < 2**64 else path or "(record)"
    if depth > 8:
        return None
    if isinstance(record, dict):
        for key, value in record.items():
            where = f"{path}.{key}" if path else str(key)
            if unencodable_field(key, where, depth) is not None:
                return where.encode("utf-8", "backslashreplace").decode()
            found = unencodable_field(value, where, depth + 1)
            if found is not None:
                return found.encode("utf-8", "backslashreplace").decode()
    elif isinstance(record, list):
        for index, item in enumerate(record):
            found = unencodable_field(item, f"{path}[{index}]", depth + 1)
            if found is not None:
                return found
    return None
