"""One run per source at a time: a lock interface and its single-machine implementation.

:class:`FileSourceLock` uses ``flock`` on ``$MPCONNECT_HOME/locks/SOURCE.lock``; the
kernel releases it when the process dies, even by ``kill -9``. A shared-database lock
(PostgreSQL advisory locks) can implement the same interface for several machines.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import orjson

from mpconnect.disk import file_problem, private_dir
from mpconnect.errors import RunLocked


class SourceLock(ABC):
    """Held for the whole of one run of one source."""

    @abstractmethod
    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLocked` naming the holder, at once."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock up."""

    @abstractmethod
    def is_held(self) -> bool:
        """True when some process holds the lock now (this one included)."""

    def __enter__(self) -> SourceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FileSourceLock(SourceLock):
    """A ``flock`` on a per-source file that records the holder's pid, host and start."""

    def __init__(self, directory: Path, source: str, run_id: str = "") -> None:
        try:
            private_dir(directory)
        except OSError as exc:
            raise file_problem(exc, directory, "the lock directory") from exc
        self.path = directory / f"{source}.lock"
        self.source = source
        self.run_id = run_id
        self._fd: int | None = None

    def holder(self) -> dict[str, Any]:
        """Return what the current holder wrote (pid, host, started, run_id), if readable."""
        try:
            return orjson.loads(self.path.read_bytes() or b"{}")
        except (OSError, orjson.JSONDecodeError):
            return {}

    def acquire(self) -> None:
        """Take the lock or raise RunLocked naming the running process."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise file_problem(exc, self.path, f"the lock of source {self.source!r}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = self.holder()
            started = info.get("started")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
            raise RunLocked(
                f"source {self.source!r} is already running: pid {info.get('pid', '?')} on "
                f"{info.get('host', '?')}, started {when} (run {info.get('run_id', '?')})"
            ) from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(
                fd,
                orjson.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started": time.time(),
                        "run_id": self.run_id,
                    }
                ),
            )
        except OSError:
            pass  # the holder's details are only for messages; a full disk keeps the lock

    def is_held(self) -> bool:
        """True when some process holds the lock now."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing also drops the shared lock taken to test
        return False

    def release(self) -> None:
        """Release the lock (the file stays, for the next holder)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
