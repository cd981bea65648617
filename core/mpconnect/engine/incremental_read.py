"""Reading a source in one run: the connector's partitions, its events then its people
(each record kept in the source-object cache on its way), then the cached records that
complete the snapshot, and ``$delete`` updates for deleted profiles where asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from mpconnect.connector import Connector, Partition, RunContext
from mpconnect.engine.batching import DEFAULT_MAX_BATCH_BYTES, Batcher
from mpconnect.engine.incremental import damaged_cache_message
from mpconnect.engine.object_cache import CacheDamaged
from mpconnect.engine.spool import SpoolWriter
from mpconnect.errors import RunFailed, SourcePaused

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run

log = logging.getLogger("mpconnect.engine")


def read_source(
    run: Run,
    connector: Connector,
    ctx: RunContext,
    drain: Callable[[str, Iterator[Any]], None],
    writer: SpoolWriter,
) -> None:
    """Drain the connector's records, then the cached ones, into the spool.

    A :class:`~mpconnect.SourcePaused` from the connector ends the reading: what was read
    is kept and ``run.paused`` says why.
    """
    incremental = run.incremental
    try:
        partitions = connector.partitions(ctx) or [Partition("all")]
        try:
            for kind, method in (("events", connector.events), ("people", connector.people)):
                for partition in partitions:
                    ctx.partition = partition
                    drain(kind, incremental.tap(method(ctx)))
        except SourcePaused as exc:
            run.paused = exc.reason
            log.warning("%s: the connector paused the run: %s", run.source.name, exc)
            return
        for kind in ("events", "people"):
            drain(kind, incremental.cached_records(kind))
        deletes = incremental.delete_records(run.token)
        if deletes:
            batcher = Batcher(
                writer,
                "people",
                max_records=writer.max_records,
                max_bytes=writer.max_bytes or DEFAULT_MAX_BATCH_BYTES,
            )
            for record in deletes:
                batcher.add(record)
            batcher.flush()
            log.info(
                "%s: sending $delete for %d deleted objects' profiles",
                run.source.name,
                len(deletes),
            )
    except CacheDamaged as exc:
        if incremental.cache is not None:
            incremental.cache.reset()
        raise RunFailed(damaged_cache_message(run.source.name, exc)) from None
