"""Profiles gathered while reading events, kept on disk until ``people()`` asks for them.

Contacts and Leads yield both events and profiles. Reading them once (in ``events()``)
spares the org's API quota; the profiles wait in a temporary file, one JSON line each, so
memory stays flat however many people there are.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from mpconnect import Profile

__all__ = ["ProfileSpool"]


class ProfileSpool:
    """A temporary file of profiles: :meth:`add` them, then :meth:`replay` them once.

    :param directory: where the file lives (the system's temporary directory if None).
    """

    def __init__(self, directory: Path | None = None) -> None:
        where = directory if directory is not None and directory.is_dir() else None
        self._file: IO[bytes] | None = tempfile.TemporaryFile(dir=where)  # noqa: SIM115
        self.count = 0

    def add(self, distinct_id: str, values: dict[str, Any], object_id: str, stream: str) -> None:
        """Keep one profile's ``$set`` values."""
        assert self._file is not None
        self._file.write(orjson.dumps([distinct_id, values, object_id, stream]))
        self._file.write(b"\n")
        self.count += 1

    def replay(self) -> Iterator[Profile]:
        """Yield the kept profiles in the order they were added, then drop the file."""
        if self._file is None:
            return
        self._file.seek(0)
        for line in self._file:
            distinct_id, values, object_id, stream = orjson.loads(line)
            yield Profile(distinct_id=distinct_id, set=values, object_id=object_id, stream=stream)
        self.close()

    def close(self) -> None:
        """Delete the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
