"""Errors that name the configuration file they are about."""

from __future__ import annotations

from pathlib import Path


def in_file(message: str, path: Path | None) -> str:
    """``message`` prefixed with ``path`` (the configuration file), unless it names it
    already or there is no file (the built-in configuration)."""
    if path is None or message.startswith(str(path)):
        return message
    return f"{path}: {message}"
