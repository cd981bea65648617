"""The parts one read of a source is made of, shared by an unpartitioned run
(:mod:`mpconnect.engine.extract`) and each partition of a partitioned one
(:mod:`mpconnect.engine.partition_run`): the uploader, the spool writer, the
connector's run context and the ``transform_record`` plugins."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpconnect.connector import Partition, RunContext
from mpconnect.disk import private_dir
from mpconnect.engine.batching import batch_byte_limit
from mpconnect.engine.ledger import BatchRef
from mpconnect.engine.project_budget import project_bucket
from mpconnect.engine.quarantine import QuarantineFile
from mpconnect.engine.spool import SpoolWriter
from mpconnect.engine.upload import Uploader

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run


def make_uploader(
    run: Run, spool_id: str, version_id: str, concurrency: int, quarantine: QuarantineFile
) -> Uploader:
    """The upload workers of one spool, counting into ``run`` and drawing on the
    project's shared rate-limit budget."""
    settings = run.engine.config.engine
    return Uploader(
        run.sink,
        run.ledger,
        spool_id=spool_id,
        dataset_id=run.source.dataset_id,
        version_id=version_id,
        concurrency=concurrency,
        max_retries=settings.max_retries,
        initial_wait=settings.retry_initial_wait,
        max_wait=settings.retry_max_wait,
        quarantine=quarantine,
        stop=run.stop,
        on_imported=run.count_imported,
        on_retry=run.count_retry,
        on_collapsed=run.count_collapsed,
        on_throttled=run.count_throttled,
        on_uploaded=run.count_uploaded,
        bucket=project_bucket(settings, run.sink, run.token, run.engine.home),
    )


def make_spool_writer(
    run: Run,
    spool_dir: Path,
    spooled: Callable[[BatchRef], None],
    *,
    digest: bool = False,
    in_memory: bool = False,
) -> SpoolWriter:
    """A spool writer with the sink's batch limits, calling ``spooled`` per batch (with
    each batch's SHA-256 when ``digest``; with its bytes instead of a file when
    ``in_memory``)."""
    return SpoolWriter(
        spool_dir,
        run.sink.max_batch_records,
        batch_byte_limit(run.engine.config.engine.max_batch_bytes, run.sink.max_batch_bytes),
        spooled,
        digest=digest,
        in_memory=in_memory,
    )


def make_context(run: Run, partition: Partition | None, **incremental: Any) -> RunContext:
    """The run context a connector reads ``partition`` of the source with."""
    return RunContext(
        source=run.source.name,
        dataset_id=run.source.dataset_id,
        log=logging.getLogger(f"mpconnect.source.{run.source.name}"),
        state_dir=private_dir(run.engine.home / "state" / run.source.name),
        quarantine=partial(quarantine_source_object, run),
        stop=run.stop,
        count_retry=lambda *_: run.count_retry(),
        partition=partition,
        **incremental,
    )


def quarantine_source_object(run: Run, what: str, reason: str, data: Any = None) -> None:
    """A connector's object that could not become a record: read, and quarantined."""
    run.summary.read += 1
    run.quarantine.add(what, reason, data)


def record_transformers(run: Run) -> list[tuple[str | None, Callable[..., Any]]]:
    """The ``transform_record`` implementations, each with its plugin's name."""
    return [
        (run.plugins.pm.get_name(impl.plugin), impl.function)
        for impl in run.plugins.pm.hook.transform_record.get_hookimpls()
    ]
