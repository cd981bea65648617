"""Read several Stripe streams at once and hand their pages to one consumer.

A small thread pool reads one stream per thread; pages go through a bounded queue, so
at most ``QUEUE_PAGES`` pages wait in memory however fast Stripe answers. The consumer
(the connector's generator) turns them into records on its own thread, so aggregation
needs no locks. Closing the generator early stops the readers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mpconnect_stripe.client import Stopped

#: Pages that may wait between the readers and the consumer.
QUEUE_PAGES = 8
_POLL_SECONDS = 0.1

Page = list[dict[str, Any]]


def pump(
    streams: Sequence[str],
    read: Callable[[str], Iterator[Page]],
    stop: threading.Event,
) -> Iterator[tuple[str, Page]]:
    """Yield ``(stream, page)`` as the readers of ``streams`` produce them.

    :param read: ``read(stream)`` yields that stream's pages; it runs on a reader thread.
    :param stop: set here when the consumer stops early or a reader fails; the other
        readers then stop at their next page or retry.
    :raises Exception: the first error of any reader, after stopping the others.
    """
    if not streams:
        return
    pages: queue.Queue[tuple[str, str, Any]] = queue.Queue(maxsize=QUEUE_PAGES)

    def put(item: tuple[str, str, Any]) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def reader(stream: str) -> None:
        try:
            for page in read(stream):
                if not put(("page", stream, page)):
                    return
            put(("done", stream, None))
        except Stopped:
            put(("done", stream, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(("error", stream, exc))

    threads = [
        threading.Thread(target=reader, args=(name,), name=f"mpconnect-stripe-{name}", daemon=True)
        for name in streams
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            kind, stream, payload = pages.get()
            if kind == "page":
                yield stream, payload
            elif kind == "done":
                running -= 1
            else:
                raise payload
    finally:
        if running:  # abandoned or failed: stop the readers still going
            stop.set()
            while any(thread.is_alive() for thread in threads):
                try:
                    pages.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    continue
        for thread in threads:
            thread.join()
