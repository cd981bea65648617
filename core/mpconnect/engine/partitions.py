"""Partitioned runs, the run's side: plan the partitions once at the run's start (the
plan is recorded, so a resumed run uses the same one), have an executor read the
partitions not yet done, show their progress, and add up their counts and quarantined
records before the version may be published.

A source whose connector returns one partition runs exactly as an unpartitioned run
(:func:`run_partitioned` returns False and the caller extracts as always). An incremental
source is partitioned only when the engine decides on a full read before reading (see
:mod:`mpconnect.engine.partition_cache`); its incremental reads run unpartitioned.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mpconnect.connector import Partition, RunContext
from mpconnect.disk import private_dir
from mpconnect.engine.ledger import ResumePoint, SqliteRunLedger
from mpconnect.engine.partition_cache import has_start, save_start, stage_partitions
from mpconnect.engine.partition_cache_loader import CacheRowsLoader
from mpconnect.engine.partition_pause import end_partitions_paused
from mpconnect.engine.partition_run import PartitionJob, quarantine_paths
from mpconnect.engine.partition_store import (
    PartitionRow,
    PartitionStore,
    partition_spool_id,
    store_for,
)
from mpconnect.engine.phases import phase
from mpconnect.engine.process_pool import (
    InProcessExecutor,
    LocalProcessExecutor,
    PartitionExecutor,
)
from mpconnect.engine.progress import LOG_INTERVAL
from mpconnect.errors import MpconnectError, PluginError, RunFailed, SourcePaused

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run

log = logging.getLogger("mpconnect.engine")
progress_log = logging.getLogger("mpconnect.progress")


def plan_partitions(run: Run) -> list[Partition]:
    """Ask the connector for the source's partitions, and check what it returns. An
    incremental source's connector is asked with the run's state, on a full read.

    :raises PluginError: for no partitions, a repeated key, or a spec that is not JSON.
    """
    incremental = run.incremental
    ctx = RunContext(
        source=run.source.name,
        dataset_id=run.source.dataset_id,
        log=logging.getLogger(f"mpconnect.source.{run.source.name}"),
        state_dir=private_dir(run.engine.home / "state" / run.source.name),
        stop=run.stop,
        count_retry=lambda *_: run.count_retry(),
        state=dict(incremental.state) if incremental.enabled else {},
    )
    name = run.connector_cls.name
    connector = run.connector_cls(run.settings)
    try:
        partitions = list(connector.partitions(ctx))
    except MpconnectError:
        raise
    except Exception as exc:
        raise PluginError(
            f"connector {name!r} failed in partitions(): {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        connector.close()
    if not partitions:
        raise PluginError(f"connector {name!r} returned no partitions; return at least one")
    keys: set[str] = set()
    for partition in partitions:
        if not isinstance(partition, Partition):
            raise PluginError(
                f"connector {name!r}: partitions() returned {partition!r}; expected "
                "mpconnect.Partition"
            )
        if partition.key in keys:
            raise PluginError(f"connector {name!r}: partition key {partition.key!r} repeated")
        keys.add(partition.key)
        try:
            json.dumps(partition.spec)
        except (TypeError, ValueError) as exc:
            raise PluginError(
                f"connector {name!r}: partition {partition.key!r}: spec is not JSON: {exc}"
            ) from None
    return partitions


def run_partitioned(run: Run, spool_id: str, spool_dir: Path, resume: ResumePoint | None) -> bool:
    """Load the version partition by partition; False when the source has one partition
    (or a resumed spool predates partitions): the caller then loads it as always. When a
    partition's connector pauses the run, ``run.paused`` says why and the version is kept
    for the next run (:mod:`mpconnect.engine.partition_pause`)."""
    try:
        store = store_for(run.ledger)
    except MpconnectError:
        # A ledger without partitions (the distributed one) runs unpartitioned sources.
        if resume is not None or run.incremental.enabled:
            return False
        only = plan_partitions(run)
        if len(only) == 1:
            run.partition = only[0]
            return False
        raise
    rows = store.plan(spool_id)
    incremental = run.incremental
    if not rows:
        if resume is not None:
            return False  # an older spool, or an unpartitioned one
        if incremental.enabled:
            incremental.plan(spool_id)
            if not incremental.partitionable or callable(
                getattr(run.engine, "partition_executor", None)
            ):
                # An incremental read (or a full one that compares with the committed
                # cache) is read in the run's own process, where its cache is.
                return False
        partitions = plan_partitions(run)
        if len(partitions) == 1:
            run.partition = partitions[0]
            return False
        if incremental.enabled:
            save_start(spool_dir, run.source.name, incremental.state, incremental.reason)
        store.save_plan(spool_id, partitions)
        rows = store.plan(spool_id)
        # The plan makes the version resumable: done partitions are never read again.
        private_dir(spool_dir)
        run.ledger.mark_extraction_done(run.summary.run_id, 0, 0, 0)
    run.resumable = True
    todo = [row.index for row in rows if row.status != "done"]
    executor = choose_executor(run, len(todo))
    done = len(rows) - len(todo)
    log.info(
        "%s: %d partitions%s; %s",
        run.source.name,
        len(rows),
        f" ({done} done before)" if done else "",
        f"{executor.name} ({getattr(executor, 'processes', 1)} at once)",
    )
    job = PartitionJob(
        source=run.source.name,
        run_id=run.summary.run_id,
        spool_id=spool_id,
        spool_dir=spool_dir,
        version_id=run.summary.version_id or "",
        concurrency=run.options.concurrency or run.engine.config.engine.concurrency,
        # A spool planned before the source became incremental has no start file: its
        # partitions read as planned and nothing is staged (the next run reads everything).
        full_read_state=incremental.enabled and has_start(spool_dir),
    )
    ticker = _Ticker(run, store, spool_id)
    loader = CacheRowsLoader(run, store, spool_id, spool_dir) if job.full_read_state else None
    with phase(run.ledger, run.summary.run_id, "import"):
        ticker.start()
        try:
            if loader is not None:
                loader.start()  # loads each partition's cache rows as soon as it is done
            executor.execute(job, todo, store, run.stop)
        except SourcePaused as exc:
            run.paused = exc.reason
        finally:
            ticker.close()
            if loader is not None:
                loader.stop()
    rows = store.plan(spool_id)
    if run.paused is not None:
        end_partitions_paused(run, spool_id, rows)
        return True
    if run.stop.is_set():
        raise run.halted()
    unfinished = [row for row in rows if row.status != "done"]
    if unfinished:
        first = unfinished[0]
        raise RunFailed(f"partition {first.label}: {first.error or 'not read'}")
    _add_up(run, store, spool_id, rows)
    if loader is not None:
        stage_partitions(run, spool_dir, rows, loader)
    run.ledger.mark_extraction_done(
        run.summary.run_id, run.summary.read, run.quarantine.count, run.duplicates.count
    )
    run.check_quarantine_limit()
    return True


def choose_executor(run: Run, partitions: int) -> PartitionExecutor:
    """The process pool when more than one process is asked for and a fresh process can
    rebuild everything the run uses (plugins from entry points, the ledger in its default
    file); else this process, one partition after the other. An engine that carries its
    own ``partition_executor`` (a distributed worker's) always uses that one."""
    engine = run.engine
    own = getattr(engine, "partition_executor", None)
    if callable(own):
        executor: PartitionExecutor = own(run)
        return executor
    wanted = run.options.processes or engine.config.engine.processes or os.cpu_count() or 1
    processes = min(wanted, partitions)
    if processes <= 1:
        return InProcessExecutor(engine)
    pm = engine.plugins.pm
    in_code = [name for name, _ in pm.list_name_plugin() if name not in engine.plugins.providers]
    default_ledger = isinstance(engine.ledger, SqliteRunLedger) and (
        engine.ledger.path == engine.home / "ledger.sqlite3"
    )
    if in_code or not default_ledger:
        log.info(
            "%s: reading partitions in this process: %s",
            run.source.name,
            f"plugins registered in code ({', '.join(in_code)})"
            if in_code
            else "the run ledger is not the default one",
        )
        return InProcessExecutor(engine)
    return LocalProcessExecutor(engine.config, engine.home, processes)


def _add_up(run: Run, store: PartitionStore, spool_id: str, rows: list[PartitionRow]) -> None:
    """The run's counts are its partitions' sums; its quarantine file, theirs together."""
    summary = run.summary
    summary.read = sum(row.read for row in rows)
    summary.batches = summary.imported = 0
    for row in rows:
        batches, imported = run.ledger.acked_totals(partition_spool_id(spool_id, row.index))
        summary.batches += batches
        summary.imported += imported
    summary.retries += sum(row.retries for row in rows)
    summary.throttled += sum(row.throttled for row in rows)
    summary.uploaded_bytes += sum(row.uploaded_bytes for row in rows)
    run.duplicates.count = sum(row.duplicates for row in rows)
    run.progress.extracted(summary.read, sum(row.quarantined for row in rows))
    run.progress.imported(summary.imported)
    run.quarantine.close()
    run.quarantine.count = _merge_quarantine(run, store, spool_id, rows)
    counted = sum(row.quarantined for row in rows)
    if run.quarantine.count != counted:
        log.warning(
            "%s: the partitions counted %d quarantined records; the run's quarantine file holds %d",
            run.source.name,
            counted,
            run.quarantine.count,
        )


def _merge_quarantine(
    run: Run, store: PartitionStore, spool_id: str, rows: list[PartitionRow]
) -> int:
    """Write the partitions' quarantine lines, as the store keeps them, into the run's
    quarantine file, line by line; return how many it wrote."""
    path = run.quarantine.path
    count = 0
    merged = None
    try:
        for row in rows:
            files = quarantine_paths(run.engine.home, run.source.name, spool_id, row.index)
            for line in store.quarantine_lines(spool_id, row.index, files):
                if merged is None:
                    private_dir(path.parent)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    merged = os.fdopen(fd, "wb")
                merged.write(line)
                count += 1
    finally:
        if merged is not None:
            merged.close()
            os.chmod(path, 0o600)
    return count


class _Ticker:
    """Shows the partitions' progress while they run: the totals on the run's progress,
    and every few seconds a log line naming each unfinished partition."""

    def __init__(self, run: Run, store: PartitionStore, spool_id: str) -> None:
        self.run = run
        self.store = store
        self.spool_id = spool_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="mpconnect-parts")
        self._last_log = time.monotonic()

    def start(self) -> None:
        """Begin."""
        self._thread.start()

    def close(self) -> None:
        """End (and show the final totals)."""
        self._stop.set()
        self._thread.join()
        self._tick(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._tick()
            except MpconnectError as exc:  # progress is never worth a failed run
                log.debug("partition progress: %s", exc)

    def _tick(self, final: bool = False) -> None:
        rows = self.store.plan(self.spool_id)
        read = sum(row.read for row in rows)
        quarantined = sum(row.quarantined for row in rows)
        imported = sum(
            self.run.ledger.acked_totals(partition_spool_id(self.spool_id, row.index))[1]
            for row in rows
        )
        self.run.progress.extracted(read, quarantined)
        self.run.progress.imported(imported)
        if final or time.monotonic() - self._last_log < LOG_INTERVAL:
            return
        self._last_log = time.monotonic()
        done = sum(1 for row in rows if row.status == "done")
        busy = ", ".join(
            f"{row.label} read {row.read:,}" for row in rows if row.status == "running"
        )
        progress_log.info(
            "%s: partitions %d/%d done; %s",
            self.run.source.name,
            done,
            len(rows),
            busy or "none running",
        )
