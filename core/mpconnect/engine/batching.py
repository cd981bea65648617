"""Filling spool batches record by record, bounded by count and by bytes.

Each converted record is encoded with orjson as it arrives, so its size is known before it
joins a batch: a batch is written when it holds ``max_records`` records or when the next
record would take it past ``max_bytes`` of JSON. Memory holds at most one batch of encoded
records, however large they are. A record that cannot be encoded, or whose JSON is over
``max_record_bytes`` or more (Mixpanel's 1 MB per record), is refused with the reason, for the
engine to quarantine, and never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson

from mpconnect.engine.duplicates import DuplicateCounter
from mpconnect.engine.spool import SpoolWriter
from mpconnect.event_lines import FULL_KEY, INSERT_ID_KEY, NO_KEY, FillBatch
from mpconnect.records import MAX_EVENT_BYTES, Event

#: Mixpanel's limit on one record's JSON (its ingestion API refuses an event of 1 MB).
MAX_RECORD_BYTES = MAX_EVENT_BYTES
#: The default limit on one batch's JSON: 5.6 MiB once base64-encoded for the Datasets API,
#: well under the 10 MB request limit Mixpanel documents.
DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024


def batch_byte_limit(configured: int | None, sink_limit: int | None) -> int:
    """The bytes of JSON per batch: ``engine.max_batch_bytes`` if set, else the sink's own
    limit, else :data:`DEFAULT_MAX_BATCH_BYTES`; never over the sink's limit."""
    limit = configured or sink_limit or DEFAULT_MAX_BATCH_BYTES
    return min(limit, sink_limit) if sink_limit else limit


def _no_key(record: Any) -> None:
    """The dedup key of a batch nobody counts duplicates in: none."""
    return None


class Refused(NamedTuple):
    """Why a record was kept out of its batch; ``encodable``: whether it is valid JSON."""

    reason: str
    encodable: bool


class Batcher:
    """Collects one kind of record into batches and hands each full one to the writer.

    :param writer: the spool writer that writes and reports each batch.
    :param kind: ``"events"`` or ``"people"``.
    :param max_records: records per batch.
    :param max_bytes: bytes of JSON per batch (a single record may be alone over it only if
        it is under ``max_record_bytes``).
    :param max_record_bytes: bytes of JSON per record.
    :param duplicates: counts events sharing a dedup key (events only).
    """

    def __init__(
        self,
        writer: SpoolWriter,
        kind: str,
        *,
        max_records: int,
        max_bytes: int,
        max_record_bytes: int = MAX_RECORD_BYTES,
        duplicates: DuplicateCounter | None = None,
    ) -> None:
        self.writer = writer
        self.kind = kind
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_record_bytes = max_record_bytes
        self.duplicates = duplicates
        self._parts: list[bytes] = []
        self._size = 2  # the brackets
        # The parts' dedup keys (events only): ints, which the garbage collector does not
        # track, unlike the records, whose keeping until the flush made it run 15 times
        # as often.
        self._keys: list[int | None] | None = None if duplicates is None else []
        self._key_of: Callable[[Any], int | None] = (
            duplicates.key if duplicates is not None else _no_key
        )
        self._unkeyed = False  # whether a part has no dedup key
        #: The accelerator's ``key_mode`` for this batcher's duplicate keys.
        self.key_mode = (
            NO_KEY if duplicates is None else FULL_KEY if duplicates.full_key else INSERT_ID_KEY
        )
        #: Batches written so far (a cheap way for the caller to notice a new one).
        self.written = 0

    def add(self, record: Any) -> Refused | None:
        """Add one converted record; return why it was refused, or None.

        Writes the batch before this record when the record would not fit in it, and
        after it when the batch is full.
        """
        try:
            encoded = orjson.dumps(record)
        except TypeError as exc:
            return Refused(f"a value cannot be encoded as JSON: {exc}", False)
        return self.add_line(encoded, self._key_of(record))

    def add_line(self, encoded: bytes, key: int | None) -> Refused | None:
        """Add one record already encoded as JSON, with its dedup key (ignored for
        people); return why it was refused, or None."""
        size = len(encoded)
        if size >= self.max_record_bytes:
            return Refused(
                f"the record is {size:,} bytes of JSON: Mixpanel refuses a record "
                f"of 1 MB ({self.max_record_bytes:,} bytes) or more; not sent",
                True,
            )
        if self._parts and self._size + size + 1 > self.max_bytes:
            self.flush()
        self._parts.append(encoded)
        if self._keys is not None:
            if key is None:
                self._unkeyed = True
            self._keys.append(key)
        self._size += size + 1
        if len(self._parts) >= self.max_records:
            self.flush()
        return None

    def fill(
        self, records: Iterator[Any], fill_batch: FillBatch, token: str, latest: int
    ) -> tuple[int, int, Any]:
        """Add events from ``records`` with the C accelerator until the batch is written
        or a record needs the Python path (:func:`mpconnect.event_lines.fill_batch_function`).

        :return: ``(read, status, item)``: records taken from the iterator, one of the
            ``FILL_*`` outcomes, and the record left for the Python path or the exception
            the iterator raised.
        """
        read, added, status, item = fill_batch(
            records,
            token,
            latest,
            self.key_mode,
            self._parts,
            self._keys,
            self.max_records,
            self.max_bytes - self._size,
            self.max_record_bytes,
            Event,
        )
        self._size += added
        if len(self._parts) >= self.max_records:
            self.flush()
        return read, status, item

    @property
    def pending(self) -> int:
        """Records added and not yet written."""
        return len(self._parts)

    def flush(self) -> None:
        """Write the records collected so far as one batch (nothing if there are none);
        the batch's events are counted for duplicates first."""
        if not self._parts:
            return
        parts, self._parts, self._size = self._parts, [], 2
        if self._keys is not None:
            self._count_duplicates(parts)
        self.writer.write_encoded(self.kind, parts)
        self.written += 1

    def _count_duplicates(self, parts: list[bytes]) -> None:
        """Count the batch's duplicate events in one call (no call per event)."""
        assert self.duplicates is not None and self._keys is not None
        keys, self._keys = self._keys, []
        positions: list[int] | None = None
        if self._unkeyed:
            self._unkeyed = False
            positions = [i for i, key in enumerate(keys) if key is not None]
            keys = [keys[i] for i in positions]

        def event_at(index: int) -> Any:
            return orjson.loads(parts[index if positions is None else positions[index]])

        self.duplicates.see_keys(keys, event_at)  # type: ignore[arg-type]
