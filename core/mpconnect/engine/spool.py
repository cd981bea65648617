"""The spool: batches of encoded records on local disk, waiting to be imported.

Each batch is one file holding a JSON array (orjson) of at most ``max_records``
records and, if the sink limits it, ``max_bytes`` bytes. Files are written to a
temporary name and renamed, so a file that exists is whole.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from mpconnect.engine.ledger import BatchRef


def read_batch(path: Path) -> bytes:
    """Return a spooled batch's bytes."""
    return path.read_bytes()


def remove_spool(directory: Path) -> None:
    """Delete a spool directory and everything in it."""
    shutil.rmtree(directory, ignore_errors=True)


class SpoolWriter:
    """Buffers records per kind and writes a batch file each time one is full.

    :param directory: the spool's directory (created).
    :param max_records: records per batch.
    :param max_bytes: bytes per batch, or None.
    :param on_batch: called with each written :class:`BatchRef`.
    :param first_seq: the sequence number of the first batch.
    """

    def __init__(
        self,
        directory: Path,
        max_records: int,
        max_bytes: int | None,
        on_batch: Callable[[BatchRef], None],
        first_seq: int = 1,
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.on_batch = on_batch
        self.next_seq = first_seq
        self._buffers: dict[str, list[Any]] = {"events": [], "people": []}

    def add(self, kind: str, record: dict[str, Any]) -> None:
        """Add one converted record; writes a batch when the buffer is full."""
        buffer = self._buffers[kind]
        buffer.append(record)
        if len(buffer) >= self.max_records:
            self.flush(kind)

    def flush(self, kind: str | None = None) -> None:
        """Write the buffered records of ``kind`` (or of every kind) as batches."""
        for name in (kind,) if kind else tuple(self._buffers):
            buffer = self._buffers[name]
            if buffer:
                self._buffers[name] = []
                self._write(name, buffer)

    def _write(self, kind: str, records: list[Any]) -> None:
        payload = orjson.dumps(records)
        if self.max_bytes is not None and len(payload) > self.max_bytes and len(records) > 1:
            half = len(records) // 2
            self._write(kind, records[:half])
            self._write(kind, records[half:])
            return
        seq = self.next_seq
        self.next_seq += 1
        path = self.directory / f"{seq:07d}-{kind}.json"
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            handle.write(payload)
        os.replace(temporary, path)
        self.on_batch(BatchRef(seq, kind, len(records), path))
