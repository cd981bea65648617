"""The run's quarantine file: one JSON line per record that could not be sent."""

from __future__ import annotations

import contextlib
import os
import reprlib
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from mpconnect.disk import file_problem, private_dir

#: How much of an unencodable record the fallback keeps.
_MAX_DEPTH = 8
_MAX_ITEMS = 300
_MAX_INT = 2**63
_repr = reprlib.Repr()
_repr.maxlevel = 4
_repr.maxstring = _repr.maxother = 2000
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 50


class QuarantineFile:
    """Appends rejected records with their reasons to a JSON-lines file, opened lazily.

    Each line: ``{"time", "source", "what", "reason", "field", "record"}``. The writer
    survives any record: what JSON cannot hold (a value that contains itself, a lone
    surrogate, an object whose ``repr`` raises) is written as a readable stand-in.
    """

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self.count = 0
        self._handle: Any = None
        self._lock = threading.Lock()

    def add(self, what: str, reason: str, record: Any = None, field: str | None = None) -> None:
        """Write one rejected record and count it.

        :raises FileProblem: when the file cannot be written (a full disk included).
        """
        entry = {
            "time": time.time(),
            "source": self.source,
            "what": what,
            "reason": reason,
            "field": field,
            "record": record,
        }
        try:
            line = orjson.dumps(entry, default=repr)
        except Exception:
            try:
                line = orjson.dumps(_jsonable(entry, 0))
            except Exception:
                entry["record"] = _safe_repr(record)
                line = orjson.dumps(_jsonable(entry, 0))
        with self._lock:
            try:
                if self._handle is None:
                    private_dir(self.path.parent)
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    self._handle = os.fdopen(fd, "ab")
                self._handle.write(line + b"\n")
                self._handle.flush()
            except OSError as exc:
                raise file_problem(exc, self.path, "the quarantine file") from exc
            self.count += 1

    def close(self) -> None:
        """Close the file if it was opened."""
        with self._lock:
            if self._handle is not None:
                # What could not be flushed was reported when it was written.
                with contextlib.suppress(OSError):
                    self._handle.close()
                self._handle = None


def _text(value: str) -> str:
    """``value`` as valid UTF-8: lone surrogates become ``\\udXXX`` escapes."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


def _safe_repr(value: Any) -> str:
    try:
        return _text(_repr.repr(value))
    except Exception as exc:
        return f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"


def _jsonable(value: Any, depth: int) -> Any:
    """A copy of ``value`` orjson can encode: bounded in depth and size, so values that
    contain themselves end; anything else becomes its (shortened) repr."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if value is None or kind is bool or kind is float:
        return value
    if kind is int:
        return value if -_MAX_INT <= value < _MAX_INT else str(value)
    if depth >= _MAX_DEPTH:
        return _safe_repr(value)
    if isinstance(value, dict):
        return {
            (_text(k) if type(k) is str else _safe_repr(k)): _jsonable(v, depth + 1)
            for k, v in list(value.items())[:_MAX_ITEMS]
        }
    if isinstance(value, list | tuple):
        return [_jsonable(item, depth + 1) for item in value[:_MAX_ITEMS]]
    return _safe_repr(value)
