"""Types of the C accelerator (see ``_speedups.c`` and :mod:`mpconnect.event_lines`)."""

from typing import Any

INSERT_ID_PLACEHOLDERS: tuple[str, ...]

def event_line(
    event: Any, token: str, latest: int, key_mode: int
) -> tuple[bytes, int | None] | None: ...
def make_insert_id(object_id: str, event_name: str) -> str: ...
