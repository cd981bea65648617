"""What the scheduler remembers between starts, and the lock that makes it one per home.

``$MPCONNECT_HOME/scheduler.json`` keeps, per source, the last scheduled time the
scheduler handled (run, or skipped because a run was still going). At start, a source
whose latest scheduled time is after both that and its last run in the ledger was
missed while the scheduler was down (see ``[scheduler] catch_up``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
from datetime import datetime
from pathlib import Path

from mpconnect.errors import MpconnectError

log = logging.getLogger("mpconnect.scheduler")


class SchedulerState:
    """Last handled scheduled time per source, in a small JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._last_due: dict[str, datetime] = {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for name, item in raw.get("sources", {}).items():
                self._last_due[name] = datetime.fromisoformat(item["last_due"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning(
                "%s: unreadable (%s); starting without it: runs missed while the "
                "scheduler was down are judged from the run ledger alone",
                path,
                exc,
            )

    def last_due(self, source: str) -> datetime | None:
        """Return the last scheduled time handled for ``source``, if any."""
        with self._lock:
            return self._last_due.get(source)

    def set_last_due(self, source: str, moment: datetime) -> None:
        """Remember that the scheduled time ``moment`` of ``source`` was handled."""
        with self._lock:
            self._last_due[source] = moment
            data = {
                "sources": {
                    name: {"last_due": when.isoformat()}
                    for name, when in sorted(self._last_due.items())
                }
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, self.path)


class SchedulerLock:
    """An ``flock`` on ``$MPCONNECT_HOME/scheduler.lock``: one ``mpconnect schedule`` per home."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise MpconnectError naming the scheduler that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise MpconnectError(
                f"another mpconnect schedule is already running with this data directory "
                f"({holder}); stop it first, or set MPCONNECT_HOME to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock up."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
