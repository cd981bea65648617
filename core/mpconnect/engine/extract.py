"""The import phase of a run: resend a resumed spool's unacknowledged batches, or extract
the source (:func:`extract`) — read each record, transform, validate and convert it, and
spool it in batches that the uploader sends as they are written (:func:`drain`, the hot
loop). A record that cannot be loaded goes to the quarantine, named and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mpconnect.engine.batching import (
    DEFAULT_MAX_BATCH_BYTES,
    Batcher,
    Refused,
)
from mpconnect.engine.incremental_read import read_source
from mpconnect.engine.ledger import BatchRef, ResumePoint
from mpconnect.engine.odd_records import safe_describe, unencodable_field
from mpconnect.engine.phases import phase
from mpconnect.engine.read_setup import (
    make_context,
    make_spool_writer,
    make_uploader,
    record_transformers,
)
from mpconnect.engine.spool import SpoolWriter
from mpconnect.engine.unattributed import unattributed_refusal
from mpconnect.engine.upload import Uploader
from mpconnect.errors import MpconnectError, PluginError, RecordError, SourcePaused
from mpconnect.event_lines import (
    FILL_EXHAUSTED,
    FILL_FULL,
    FILL_LEFTOVER,
    FILL_RAISED,
    event_line_function,
    fill_batch_function,
)
from mpconnect.record_values import _MAX_EPOCH_SECONDS
from mpconnect.records import Event, Profile
from mpconnect.transport.retry import RetryWaitStopped, stop_waits_on

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run


def load(run: Run, spool_id: str, spool_dir: Path, resume: ResumePoint | None) -> None:
    """The import phase: upload a resumed spool's unacknowledged batches, or extract the
    source while the uploader sends each batch as it is spooled; then check the
    quarantine limit."""
    summary = run.summary
    settings = run.engine.config.engine
    uploader = make_uploader(
        run,
        spool_id,
        summary.version_id or "",
        run.options.concurrency or settings.concurrency,
        run.quarantine,
    )
    with phase(run.ledger, summary.run_id, "import"):
        try:
            if resume is not None:
                summary.batches, summary.imported = run.ledger.acked_totals(spool_id)
                summary.read = resume.read
                run.progress.extracted(summary.read, run.quarantine.count)
                run.progress.imported(summary.imported)
                for batch in run.ledger.unacked_batches(spool_id):
                    uploader.submit(batch)
            else:
                extract(run, spool_id, spool_dir, uploader)
        except BaseException:
            uploader.stopped.set()
            raise
        finally:
            uploader.finish()
        if uploader.failure is not None:
            raise uploader.failure
    if run.stop.is_set():
        raise run.halted()
    run.check_quarantine_limit()


def extract(run: Run, spool_id: str, spool_dir: Path, uploader: Uploader) -> None:
    """Read the connector's events, then its people, into the spool; each batch written
    is recorded in the ledger and handed to ``uploader``."""
    summary = run.summary

    def spooled(batch: BatchRef) -> None:
        run.ledger.add_batch(spool_id, batch)
        uploader.submit(batch)
        run.progress.extracted(summary.read, run.quarantine.count)

    writer = make_spool_writer(run, spool_dir, spooled)
    run.incremental.plan(spool_id)
    ctx = make_context(run, run.partition, **run.incremental.context())
    connector = run.connector_cls(run.settings)
    token = run.token
    transformers = record_transformers(run)
    try:
        # A connector's retry waits end on a stop.
        with (
            stop_waits_on(run.stop),
            phase(run.ledger, summary.run_id, "extract"),
            run.duplicates.counting(spool_dir),
        ):
            read_source(
                run,
                connector,
                ctx,
                lambda kind, records: drain(run, kind, records, writer, token, transformers),
                writer,
            )
    finally:
        connector.close()
    run.incremental.stage()
    if run.paused is not None:
        return  # never resumed: its snapshot is incomplete
    run.ledger.mark_extraction_done(
        summary.run_id, summary.read, run.quarantine.count, run.duplicates.count
    )
    run.resumable = True
    run.progress.extracted(summary.read, run.quarantine.count)


def drain(
    run: Run,
    kind: str,
    records: Any,
    writer: SpoolWriter,
    token: str,
    transformers: list[tuple[str | None, Callable[..., Any]]],
    *,
    flush_on_pause: bool = True,
) -> None:
    """Validate, convert and spool every record of one generator (the hot loop).

    Extraction goes on when an upload has failed: the complete spool lets the next
    run resume without reading the source again.

    :param flush_on_pause: when the connector pauses (:class:`~mpconnect.SourcePaused`),
        spool the records of the batch it was filling; False for a partition, which the
        next run reads again from its start (that batch's number would then hold more).
    """
    summary = run.summary
    quarantine = run.quarantine
    expected = Event if kind == "events" else Profile
    is_events = kind == "events"
    batcher = Batcher(
        writer,
        kind,
        max_records=writer.max_records,
        max_bytes=writer.max_bytes or DEFAULT_MAX_BATCH_BYTES,
        duplicates=run.duplicates if is_events else None,
    )
    refuse_unattributed = not run.sink.accepts_unattributed_events
    stop = run.stop
    lead = getattr(run.sink, "future_leeway", None)
    latest = None if lead is None else int(time.time()) + lead
    # The usual event in C (mpconnect.event_lines); None: Event.to_mixpanel alone.
    event_line = event_line_function() if is_events else None
    fast_type = Event if event_line is not None else None  # exact: a subclass converts itself
    key_mode = batcher.key_mode
    fill_batch = fill_batch_function() if is_events and not transformers else None

    def take(record: Any, accelerate: bool = True) -> None:
        """Validate, convert and batch one record, or quarantine it (``accelerate``:
        False for a record the accelerator has already handed back)."""
        if type(record) is not expected and not isinstance(record, expected):
            raise PluginError(
                f"connector {run.connector_cls.name!r} yielded {record!r} from "
                f"{kind}(); expected mpconnect.{expected.__name__}"
            )
        line = None
        try:
            if transformers:
                _transform(run, record, transformers)
            if accelerate and type(record) is fast_type:
                limit = _MAX_EPOCH_SECONDS if latest is None else latest
                line = event_line(record, token, limit, key_mode)  # type: ignore[misc]
            if line is None:
                if refuse_unattributed and isinstance(record, Event) and record.unattributed:
                    raise unattributed_refusal(run.sink.name)
                converted = record.to_mixpanel(token, latest)
        except RecordError as exc:
            quarantine.add(safe_describe(record), str(exc), _record_data(record), exc.field)
            return
        except MpconnectError:
            raise
        except Exception as exc:  # a value whose own methods fail: still quarantined
            quarantine.add(
                safe_describe(record),
                f"cannot be converted: {type(exc).__name__}: {exc}",
                _record_data(record),
            )
            return
        if line is not None:
            refused = batcher.add_line(line[0], line[1])
            if refused is not None:
                _quarantine_refused(run, batcher, orjson.loads(line[0]), refused)
        elif is_events:
            refused = batcher.add(converted)
            if refused is not None:
                _quarantine_refused(run, batcher, converted, refused)
        else:
            for update in converted:
                _batch(run, batcher, update)

    written = batcher.written

    def spooled() -> None:
        """A batch was just spooled: move the sink's time limit on, and stop if asked."""
        nonlocal written, latest
        written = batcher.written
        if lead is not None:
            latest = int(time.time()) + lead
        if stop.is_set():
            raise run.halted()

    in_connector = True
    try:
        if fill_batch is not None:  # no Python code per usual event
            iterator = iter(records)
            status = FILL_FULL
            while status != FILL_EXHAUSTED:
                limit = _MAX_EPOCH_SECONDS if latest is None else latest
                read, status, item = batcher.fill(iterator, fill_batch, token, limit)
                summary.read += read
                if status == FILL_RAISED:
                    raise item  # the connector's own exception, named below
                if status == FILL_LEFTOVER:
                    in_connector = False
                    take(item, accelerate=False)
                    in_connector = True
                if batcher.written != written:
                    spooled()
        for record in () if fill_batch is not None else records:
            in_connector = False
            summary.read += 1
            take(record)
            if batcher.written != written:
                spooled()
            in_connector = True
    except RetryWaitStopped:
        raise run.halted() from None
    except SourcePaused:
        if flush_on_pause:
            batcher.flush()  # what was read before the pause is sent
        raise
    except MpconnectError:
        raise
    except Exception as exc:
        if not in_connector:
            raise
        raise PluginError(
            f"connector {run.connector_cls.name!r} failed while reading {kind}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    batcher.flush()


def _batch(run: Run, batcher: Batcher, record: Any) -> None:
    """Add a converted record to its batch; one that cannot be encoded (an integer
    beyond 64 bits, say) or is over the per-record size goes to quarantine."""
    refused = batcher.add(record)
    if refused is not None:
        _quarantine_refused(run, batcher, record, refused)


def _quarantine_refused(run: Run, batcher: Batcher, record: Any, refused: Refused) -> None:
    """Quarantine a converted record the batcher refused, with its reason."""
    data = record if refused.encodable else {"repr": repr(record)[:2000]}
    run.quarantine.add(
        _name_converted(batcher.kind, record),
        refused.reason,
        data,
        None if refused.encodable else unencodable_field(record),
    )


def _transform(
    run: Run, record: Event | Profile, transformers: list[tuple[str | None, Callable[..., Any]]]
) -> None:
    for plugin_name, transform in transformers:
        try:
            transform(record=record, source=run.source.name)
        except RecordError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin_name!r} raised in transform_record: {type(exc).__name__}: {exc}"
            ) from exc


def _name_converted(kind: str, record: dict[str, Any]) -> str:
    if kind == "events":
        properties = record.get("properties", {})
        return (
            f"event {record.get('event')!r} ($insert_id {properties.get('$insert_id')}, "
            f"distinct_id {properties.get('distinct_id')!r})"
        )
    return f"profile (distinct_id {record.get('$distinct_id')!r})"


def _record_data(record: Event | Profile) -> dict[str, Any]:
    fields = record.__slots__
    return {name: getattr(record, name) for name in fields}
