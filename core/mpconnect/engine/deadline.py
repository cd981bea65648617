"""A run's own stop: set on a stop request (SIGTERM, Ctrl-C, the scheduler's stop) or when
the run has gone on for ``engine.max_run_time`` seconds.

Every wait of the run (retry waits, the wait until live, upload workers) waits on this one
event, so either cause ends it at once.
"""

from __future__ import annotations

import threading
import time

#: How often the watcher looks at the outer stop request (seconds).
_POLL = 0.05


class _StopEvent(threading.Event):
    """An event that is also set once ``requested`` is: a checkpoint asking
    :meth:`is_set` right after a stop request sees it, before the watcher wakes."""

    def __init__(self, requested: threading.Event | None) -> None:
        super().__init__()
        self._requested = requested

    def is_set(self) -> bool:
        """True once the run must stop (on request or past its deadline)."""
        if not super().is_set() and self._requested is not None and self._requested.is_set():
            self.set()
        return super().is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run must stop; True at once if it already must."""
        return self.is_set() or super().wait(timeout)


class RunStop:
    """The stop event of one run.

    :param requested: the stop request shared with the caller (the CLI's signal handler,
        the scheduler); None: only the deadline stops the run.
    :param max_run_time: seconds after which the run stops.
    """

    def __init__(self, requested: threading.Event | None, max_run_time: float) -> None:
        self.event: threading.Event = _StopEvent(requested)
        self.max_run_time = max_run_time
        self._requested = requested
        self._deadline = time.monotonic() + max_run_time
        self._timed_out = False
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="mpconnect-run-stop", daemon=True)
        self._watcher.start()

    @property
    def timed_out(self) -> bool:
        """True when the run stopped because ``max_run_time`` passed."""
        return self._timed_out

    def close(self) -> None:
        """Stop watching (the run has ended)."""
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.is_set():
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._timed_out = True
                self.event.set()
                return
            step = min(left, _POLL)
            if self._requested is not None and self._requested.wait(step):
                self.event.set()
                return
            if self._requested is None:
                self._closed.wait(step)
