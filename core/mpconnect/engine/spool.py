"""The spool: batches of encoded records on local disk, waiting to be imported.

Each batch is one file holding a JSON array (orjson) of at most ``max_records``
records and, if the sink limits it, ``max_bytes`` bytes. A batch exists for the engine
once the ledger records it, which happens only after its file is written: a file left
half-written by a crash is never sent, and the next extraction overwrites it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from mpconnect.disk import file_problem, private_dir
from mpconnect.engine.ledger import BatchRef


def read_batch(path: Path) -> bytes:
    """Return a spooled batch's bytes."""
    return path.read_bytes()


def batch_is_whole(batch: BatchRef) -> bool:
    """True when a spooled batch's file exists and holds its JSON array of ``count`` records
    (a power loss can leave a file the ledger knows of truncated)."""
    try:
        records = orjson.loads(batch.path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(records, list) and len(records) == batch.count


def remove_spool(directory: Path) -> None:
    """Delete a spool directory and everything in it, with its partitions' directories
    (``NAME@p000``… next to it)."""
    shutil.rmtree(directory, ignore_errors=True)
    for partition in directory.parent.glob(f"{directory.name}@p*"):
        shutil.rmtree(partition, ignore_errors=True)


class SpoolWriter:
    """Writes batches of converted records as numbered files and reports each one.

    :param directory: the spool's directory (created).
    :param max_records: records per batch.
    :param max_bytes: bytes per batch, or None.
    :param on_batch: called with each written :class:`BatchRef`.
    :param first_seq: the sequence number of the first batch.
    :param digest: give each :class:`BatchRef` the SHA-256 of its file, hashed from the
        bytes in memory as they are written.
    :param in_memory: write no file: each :class:`BatchRef` carries its bytes
        (``payload``). For a reader that never reads its batches back from disk: a
        partition, which every attempt reads again from its start.
    :raises FileProblem: when the directory cannot be made or a batch cannot be written
        (a full disk is a :class:`~mpconnect.disk.DiskFullError`).
    """

    def __init__(
        self,
        directory: Path,
        max_records: int,
        max_bytes: int | None,
        on_batch: Callable[[BatchRef], None],
        first_seq: int = 1,
        *,
        digest: bool = False,
        in_memory: bool = False,
    ) -> None:
        self.directory = directory
        try:
            private_dir(directory)
        except OSError as exc:
            raise file_problem(exc, directory, "the run's spool") from exc
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.on_batch = on_batch
        self.next_seq = first_seq
        self.digest = digest
        self.in_memory = in_memory

    def write(self, kind: str, records: list[Any]) -> None:
        """Write ``records`` as one batch, or several when over the record or byte limit."""
        for start in range(0, len(records), self.max_records):
            self._write(kind, records[start : start + self.max_records])

    def write_encoded(self, kind: str, records: list[bytes]) -> None:
        """Write one batch of records already encoded as JSON, one ``bytes`` each."""
        # The brackets are written around the joined records rather than joined to them:
        # one copy of the batch in memory instead of two.
        self._emit(kind, len(records), b"[", b",".join(records), b"]")

    def _write(self, kind: str, records: list[Any]) -> None:
        payload = orjson.dumps(records)
        if self.max_bytes is not None and len(payload) > self.max_bytes and len(records) > 1:
            half = len(records) // 2
            self._write(kind, records[:half])
            self._write(kind, records[half:])
            return
        self._emit(kind, len(records), payload)

    def _emit(self, kind: str, count: int, *parts: bytes) -> None:
        """Write a batch whose file is ``parts`` one after the other."""
        seq = self.next_seq
        self.next_seq += 1
        path = batch_path(self.directory, seq, kind)
        payload = None
        if self.in_memory:
            payload = parts[0] if len(parts) == 1 else b"".join(parts)
            parts = (payload,)
        else:
            try:
                write_batch_file(path, *parts)
            except OSError as exc:
                raise file_problem(exc, path, "a batch of the run's spool") from exc
        digest = None
        if self.digest:
            hashed = hashlib.sha256()
            for part in parts:
                hashed.update(part)
            digest = hashed.hexdigest()
        self.on_batch(BatchRef(seq, kind, count, path, digest, payload))


def batch_path(directory: Path, seq: int, kind: str) -> Path:
    """The file of batch ``seq`` in a spool directory."""
    return directory / f"{seq:07d}-{kind}.json"


def write_batch_file(path: Path, *parts: bytes) -> None:
    """Write a batch's bytes, ``parts`` one after the other, to ``path`` (created or
    truncated, mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for part in parts:
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
