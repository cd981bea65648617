"""Read Stripe lists with several workers and hand their pages to one consumer.

Stripe pages are cursors (``starting_after``), so one list is read one page at a time;
at 0.3 s or more per page a single list cannot use a rate limit of 20 requests/s. The
workers therefore share lists by ``created`` windows, split on demand:

- each stream starts as one window (all of it, or from ``start_date``);
- when a worker reads a page, the list has more, another worker is idle, and requests
  are not already queueing for the rate limit, the rest of the window is cut in two at
  a time between its lower bound and the oldest object read so far: the older half
  (``created < m``) becomes a new window for the idle worker; this worker goes on with
  ``created >= m`` from its cursor. The halves are disjoint and together hold exactly
  the rest of the window (ties at equal ``created`` stay on the cursor's side), so
  nothing is read twice or missed.

Pages go through a bounded queue, so at most ``QUEUE_PAGES`` pages wait in memory however
fast Stripe answers. The consumer (the connector's generator) turns them into records on
its own thread, so aggregation needs no locks. Closing the generator early, or an error
in any worker, stops the others.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mpconnect_stripe.client import Stopped

#: Pages that may wait between the workers and the consumer.
QUEUE_PAGES = 8
#: Lower bound for cutting an open-ended window (Stripe launched in 2011; no object is
#: older). Only used to choose cut points; an open window stays open.
EARLIEST = 1_262_304_000  # 2010-01-01
_POLL_SECONDS = 0.1

Page = list[dict[str, Any]]


@dataclass(frozen=True)
class Window:
    """Part of one list: ``gte <= created < lt`` (None: unbounded), after a cursor."""

    stream: str
    gte: int | None = None
    lt: int | None = None
    after: str | None = None


Fetch = Callable[[Window], tuple[Page, bool]]


def split(window: Window, oldest: int) -> tuple[Window, Window] | None:
    """Cut the rest of ``window`` (read down to ``oldest``) into newer and older parts.

    :returns: ``(newer, older)``, or None when the window is too narrow to cut.
    """
    floor = window.gte if window.gte is not None else EARLIEST
    if oldest - floor < 2:
        return None
    middle = floor + (oldest - floor + 1) // 2
    return replace(window, gte=middle), Window(window.stream, window.gte, middle)


class _Tasks:
    """Windows waiting for a worker, and how many workers are idle."""

    def __init__(
        self, windows: Sequence[Window], stop: threading.Event, busy: Callable[[], bool]
    ) -> None:
        self.busy = busy
        self.waiting: deque[Window] = deque(windows)
        self.unfinished = len(windows)
        self.idle = 0
        self.stop = stop
        self.cond = threading.Condition()

    def take(self) -> Window | None:
        """The next window, or None when every window is done (or the run stopped)."""
        with self.cond:
            while not self.waiting and self.unfinished and not self.stop.is_set():
                self.idle += 1
                self.cond.wait(_POLL_SECONDS)
                self.idle -= 1
            if self.stop.is_set() or not self.waiting:
                return None
            return self.waiting.popleft()

    def offer(self, window: Window, oldest: int) -> Window:
        """Give part of ``window`` to an idle worker if there is one; return the rest."""
        with self.cond:
            if self.idle <= len(self.waiting) or self.busy():
                return window
            parts = split(window, oldest)
            if parts is None:
                return window
            newer, older = parts
            self.waiting.append(older)
            self.unfinished += 1
            self.cond.notify()
            return newer

    def done(self) -> None:
        """One window was read to its end."""
        with self.cond:
            self.unfinished -= 1
            if not self.unfinished:
                self.cond.notify_all()


def pump(
    windows: Sequence[Window],
    fetch: Fetch,
    stop: threading.Event,
    workers: int,
    busy: Callable[[], bool] = lambda: False,
    transform: Callable[[str, dict[str, Any]], Any] | None = None,
) -> Generator[tuple[str, list[Any]], None, None]:
    """Yield ``(stream, page)`` as ``workers`` threads read ``windows``.

    :param fetch: ``fetch(window)`` returns one page and ``has_more``; runs on a worker.
    :param busy: True when requests already queue for the rate limit: windows are then
        not split (a split costs an extra, partly empty page and helps nothing).
    :param transform: ``transform(stream, obj)`` runs on the worker for each object, so
        only its result waits in the queue.
    :param stop: set here when the consumer stops early or a worker fails; the other
        workers then stop at their next page or retry.
    :raises Exception: the first error of any worker, after stopping the others.
    """
    if not windows:
        return
    tasks = _Tasks(windows, stop, busy)
    pages: queue.Queue[tuple[str, str, Any]] = queue.Queue(maxsize=QUEUE_PAGES)

    def put(item: tuple[str, str, Any]) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read(window: Window) -> None:
        while True:
            objects, has_more = fetch(window)
            page = [transform(window.stream, obj) for obj in objects] if transform else objects
            if page and not put(("page", window.stream, page)):
                return
            if not has_more or not objects:
                return
            window = replace(window, after=objects[-1]["id"])
            window = tasks.offer(window, objects[-1]["created"])

    def worker() -> None:
        try:
            while (window := tasks.take()) is not None:
                read(window)
                tasks.done()
        except Stopped:
            pass
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(("error", "", exc))
            stop.set()
        put(("exit", "", None))

    threads = [
        threading.Thread(target=worker, name=f"mpconnect-stripe-{n}", daemon=True)
        for n in range(max(1, workers))
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            kind, stream, payload = pages.get()
            if kind == "page":
                yield stream, payload
            elif kind == "exit":
                running -= 1
            else:
                raise payload
    finally:
        if running:  # abandoned or failed: stop the workers still going
            stop.set()
            while any(thread.is_alive() for thread in threads):
                try:
                    pages.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    continue
        for thread in threads:
            thread.join()
