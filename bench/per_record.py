"""CPU cost of the per-record path, stage by stage, in one process (no network).

    python bench/per_record.py --events 300000

Each line adds one stage to the one before and prints CPU microseconds per event
(process time, so other load on the machine matters less than for wall-clock figures):
demo generation; + validation and conversion (``Event.to_mixpanel``, ``$insert_id``);
+ encoding and duplicate detection (``Batcher``); + spooling (batch files on disk). Then
the same with the C accelerator (``mpconnect.event_lines``) in place of the Python path.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mpconnect.connector import RunContext
from mpconnect.engine.batching import Batcher
from mpconnect.engine.duplicates import DuplicateCounter
from mpconnect.engine.spool import SpoolWriter
from mpconnect.event_lines import (
    FILL_EXHAUSTED,
    FILL_FULL,
    INSERT_ID_KEY,
    event_line_function,
    fill_batch_function,
)
from mpconnect_demo import DemoConnector


class _NullWriter(SpoolWriter):
    """A writer that drops batches (to measure everything but the disk)."""

    def write_encoded(self, kind: str, records: list[bytes]) -> None:
        """Drop the batch."""


def _stage(events: int, directory: Path, upto: str) -> float:
    connector = DemoConnector(DemoConnector.Settings(events=events))
    ctx = RunContext(source="bench", dataset_id="BENCH")
    writer_cls = SpoolWriter if upto in ("spool", "line-spool", "fill-spool") else _NullWriter
    writer = writer_cls(directory, 1000, 4 * 1024 * 1024, lambda batch: None)
    duplicates = DuplicateCounter("bench")
    duplicates.start(directory / "duplicate-keys")
    batcher = Batcher(
        writer,
        "events",
        max_records=1000,
        max_bytes=4 * 1024 * 1024,
        duplicates=duplicates,
    )
    started = time.process_time()
    records = connector.events(ctx)
    if upto == "generate":
        for _ in records:
            pass
    elif upto == "convert":
        for record in records:
            record.to_mixpanel("token", None)
    elif upto in ("fill", "fill-spool"):
        fill_batch = fill_batch_function()
        if fill_batch is None:
            raise SystemExit("the C accelerator is not built (pip install -e . with a compiler)")
        status = FILL_FULL
        while status != FILL_EXHAUSTED:
            _, status, _ = batcher.fill(records, fill_batch, "token", 99_999_999_999)
            assert status in (FILL_FULL, FILL_EXHAUSTED)
        batcher.flush()
        duplicates.finish()
    elif upto in ("line", "line-spool"):
        event_line = event_line_function()
        if event_line is None:
            raise SystemExit("the C accelerator is not built (pip install -e . with a compiler)")
        add_line = batcher.add_line
        for record in records:
            line = event_line(record, "token", 99_999_999_999, INSERT_ID_KEY)
            assert line is not None
            add_line(line[0], line[1])
        batcher.flush()
        duplicates.finish()
    else:
        add = batcher.add
        for record in records:
            add(record.to_mixpanel("token", None))
        batcher.flush()
        duplicates.finish()
    return time.process_time() - started


def main() -> None:
    """Print CPU microseconds per event for each cumulative stage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    stages: list[tuple[str, str]] = [
        ("generate", "demo generation"),
        ("convert", "+ to_mixpanel (checks, conversion, $insert_id)"),
        ("batch", "+ encode (orjson) and duplicate detection"),
        ("spool", "+ spool files on disk"),
        ("line", "generation + C accelerator + batching"),
        ("line-spool", "+ spool files on disk"),
        ("fill", "generation + C accelerator's batch loop"),
        ("fill-spool", "+ spool files on disk"),
    ]
    with tempfile.TemporaryDirectory(prefix="mpconnect-per-record-") as tmp:
        for upto, label in stages:
            seconds = min(_stage(args.events, Path(tmp), upto) for _ in range(args.repeat))
            print(f"{label:50} {seconds / args.events * 1e6:6.2f} µs/event")


if __name__ == "__main__":
    main()
