"""The usual event's JSON line in one C call, when mpconnect's accelerator is built.

:func:`event_line_function` returns ``mpconnect._speedups.event_line`` (compiled from
``_speedups.c`` when the package is installed, where a C compiler is found), or None:
without it, or with ``MPCONNECT_PURE_PYTHON=1`` in the environment, the engine takes the
Python path alone, with the same result.

``fill_batch(records, ...)`` does the same for the records an iterator yields, appending
the lines to a batch until it is full or a record needs the Python path
(:meth:`~mpconnect.engine.batching.Batcher.fill`): no Python code runs per usual event.

``event_line(event, token, latest, key_mode)`` returns ``(line, key)`` for an
:class:`~mpconnect.records.Event` whose fields are plain and valid: ``line`` is exactly
``orjson.dumps(event.to_mixpanel(token, latest))`` and ``key`` what
:meth:`~mpconnect.engine.duplicates.DuplicateCounter.key` gives for it (``key_mode``:
:data:`NO_KEY`, :data:`INSERT_ID_KEY` or :data:`FULL_KEY`). For any other event (a
float, a datetime, a nested value, a bad field...) it returns None, and
:meth:`Event.to_mixpanel <mpconnect.records.Event.to_mixpanel>` checks, converts and names
the field as always: the C code never decides what is valid, it only skips the Python
work for what that path would pass unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

#: ``key_mode`` values: no duplicate key; the ``$insert_id``'s; /import's four fields'.
NO_KEY, INSERT_ID_KEY, FULL_KEY = 0, 1, 2
#: Set to 1 to run the Python path alone (to compare, or to rule the accelerator out).
PURE_PYTHON_VARIABLE = "MPCONNECT_PURE_PYTHON"

#: ``fill_batch``'s outcomes: the batch is full; a record is left for the Python path;
#: the records ended; the iterator raised.
FILL_FULL, FILL_LEFTOVER, FILL_EXHAUSTED, FILL_RAISED = 0, 1, 2, 3

EventLine = Callable[[Any, str, int, int], "tuple[bytes, int | None] | None"]
FillBatch = Callable[..., "tuple[int, int, int, Any]"]

_compiled: EventLine | None
_fill: FillBatch | None
try:
    from mpconnect._speedups import event_line as _compiled
    from mpconnect._speedups import fill_batch as _fill
except ImportError:  # built without a C compiler: the Python path alone
    _compiled = _fill = None


def compiled() -> bool:
    """Whether the C accelerator is built and importable."""
    return _compiled is not None


def _switched_off() -> bool:
    return os.environ.get(PURE_PYTHON_VARIABLE, "").strip() not in ("", "0")


def event_line_function() -> EventLine | None:
    """The accelerator's ``event_line``, or None when it is not built or switched off."""
    return None if _switched_off() else _compiled


def fill_batch_function() -> FillBatch | None:
    """The accelerator's ``fill_batch``, or None when it is not built or switched off."""
    return None if _switched_off() else _fill
