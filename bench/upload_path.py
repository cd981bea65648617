"""CPU per event of what follows the encoding of records: spooling a batch (and hashing it,
as a partition does), then the upload threads' work for each sink into a null HTTPS sink
(nginx answering at once): reading the batch back, building the body (base64 form or
gzip), the request and TLS on loopback, and the ledger's acknowledgement.

    python bench/upload_path.py --events 200000            # both sinks, 3 rounds, best
    python bench/upload_path.py --sinks datasets --rounds 5

Each part runs alone in this process on the same demo batches (1000 records for the
datasets sink, 2000 for ingestion) and is measured in CPU seconds of the process (user +
system, all threads), so the figures hold on a loaded machine far better than wall-clock
rates; the best of ``--rounds`` is printed in µs per event, the upload's user and system
time apart too (system time is mostly loopback TCP, the null sink's receiving included).
nginx's own CPU is not counted. Needs nginx (Debian package ``nginx``) and the
``server`` extra (trustme).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _util import null_server

from mpconnect.config import parse_config
from mpconnect.connector import RunContext
from mpconnect.engine.ledger import BatchRef, SqliteRunLedger
from mpconnect.engine.quarantine import QuarantineFile
from mpconnect.engine.spool import SpoolWriter
from mpconnect.engine.upload import Uploader
from mpconnect.malloc_tuning import keep_freed_memory
from mpconnect_demo import DemoConnector

TOKEN = "benchtoken"


def encoded_events(events: int) -> list[bytes]:
    """The demo's events, each encoded as the engine spools it."""
    connector = DemoConnector(DemoConnector.Settings(events=events))
    ctx = RunContext(source="bench", dataset_id="BENCH")
    return [orjson.dumps(event.to_mixpanel(TOKEN)) for event in connector.events(ctx)]


def cpu() -> tuple[float, float]:
    """CPU seconds of this process so far, every thread: (user, system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def spool(directory: Path, records: list[bytes], per_batch: int, digest: bool) -> list[BatchRef]:
    """Write ``records`` as batches of ``per_batch``; return them. With ``digest``, take
    each batch's SHA-256 as a partition does: from the writer, or (before the writer
    could hash) by reading the file back."""
    written: list[BatchRef] = []
    hashes: list[str] = []
    from_writer = digest and "digest" in inspect.signature(SpoolWriter).parameters
    options = {"digest": True} if from_writer else {}

    def spooled(batch: BatchRef) -> None:
        written.append(batch)
        if digest and not from_writer:
            hashes.append(hashlib.sha256(batch.path.read_bytes()).hexdigest())

    writer = SpoolWriter(directory, per_batch, None, spooled, **options)
    for start in range(0, len(records), per_batch):
        writer.write_encoded("events", records[start : start + per_batch])
    return written


def make_sink(kind: str, url: str, ca: Path, home: Path) -> Any:
    """A sink of ``kind`` pointed at the null sink, as a configuration file makes it."""
    table: dict[str, Any] = {"sink": kind, "api_url": url, "ca_bundle": str(ca)}
    table |= {"project_token": TOKEN, "secret": "${BENCH_SECRET}"}
    os.environ["BENCH_SECRET"] = "benchsecret"
    config = parse_config({"mixpanel": table}, home / "mpconnect.toml")
    if kind == "datasets":
        from mpconnect.sinks.datasets import DatasetsSink

        return DatasetsSink(config.mixpanel, home)
    from mpconnect.sinks.ingestion import IngestionSink

    return IngestionSink(config.mixpanel, home)


def upload(sink: Any, batches: list[BatchRef], home: Path, concurrency: int) -> None:
    """Send every batch through the engine's upload workers, acknowledging each."""
    ledger = SqliteRunLedger(home / f"ledger-{time.monotonic_ns()}.sqlite3")
    for batch in batches:
        ledger.add_batch("bench", batch)
    imported = []
    uploader = Uploader(
        sink,
        ledger,
        spool_id="bench",
        dataset_id="DEMO",
        version_id="1",
        concurrency=concurrency,
        max_retries=3,
        quarantine=QuarantineFile(home / "quarantine.jsonl", "bench"),
        on_imported=imported.append,
        on_retry=lambda: None,
    )
    for batch in batches:
        uploader.submit(batch)
    uploader.finish()
    if uploader.failure is not None:
        raise uploader.failure
    if sum(imported) != sum(batch.count for batch in batches):
        raise SystemExit(f"imported {sum(imported)} of {sum(b.count for b in batches)}")


def best(rounds: int, events: int, work: Callable[[], None]) -> tuple[float, float]:
    """The CPU µs per event (user, system) of the cheapest of ``rounds`` runs of
    ``work``."""
    least = (float("inf"), 0.0)
    for _ in range(rounds):
        user, system = cpu()
        work()
        user_after, system_after = cpu()
        spent = (user_after - user, system_after - system)
        least = min(least, spent, key=sum)
    return least[0] / events * 1e6, least[1] / events * 1e6


def measure(kind: str, records: list[bytes], directory: Path, url: str, ca: Path, args: Any) -> str:
    """One line of figures for the sink ``kind``."""
    per_batch = 1000 if kind == "datasets" else 2000
    spool_dir = directory / f"spool-{kind}"
    events = len(records)
    plain = sum(best(args.rounds, events, partial(spool, spool_dir, records, per_batch, False)))
    hashed = sum(best(args.rounds, events, partial(spool, spool_dir, records, per_batch, True)))
    batches = spool(spool_dir, records, per_batch, False)
    sink = make_sink(kind, url, ca, directory)
    try:
        upload(sink, batches[:4], directory, args.concurrency)  # its connections made
        work = partial(upload, sink, batches, directory, args.concurrency)
        user, system = best(args.rounds, events, work)
    finally:
        sink.close()
    return (
        f"{kind:10} spool {plain:5.2f}  spool + sha256 {hashed:5.2f}  "
        f"upload (read, body, HTTPS, ack) {user + system:5.2f} "
        f"(user {user:4.2f}, system {system:4.2f})"
    )


def main() -> None:
    """Measure each part and print µs of CPU per event."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sinks", default="datasets,ingestion")
    args = parser.parse_args()
    keep_freed_memory()  # as the mpconnect command does
    records = encoded_events(args.events)
    size = sum(map(len, records)) / len(records)
    print(f"{len(records):,} demo events, {size:.0f} bytes each as JSON; µs of CPU per event")
    with tempfile.TemporaryDirectory(prefix="mpconnect-upload-path-") as tmp:
        directory = Path(tmp)
        server, url, ca = null_server(directory)
        try:
            for kind in args.sinks.split(","):
                print(measure(kind, records, directory, url, ca, args), flush=True)
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
