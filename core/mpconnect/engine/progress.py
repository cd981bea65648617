"""Showing a run's progress: bars on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

log = logging.getLogger("mpconnect.progress")

#: Seconds between two progress log lines off a terminal.
LOG_INTERVAL = 5.0


class Progress:
    """Silent progress (``--quiet``); the base of the others."""

    def start(
        self, source: str, resumed_read: int | None = None, resumed_imported: int = 0
    ) -> None:
        """A run of ``source`` begins; a resumed run's ``resumed_read`` records were
        already spooled and ``resumed_imported`` of them acknowledged."""

    def extracted(self, read: int, quarantined: int) -> None:
        """Extraction has read ``read`` records so far."""

    def imported(self, imported: int) -> None:
        """The sink has acknowledged ``imported`` records so far."""

    def stage(self, text: str) -> None:
        """The run moved to a stage (publishing, waiting until live, pruning)."""

    def stop(self) -> None:
        """The run is over."""


class LogProgress(Progress):
    """Logs counts and rates every ``interval`` seconds (for logs and non-terminals;
    default :data:`LOG_INTERVAL`)."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = LOG_INTERVAL if interval is None else interval
        self.source = ""
        self.read = self.quarantined = self.done = self.done_before = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def start(
        self, source: str, resumed_read: int | None = None, resumed_imported: int = 0
    ) -> None:
        """Begin logging periodically (a resumed run starts from its extraction's count
        and the records already acknowledged)."""
        self.source = source
        self.read = resumed_read or 0
        self.done = self.done_before = resumed_imported
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="mpconnect-progress")
        self._thread.start()

    def line(self) -> str:
        """The progress line as logged now; records/s counts only what this run imported."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return (
            f"{self.source}: read {self.read}, imported {self.done} "
            f"({(self.done - self.done_before) / elapsed:.0f} records/s), "
            f"quarantined {self.quarantined}"
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            log.info("%s", self.line())

    def extracted(self, read: int, quarantined: int) -> None:
        """Remember the counts."""
        self.read, self.quarantined = read, quarantined

    def imported(self, imported: int) -> None:
        """Remember the count."""
        self.done = imported

    def stage(self, text: str) -> None:
        """Log the stage."""
        log.info("%s: %s", self.source, text)

    def stop(self) -> None:
        """Stop the logging thread."""
        self._stop.set()


class RichProgress(Progress):
    """Two progress bars (extract, upload) with counts and records/s, on a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bars

        self._bars = Bars(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._started = time.monotonic()
        self._read = 0
        self._imported_before = 0

    def start(
        self, source: str, resumed_read: int | None = None, resumed_imported: int = 0
    ) -> None:
        """Show the bars (a resumed run's start where its earlier run left them)."""
        self._started = time.monotonic()
        self._imported_before = resumed_imported
        self._bars.start()
        self._tasks["extract"] = self._bars.add_task(
            f"{source} read", total=resumed_read, completed=resumed_read or 0, rate=""
        )
        self._tasks["upload"] = self._bars.add_task(
            "  upload", total=resumed_read, completed=resumed_imported, rate=""
        )

    def _rate(self, count: int) -> str:
        return f"{count / max(time.monotonic() - self._started, 1e-9):,.0f} rec/s"

    def extracted(self, read: int, quarantined: int) -> None:
        """Advance the extraction bar."""
        self._read = read
        self._bars.update(self._tasks["extract"], completed=read, rate=self._rate(read))
        self._bars.update(self._tasks["upload"], total=read)

    def imported(self, imported: int) -> None:
        """Advance the upload bar."""
        self._bars.update(
            self._tasks["upload"],
            completed=imported,
            rate=self._rate(imported - self._imported_before),
        )

    def stage(self, text: str) -> None:
        """Print the stage above the bars."""
        self._bars.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}")

    def stop(self) -> None:
        """Leave the final bars on screen."""
        self._bars.stop()


def default_progress(quiet: bool = False) -> Progress:
    """Bars on an interactive terminal, periodic log lines otherwise, nothing if quiet."""
    if quiet:
        return Progress()
    if sys.stderr.isatty():
        return RichProgress()
    return LogProgress()
