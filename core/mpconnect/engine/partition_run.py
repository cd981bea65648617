"""One partition of a partitioned run: extract it (``ctx.partition`` set), validate,
encode, spool into its own directory, upload, acknowledge each batch under
(partition, seq). The body every executor runs, in this process or another.

A partition is read from its start on every attempt. A batch the ledger already
acknowledged under the same (partition, seq) with the same content hash is skipped, not
sent again; one with another hash means the source changed under the run, which then
fails with nothing published.

A connector's pause (:class:`~mpconnect.SourcePaused`) ends the partition as a failure
whose error says ``paused: REASON``: the run then pauses
(:mod:`mpconnect.engine.partition_pause`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpconnect.config import connector_settings
from mpconnect.engine.extract import drain
from mpconnect.engine.ledger import BatchRef
from mpconnect.engine.partition_cache import CACHE_FILE, PartitionCache, load_start
from mpconnect.engine.partition_pause import pause_note
from mpconnect.engine.partition_store import (
    PartitionRow,
    PartitionStore,
    PartitionTotals,
    partition_spool_dir,
    partition_spool_id,
    store_for,
)
from mpconnect.engine.quarantine import QuarantineFile
from mpconnect.engine.read_setup import (
    make_context,
    make_spool_writer,
    make_uploader,
    record_transformers,
)
from mpconnect.engine.spool import remove_spool
from mpconnect.errors import MpconnectError, RunFailed, SourcePaused
from mpconnect.transport.retry import stop_waits_on

log = logging.getLogger("mpconnect.engine")

#: Test hook: ``INDEX:SEQ`` kills (SIGKILL) the process reading partition INDEX on its
#: first attempt once batch SEQ is spooled and the batches before it acknowledged.
KILL_HOOK_ENV = "MPCONNECT_TEST_KILL_PARTITION"


@dataclass(frozen=True)
class PartitionJob:
    """What any worker needs to read one partition of a run (picklable; no secrets:
    the worker reads the source's settings and the sink's from its own configuration).

    :param source: the configured source's name.
    :param run_id: the run that owns the version.
    :param spool_id: the version's spool id (partitions are recorded under it).
    :param spool_dir: the run's spool directory (partitions spool next to it).
    :param version_id: the dataset version the batches are imported into.
    :param concurrency: upload threads per partition.
    :param full_read_state: the full read of an incremental source: each partition reads
        with ``full_refresh`` and the state in the spool's start file, and keeps its cache
        rows and final state in its own file (:mod:`mpconnect.engine.partition_cache`).
    """

    source: str
    run_id: str
    spool_id: str
    spool_dir: Path
    version_id: str
    concurrency: int
    full_read_state: bool = False


class SourceChanged(RunFailed):
    """A batch read again differs from the one already imported under its number."""


def quarantine_paths(home: Path, source: str, spool_id: str, index: int) -> tuple[Path, Path]:
    """A partition's quarantine files: records refused while reading (rewritten on each
    attempt) and records the sink rejected (kept across attempts)."""
    base = home / "quarantine" / source / f"{partition_spool_id(spool_id, index)}"
    return base.with_suffix(".jsonl"), base.with_suffix(".rejected.jsonl")


def run_partition(engine: Any, job: PartitionJob, index: int, stop: Any, worker: str) -> None:
    """Read, spool and upload partition ``index`` of ``job`` with ``engine`` (an
    :class:`~mpconnect.engine.lifecycle.Engine` built from this worker's configuration),
    hand its quarantine lines to the partition store and mark it done there. Its failure
    is recorded there and raised.
    """
    from mpconnect.engine.lifecycle import Run, RunOptions

    store = store_for(engine.ledger)
    row = store.plan(job.spool_id)[index]
    attempt = store.start(job.spool_id, index, worker)
    try:
        source = engine.config.source(job.source)
        entry = engine.plugins.connector(source.connector)
        settings = connector_settings(engine.config, source, entry.cls.Settings)
        sink = engine.make_sink()
        try:
            key = engine.resume_key(source, entry, settings, sink)
            options = RunOptions(concurrency=job.concurrency, stop=stop)
            run = Run(engine, source, entry.cls, settings, sink, job.run_id, options, key)
            try:
                totals = _read_partition(run, store, job, row, attempt)
            finally:
                run.run_stop.close()
                run.quarantine.close()
        finally:
            sink.close()
        # Before it is done: the run adds up the lines of done partitions only.
        files = quarantine_paths(engine.home, job.source, job.spool_id, index)
        store.keep_quarantine(job.spool_id, index, files)
    except BaseException as exc:
        store.fail(job.spool_id, index, _describe(exc))
        raise
    store.finish(job.spool_id, index, totals)


def _read_partition(
    run: Any, store: PartitionStore, job: PartitionJob, row: PartitionRow, attempt: int
) -> PartitionTotals:
    index = row.index
    pspool = partition_spool_id(job.spool_id, index)
    pdir = partition_spool_dir(job.spool_dir, index)
    remove_spool(pdir)  # each attempt reads the partition from its start
    refused_path, rejected_path = quarantine_paths(run.engine.home, job.source, job.spool_id, index)
    refused_path.unlink(missing_ok=True)
    run.quarantine = QuarantineFile(refused_path, job.source)
    rejected = QuarantineFile(rejected_path, job.source)
    run.summary.version_id = job.version_id
    acked = store.acked_digests(pspool)
    start = load_start(job.spool_dir) if job.full_read_state else None
    if job.full_read_state and start is None:
        raise RunFailed(f"partition {row.label}: the run's full-read state is missing")
    cache = None if start is None else PartitionCache(pdir / CACHE_FILE, job.source)
    uploader = make_uploader(run, pspool, job.version_id, job.concurrency, rejected)
    kill_at = _kill_hook(index, attempt)

    def spooled(batch: BatchRef) -> None:
        digest = batch.digest  # hashed by the writer from the bytes it wrote
        assert digest is not None
        known = acked.get(batch.seq)
        if known is not None:
            if known != digest:
                raise SourceChanged(
                    f"partition {row.label}: batch {batch.seq} read again differs from the "
                    "one already imported: the source changed while the run read it; "
                    "nothing is published. Run again with --restart to read the source anew"
                )
            batch.path.unlink(missing_ok=True)
        else:
            store.set_digest(pspool, batch.seq, digest)
            run.ledger.add_batch(pspool, batch)
            uploader.submit(batch)
        store.progress(job.spool_id, index, run.summary.read, run.quarantine.count)
        if kill_at is not None and batch.seq >= kill_at:
            _kill_after_acks(run, pspool, kill_at - 1)

    # In memory: an attempt never reads an earlier attempt's batches back from disk.
    writer = make_spool_writer(run, pdir, spooled, digest=True, in_memory=True)
    if start is None:
        ctx = make_context(run, row.partition)
    else:
        ctx = make_context(run, row.partition, state=start[0], full_refresh=True)
    connector = run.connector_cls(run.settings)
    transformers = record_transformers(run)
    try:
        try:
            with stop_waits_on(run.stop), run.duplicates.counting(pdir):
                for kind, method in (("events", connector.events), ("people", connector.people)):
                    records = method(ctx) if cache is None else cache.tap(method(ctx))
                    # A pause drops the batch being filled: the next run reads this
                    # partition again, and that batch's number would then hold more.
                    drain(run, kind, records, writer, run.token, transformers, flush_on_pause=False)
            if cache is not None:
                cache.finish(ctx.state)
        finally:
            connector.close()
            if cache is not None:
                cache.close()
    except BaseException as exc:
        uploader.stopped.set()
        if isinstance(exc, SourcePaused):
            log.warning(
                "%s: partition %s: the connector paused the run: %s", job.source, row.label, exc
            )
        raise
    finally:
        uploader.finish()
        rejected.close()
    if uploader.failure is not None:
        raise uploader.failure
    if run.stop.is_set():
        raise run.halted()
    if run.ledger.unacked_batches(pspool):
        raise RunFailed(f"partition {row.label}: batches are left unacknowledged")
    return PartitionTotals(
        read=run.summary.read,
        quarantined=run.quarantine.count + _lines(rejected_path),
        duplicates=run.duplicates.count,
        retries=run.summary.retries,
        throttled=run.summary.throttled,
        uploaded_bytes=run.summary.uploaded_bytes,
    )


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def _kill_hook(index: int, attempt: int) -> int | None:
    raw = os.environ.get(KILL_HOOK_ENV, "")
    wanted, _, seq = raw.partition(":")
    if attempt != 1 or not seq.isdigit() or wanted != str(index):
        return None
    return int(seq)


def _kill_after_acks(run: Any, pspool: str, acks: int) -> None:
    deadline = time.monotonic() + 60
    while run.ledger.acked_totals(pspool)[0] < acks and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGKILL)


def worker_name() -> str:
    """How the partition store names the process reading a partition."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SourcePaused):
        return pause_note(exc)  # read by the run: it pauses too
    if isinstance(exc, MpconnectError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted at once"
    return f"{type(exc).__name__}: {exc}"
