"""Every dedup key of a read, spilled to disk, and the exact count of repeated keys.

Keys are signed 64-bit integers (Python's ``hash``). They are spread over 16 bucket files
by their top four bits as they come (held in memory until :data:`DEFAULT_BUFFER_KEYS` are
waiting, then appended to their files), so memory stays the same however long the read; a
read that never fills the buffer writes no file. :meth:`KeySpill.count_repeats` then
counts one bucket at a time with a set; a bucket over ``max_bucket_keys`` is split again
into 256 by its keys' next byte, so no set is ever larger.
"""

from __future__ import annotations

import os
import shutil
from array import array
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from mpconnect.disk import file_problem, private_dir

#: Buckets of the first spread, by a key's top four bits: few files to create per read
#: (creating 256 cost about 0.16 s of kernel CPU a read on this project's machine).
FIRST_BUCKETS = 16
_FIRST_SHIFT = 60
#: Buckets per later split: one per value of a key byte.
BUCKETS = 256
#: Keys held in memory before they are appended to their bucket files.
DEFAULT_BUFFER_KEYS = 1 << 16
#: Keys counted at once (a set of this many keys takes about 10 MB); a bucket holding
#: more is split again.
DEFAULT_MAX_BUCKET_KEYS = 1 << 17

_KEY_BYTES = array("q").itemsize


class KeySpill:
    """The keys of one read in bucket files under ``directory`` (made empty and private).

    :param directory: where the bucket files go (removed by :meth:`remove`).
    :param buffer_keys: keys held in memory before they are written.
    :param max_bucket_keys: keys counted at once; a larger bucket is split again.
    :raises FileProblem: when the directory or a bucket file cannot be written.
    """

    def __init__(
        self,
        directory: Path,
        *,
        buffer_keys: int = DEFAULT_BUFFER_KEYS,
        max_bucket_keys: int = DEFAULT_MAX_BUCKET_KEYS,
    ) -> None:
        self.directory = directory
        self.buffer_keys = buffer_keys
        self.max_bucket_keys = max(1, max_bucket_keys)
        #: Keys spilled so far.
        self.keys = 0
        shutil.rmtree(directory, ignore_errors=True)
        try:
            private_dir(directory)
        except OSError as exc:
            raise file_problem(exc, directory, "the run's duplicate-key spill") from exc
        self._waiting: list[list[int]] = [[] for _ in range(FIRST_BUCKETS)]
        # A key's top four bits as a signed shift (-8..7) index these lists as 8..15 for
        # -8..-1: the bucket of its unsigned top four bits.
        self._appenders = [bucket.append for bucket in self._waiting]
        self._buffered = 0
        self._filled: set[int] = set()  # the buckets with a file
        # The bucket files, open for the whole read: opening a file for each write cost
        # more CPU (in the kernel) than spreading the keys.
        self._files: dict[int, BinaryIO] = {}

    def add(self, keys: list[int]) -> None:
        """Spill ``keys`` (signed 64-bit integers)."""
        appenders = self._appenders
        for key in keys:
            appenders[key >> _FIRST_SHIFT](key)
        self._buffered += len(keys)
        self.keys += len(keys)
        if self._buffered >= self.buffer_keys:
            self._write_waiting()

    def count_repeats(self) -> int:
        """The number of keys spilled that an earlier key equals (keys minus distinct
        keys). Each bucket file is removed once counted."""
        if not self._filled:  # the whole read fits in memory
            repeats = sum(len(bucket) - len(set(bucket)) for bucket in self._waiting)
            for bucket in self._waiting:
                bucket.clear()
            self._buffered = 0
            return repeats
        self._write_waiting()
        self._close_files()
        filled, self._filled = self._filled, set()
        return sum(
            self._count_file(self._bucket_path(self.directory, index), _FIRST_SHIFT - 8)
            for index in sorted(filled)
        )

    def remove(self) -> None:
        """Delete the bucket files and their directory."""
        for bucket in self._waiting:
            bucket.clear()
        self._buffered = 0
        self._filled = set()
        files, self._files = self._files, {}
        for handle in files.values():
            with suppress(OSError):
                handle.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _write_waiting(self) -> None:
        for index, bucket in enumerate(self._waiting):
            if bucket:
                handle = self._files.get(index)
                path = self._bucket_path(self.directory, index)
                try:
                    if handle is None:
                        handle = self._files[index] = path.open("ab")
                        self._filled.add(index)
                    array("q", bucket).tofile(handle)
                except OSError as exc:
                    raise file_problem(exc, path, "the run's duplicate-key spill") from exc
                bucket.clear()
        self._buffered = 0

    def _close_files(self) -> None:
        files, self._files = self._files, {}
        for index, handle in files.items():
            try:
                handle.close()
            except OSError as exc:
                path = self._bucket_path(self.directory, index)
                raise file_problem(exc, path, "the run's duplicate-key spill") from exc

    def _count_file(self, path: Path, shift: int) -> int:
        """Count the repeats in one bucket file, splitting it by the key byte at ``shift``
        when it is too large; remove it."""
        try:
            size = path.stat().st_size // _KEY_BYTES
        except OSError as exc:
            raise file_problem(exc, path, "the run's duplicate-key spill") from exc
        if size <= self.max_bucket_keys:
            bucket = self._read(path, 0, size)
            path.unlink()
            return len(bucket) - len(set(bucket))
        if shift < 0:  # every bit of these keys was split on: they are all one key
            path.unlink()
            return size - 1
        filled: set[int] = set()
        for start in range(0, size, self.max_bucket_keys):
            chunk = self._read(path, start, self.max_bucket_keys)
            split: list[list[int]] = [[] for _ in range(BUCKETS)]
            for key in chunk:
                split[(key >> shift) & 0xFF].append(key)
            for index, part in enumerate(split):
                if part:
                    self._append(self._part_path(path, index), part)
                    filled.add(index)
        path.unlink()
        # Splits go down a byte at a time; the last takes the lowest byte whole.
        deeper = shift - 8 if shift >= 8 else (0 if shift > 0 else -1)
        return sum(
            self._count_file(self._part_path(path, index), deeper) for index in sorted(filled)
        )

    @staticmethod
    def _bucket_path(directory: Path, index: int) -> Path:
        return directory / f"{index:02x}.keys"

    @staticmethod
    def _part_path(path: Path, index: int) -> Path:
        """The file of one part of a bucket split again (``3f.keys`` -> ``3f-a0.keys``)."""
        return path.with_name(f"{path.stem}-{index:02x}.keys")

    @staticmethod
    def _append(path: Path, keys: list[int]) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as handle:
                array("q", keys).tofile(handle)
        except OSError as exc:
            raise file_problem(exc, path, "the run's duplicate-key spill") from exc

    @staticmethod
    def _read(path: Path, start: int, count: int) -> array[int]:
        keys = array("q")
        try:
            with path.open("rb") as handle:
                handle.seek(start * _KEY_BYTES)
                keys.frombytes(handle.read(count * _KEY_BYTES))
        except OSError as exc:
            raise file_problem(exc, path, "the run's duplicate-key spill") from exc
        return keys
