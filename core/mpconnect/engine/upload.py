"""Upload workers: import spooled batches with bounded concurrency and retries.

Each worker takes a batch from the queue, sends it through the sink (retrying 429, 5xx,
timeouts and dropped connections with backoff, honouring ``Retry-After``), and
checkpoints it in the ledger once acknowledged. The first batch that cannot be sent
stops the pool; its error is kept in :attr:`Uploader.failure`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import orjson

from mpconnect.engine.ledger import BatchRef, RunLedger
from mpconnect.engine.quarantine import QuarantineFile
from mpconnect.engine.split import batch_name, split_in_halves
from mpconnect.engine.spool import read_batch
from mpconnect.engine.throttled import counting_throttled
from mpconnect.errors import ApiError, RetryableApiError
from mpconnect.sink import ImportResult, RecordKind, Sink
from mpconnect.transport.bucket import SharedBucket
from mpconnect.transport.retry import (
    SharedUnreachableRetries,
    call_with_retries,
    log_retry,
    retry_budget,
)

log = logging.getLogger("mpconnect.engine")

#: Bytes of in-memory batches (:attr:`BatchRef.payload`) queued and not yet taken by an
#: upload thread, past which :meth:`Uploader.submit` waits (one batch is always let in).
MAX_QUEUED_BYTES = 8 * 1024 * 1024


class Uploader:
    """A pool of ``concurrency`` threads importing batches into one version."""

    def __init__(
        self,
        sink: Sink,
        ledger: RunLedger,
        *,
        spool_id: str,
        dataset_id: str,
        version_id: str,
        concurrency: int,
        max_retries: int,
        initial_wait: float = 0.5,
        max_wait: float = 60.0,
        quarantine: QuarantineFile,
        on_imported: Callable[[int], None],
        on_retry: Callable[[], None],
        stop: threading.Event | None = None,
        on_collapsed: Callable[[int], None] | None = None,
        on_throttled: Callable[[], None] | None = None,
        on_uploaded: Callable[[int], None] | None = None,
        bucket: SharedBucket | None = None,
    ) -> None:
        self.sink = sink
        self.ledger = ledger
        self.spool_id = spool_id
        self.dataset_id = dataset_id
        self.version_id = version_id
        self.max_retries = max_retries
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        self.quarantine = quarantine
        self.on_imported = on_imported
        self.on_retry = on_retry
        self.on_collapsed = on_collapsed
        #: Told of each request the sink answered 429, and of the bytes of record JSON of
        #: each batch it accepted.
        self.on_throttled = on_throttled or (lambda: None)
        self.on_uploaded = on_uploaded or (lambda size: None)
        #: The project's shared budget (events, bytes): taken before each request, told
        #: of each 429.
        self.bucket = bucket
        self.failure: BaseException | None = None
        # The workers send to one server: when it is unreachable, a few retries in all.
        self._unreachable_retries = SharedUnreachableRetries()
        #: Set when a batch failed: the pool sends nothing more.
        self.stopped = threading.Event()
        #: The run's stop request (SIGTERM, scheduler shutdown): queued batches are left
        #: unacknowledged for the next run to send.
        self.stop_requested = stop if stop is not None else threading.Event()
        self._queue: queue.Queue[BatchRef | None] = queue.Queue()
        self._queued_bytes = 0
        self._room = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"mpconnect-upload-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, batch: BatchRef) -> None:
        """Queue a batch for import. A batch held in memory first waits while those queued
        before it hold :data:`MAX_QUEUED_BYTES`: memory stays bounded when the
        destination is slower than the source."""
        if batch.payload is not None:
            size = len(batch.payload)
            with self._room:
                while self._queued_bytes and self._queued_bytes + size > MAX_QUEUED_BYTES:
                    self._room.wait()
                self._queued_bytes += size
        self._queue.put(batch)

    def finish(self) -> None:
        """Wait until every queued batch is imported or the pool stopped on a failure."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if batch.payload is not None:
                with self._room:
                    self._queued_bytes -= len(batch.payload)
                    self._room.notify()
            if self._halted():
                continue
            try:
                self._send(batch)
            except BaseException as exc:
                if self.failure is None:
                    self.failure = exc
                self.stopped.set()

    def _send(self, batch: BatchRef) -> None:
        payload = batch.payload if batch.payload is not None else read_batch(batch.path)

        def attempt() -> ImportResult:
            if self._halted():
                raise _Stopped
            kind: RecordKind = "events" if batch.kind == "events" else "people"
            if self.bucket is None:
                return self.sink.import_batch(
                    kind, self.dataset_id, self.version_id, payload, batch.count
                )
            self._sleep(self.bucket.take(batch.count, len(payload)))
            try:
                return self.sink.import_batch(
                    kind, self.dataset_id, self.version_id, payload, batch.count
                )
            except ApiError as exc:
                if exc.status == 429:
                    self.bucket.throttled(exc.retry_after)
                raise

        def retrying(exc: BaseException, attempt_number: int, wait: float) -> None:
            self.on_retry()
            log_retry(
                log,
                f"batch {batch_name(batch.seq)} ({batch.kind}, {batch.count} records)",
                exc,
                attempt_number,
                retry_budget(exc, self.max_retries),
                wait,
            )

        try:
            result = call_with_retries(
                counting_throttled(attempt, self.on_throttled),
                max_retries=self.max_retries,
                retry_on=(RetryableApiError,),
                initial_wait=self.initial_wait,
                max_wait=self.max_wait,
                on_retry=retrying,
                sleep=self._sleep,
                shared_unreachable=self._unreachable_retries,
            )
        except _Stopped:
            return
        except ApiError as exc:
            if exc.status != 413:
                raise
            if batch.count <= 1:
                reason = (
                    f"the destination refused it as too large ({len(payload):,} bytes "
                    f"of JSON): {exc.server_message}"
                )
                self._acknowledge(batch, payload, ImportResult(imported=0, rejected=[(0, reason)]))
                return
            parts = self._split(batch, payload, exc)
            del payload  # the halves are on disk (a batch held in memory keeps its whole)
            for part in parts:
                if self._halted():
                    return
                self._send(part)
            return
        self._acknowledge(batch, payload, result)
        self.on_uploaded(len(payload))

    def _acknowledge(self, batch: BatchRef, payload: bytes, result: ImportResult) -> None:
        """Quarantine what the sink rejected, checkpoint the batch and count it."""
        if result.rejected:
            records = orjson.loads(payload)
            for index, reason in result.rejected:
                record = records[index] if 0 <= index < len(records) else None
                self.quarantine.add(
                    f"{batch.kind[:-1] if batch.kind == 'events' else 'people'} "
                    f"record {index} of batch {batch_name(batch.seq)}",
                    reason,
                    record,
                )
        self.ledger.ack_batch(self.spool_id, batch.seq, result.imported)
        self.on_imported(result.imported)
        if result.collapsed and self.on_collapsed is not None:
            self.on_collapsed(result.collapsed)

    def _split(self, batch: BatchRef, payload: bytes, exc: ApiError) -> list[BatchRef]:
        """Replace a batch the sink refused as too large by its two halves, on disk and in
        the ledger at once, and return them."""
        log.warning(
            "batch %s (%s, %d records, %s bytes of JSON): refused as too large "
            "(%s); sending it as two halves",
            batch_name(batch.seq),
            batch.kind,
            batch.count,
            f"{len(payload):,}",
            exc.server_message,
        )
        parts = split_in_halves(batch, payload)
        self.ledger.split_batch(self.spool_id, batch.seq, parts)
        batch.path.unlink(missing_ok=True)
        return parts

    def _halted(self) -> bool:
        return self.stopped.is_set() or self.stop_requested.is_set()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._halted():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.stopped.wait(min(remaining, 0.1))
        raise _Stopped


class _Stopped(Exception):
    """The pool stopped while this batch waited to retry."""
