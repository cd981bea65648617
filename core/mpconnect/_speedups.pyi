"""Types of the C accelerator (see ``_speedups.c`` and :mod:`mpconnect.event_lines`)."""

from typing import Any

INSERT_ID_PLACEHOLDERS: tuple[str, ...]

def event_line(
    event: Any, token: str, latest: int, key_mode: int
) -> tuple[bytes, int | None] | None: ...
def make_insert_id(object_id: str, event_name: str) -> str: ...
def fill_batch(
    records: Any,
    token: str,
    latest: int,
    key_mode: int,
    parts: list[bytes],
    keys: list[int | None] | None,
    max_records: int,
    room: int,
    max_record_bytes: int,
    event_type: type,
) -> tuple[int, int, int, Any]: ...
