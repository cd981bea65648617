"""Fixtures of the engine's tests (helpers live in engine_support.py)."""

from engine_support import gated, home

__all__ = ["gated", "home"]
