"""Batches handed to the upload threads in memory (a partition's): a destination slower
than the source makes the reader wait once ``MAX_QUEUED_BYTES`` are queued, so memory
stays bounded, and every batch is still imported exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_support import SAFETY_TIMEOUT, make_config, make_engine, wait_until

from mpconnect.engine import upload
from mpconnect.engine.ledger import BatchRef
from mpconnect.engine.quarantine import QuarantineFile
from mpconnect.engine.upload import Uploader
from mpconnect.store.datasets import DatasetStore

MB = 1024 * 1024
BATCHES = 8
PER_BATCH = 100


def _payload(seq: int) -> bytes:
    """About 1 MB of events."""
    return orjson.dumps(
        [
            {
                "event": "Padded",
                "properties": {
                    "time": 1_700_000_000 + n,
                    "distinct_id": f"user-{n}",
                    "$insert_id": f"b{seq}-{n}",
                    "padding": "x" * 10_000,
                },
            }
            for n in range(PER_BATCH)
        ]
    )


def test_a_slow_destination_holds_the_reader_at_the_queue_limit_and_loses_nothing(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload, "MAX_QUEUED_BYTES", 3 * MB)
    engine = make_engine(make_config(tmp_path, {}), home)
    sink = engine.make_sink()
    version = sink.create_version("DEMO").version_id
    gate = threading.Event()
    importing = sink.import_batch

    def slow_import(*args: Any) -> Any:
        gate.wait(SAFETY_TIMEOUT)  # the destination answers once the test opens the gate
        return importing(*args)

    monkeypatch.setattr(sink, "import_batch", slow_import)
    uploader = Uploader(
        sink,
        engine.ledger,
        spool_id="SPOOL@p000",
        dataset_id="DEMO",
        version_id=version,
        concurrency=1,
        max_retries=0,
        quarantine=QuarantineFile(tmp_path / "q.jsonl", "demo"),
        on_imported=lambda count: None,
        on_retry=lambda: None,
    )
    submitted: list[int] = []

    def read() -> None:
        for seq in range(1, BATCHES + 1):
            payload = _payload(seq)
            batch = BatchRef(seq, "events", PER_BATCH, tmp_path / f"{seq}.json", None, payload)
            engine.ledger.add_batch("SPOOL@p000", batch)
            uploader.submit(batch)
            submitted.append(seq)

    reader = threading.Thread(target=read)
    reader.start()
    # One batch in the upload thread, three (3 MB) queued: the fifth waits for room.
    wait_until(lambda: len(submitted) == 4)
    time.sleep(0.3)
    assert len(submitted) == 4 and reader.is_alive()

    gate.set()
    reader.join(SAFETY_TIMEOUT)
    uploader.finish()
    assert uploader.failure is None
    assert submitted == list(range(1, BATCHES + 1))
    assert engine.ledger.acked_totals("SPOOL@p000") == (BATCHES, BATCHES * PER_BATCH)
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        ids = [e["properties"]["$insert_id"] for e in store.iter_events("DEMO", version)]
    finally:
        store.close()
    assert sorted(ids) == sorted(
        f"b{s}-{n}" for s in range(1, BATCHES + 1) for n in range(PER_BATCH)
    )
    sink.close()
