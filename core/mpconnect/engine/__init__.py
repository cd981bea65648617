"""The version-lifecycle engine: one run of one source becomes one dataset version.

``Engine`` and ``RunOptions`` are imported on first use, so commands that only read the
ledger (``mpconnect runs``) do not load the sinks and pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mpconnect.engine.summary import RunSummary

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Engine, RunOptions

__all__ = ["Engine", "RunOptions", "RunSummary"]


def __getattr__(name: str) -> Any:
    if name in ("Engine", "RunOptions"):
        from mpconnect.engine import lifecycle

        return getattr(lifecycle, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
