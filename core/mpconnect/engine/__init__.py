"""The version-lifecycle engine: one run of one source becomes one dataset version."""

from mpconnect.engine.lifecycle import Engine, RunOptions
from mpconnect.engine.summary import RunSummary

__all__ = ["Engine", "RunOptions", "RunSummary"]
