"""CPU and memory of counting duplicate events, alone, at several run sizes.

    python bench/duplicates.py --events 1000000,5000000

Events shaped like the demo's converted events go through a ``Batcher`` (1000 records a
batch, batches dropped instead of written) twice: with a ``DuplicateCounter`` and
without. The difference is the duplicate counting: CPU nanoseconds per event (process
time, the read's end included) and the peak of memory it adds (tracemalloc, a second pair
of passes). ``--every N`` repeats one earlier event's ``$insert_id`` every N events,
100,000 events after it (0: no duplicates, the common case, where the latest keys are
checked for the whole run).

A counter without ``start``/``finish`` (before the keys were spilled to disk) is driven
the same way, so the script measures both.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mpconnect.engine.batching import Batcher
from mpconnect.engine.duplicates import DuplicateCounter
from mpconnect.engine.spool import SpoolWriter

BATCH = 1000


class _NullWriter(SpoolWriter):
    """A writer that drops batches."""

    def write_encoded(self, kind: str, records: list[bytes]) -> None:
        """Drop the batch."""


def _events(count: int, every: int) -> Iterator[dict[str, Any]]:
    for index in range(count):
        source = index - 100_000 if every and index >= 100_000 and index % every == 0 else index
        yield {
            "event": "Airline Review",
            "properties": {
                "time": 1_700_000_000 + index,
                "distinct_id": f"reviewer-{index % 50_000:06d}",
                "rating": index % 5,
                "token": "benchtoken",
                "$insert_id": f"{source:08x}-0000-4000-8000-{source * 2654435761 % (1 << 48):012x}",
            },
        }


def _pass(count: int, every: int, directory: Path, counted: bool) -> float:
    """CPU seconds of one pass through a Batcher."""
    writer = _NullWriter(directory / "spool", BATCH, None, lambda batch: None)
    counter = DuplicateCounter("bench") if counted else None
    batcher = Batcher(writer, "events", max_records=BATCH, max_bytes=1 << 30, duplicates=counter)
    if counter is not None and hasattr(counter, "start"):
        counter.start(directory / "duplicate-keys")
    cpu = 0.0
    events = _events(count, every)
    while True:
        chunk = [event for _, event in zip(range(BATCH), events, strict=False)]
        if not chunk:
            break
        started = time.process_time()
        for event in chunk:
            batcher.add(event)
        cpu += time.process_time() - started
    started = time.process_time()
    batcher.flush()
    if counter is not None and hasattr(counter, "finish"):
        counter.finish()
    cpu += time.process_time() - started
    return cpu


def _peak(count: int, every: int, directory: Path, counted: bool) -> int:
    """Peak bytes traced during one pass."""
    tracemalloc.start()
    try:
        _pass(count, every, directory, counted)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    """Print the duplicate counting's CPU per event and added peak memory per run size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000,5000000", help="comma-separated counts")
    parser.add_argument("--every", type=int, default=0, help="a duplicate every N events")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc passes")
    args = parser.parse_args()
    print(f"{'events':>10} {'ns/event':>9} {'added peak MB':>14}")
    for count in (int(value) for value in args.events.split(",")):
        with tempfile.TemporaryDirectory(prefix="mpconnect-duplicates-") as tmp:
            directory = Path(tmp)
            cost = _pass(count, args.every, directory, True) - _pass(
                count, args.every, directory, False
            )
            memory = "n/a"
            if not args.no_memory:
                added = _peak(count, args.every, directory, True) - _peak(
                    count, args.every, directory, False
                )
                memory = f"{added / 2**20:.1f}"
        print(f"{count:>10,} {cost / count * 1e9:>9.0f} {memory:>14}")


if __name__ == "__main__":
    main()
