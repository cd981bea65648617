"""Read windows of Stripe lists with several workers, and yield them in a fixed order.

A partition read again after a crash must yield the same records in the same order, so
its pages cannot be yielded as workers happen to finish them (as :func:`.pump.pump`
does). Here the windows are fixed in advance and yielded in their order, each window's
pages in Stripe's order: workers take windows in that order, each into its own queue of
at most ``QUEUE_PAGES`` pages, and the consumer empties the first unfinished window's
queue. A worker ahead of the consumer waits on its full queue, so memory stays at most
``workers * QUEUE_PAGES`` pages.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import replace
from typing import Any

from mpconnect_stripe.client import Stopped
from mpconnect_stripe.pump import QUEUE_PAGES, Fetch, Window

__all__ = ["ordered_pump"]

_POLL_SECONDS = 0.1


def ordered_pump(
    windows: Sequence[Window],
    fetch: Fetch,
    stop: threading.Event,
    workers: int,
    transform: Callable[[str, dict[str, Any]], Any],
) -> Generator[tuple[str, list[Any]], None, None]:
    """Yield ``(stream, page)`` of ``windows`` in order, read by ``workers`` threads.

    :raises Exception: the first error of any worker, after stopping the others.
    """
    queues: list[queue.Queue[tuple[str, Any]]] = [queue.Queue(maxsize=QUEUE_PAGES) for _ in windows]
    taken = iter(range(len(windows)))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def put(index: int, item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                queues[index].put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read(index: int) -> None:
        window = windows[index]
        while True:
            objects, has_more = fetch(window)
            page = [transform(window.stream, obj) for obj in objects]
            if page and not put(index, ("page", page)):
                return
            if not has_more or not objects:
                put(index, ("end", None))
                return
            window = replace(window, after=objects[-1]["id"])

    def worker() -> None:
        try:
            while not stop.is_set():
                with lock:
                    index = next(taken, None)
                if index is None:
                    return
                read(index)
        except Stopped:
            pass
        except BaseException as exc:  # handed to the consumer, which re-raises it
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=worker, name=f"mpconnect-stripe-{n}", daemon=True)
        for n in range(max(1, min(workers, len(windows))))
    ]
    for thread in threads:
        thread.start()
    finished = False
    try:
        for index, window in enumerate(windows):
            while True:
                try:
                    kind, page = queues[index].get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    if errors:
                        raise errors[0] from None
                    if stop.is_set():
                        return
                    continue
                if kind == "end":
                    break
                yield window.stream, page
        finished = True
    finally:
        if not finished:  # abandoned, failed or stopped: stop the workers still going
            stop.set()
        for thread in threads:
            thread.join()
