"""The run's quarantine file: one JSON line per record that could not be sent."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson


class QuarantineFile:
    """Appends rejected records with their reasons to a JSON-lines file, opened lazily.

    Each line: ``{"time", "source", "what", "reason", "field", "record"}``.
    """

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self.count = 0
        self._handle: Any = None
        self._lock = threading.Lock()

    def add(self, what: str, reason: str, record: Any = None, field: str | None = None) -> None:
        """Write one rejected record and count it."""
        line = orjson.dumps(
            {"time": time.time(), "source": self.source, "what": what, "reason": reason,
             "field": field, "record": record},
            default=repr,
        )
        with self._lock:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("ab")
            self._handle.write(line + b"\n")
            self._handle.flush()
            self.count += 1

    def close(self) -> None:
        """Close the file if it was opened."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
