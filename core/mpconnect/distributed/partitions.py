"""Partitions on Celery: a distributed run reads its partitions on any worker.

The run's coordinating task (``run_source``, which holds the source's lock) creates the
version and records the plan as on one machine, then :class:`CeleryPartitionExecutor`
sends one ``run_partition`` task per partition still to read (JSON arguments: run id,
spool id, index; no secrets) and waits, polling the shared partition store (never
Celery's results), until every partition is done. Then the run publishes, waits live,
prunes and commits state exactly as on one machine.

While it waits, the coordinator reads pending partitions itself, claiming them like any
worker: it holds a worker slot anyway, and a single worker with ``--concurrency 1``
(whose only slot the coordinator takes) then still finishes the run. The partition tasks
left in the queue find their partitions done and do nothing.

A worker claims a partition before reading it and beats its lease while it reads. A
partition whose worker died stays ``running`` with an old heartbeat; after one
``[distributed] lease`` the coordinator sends its task again, and the next worker (or
the coordinator) reads it from its start: batches already acknowledged with the same
content are skipped, not sent twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from mpconnect.distributed.app import RUN_PARTITION, distributed_settings, make_app
from mpconnect.distributed.partition_store import PostgresPartitionStore
from mpconnect.engine.partition_pause import raise_if_paused
from mpconnect.engine.partition_run import PartitionJob, run_partition, worker_name
from mpconnect.engine.partition_store import PartitionStore
from mpconnect.engine.process_pool import MAX_ATTEMPTS, PartitionExecutor
from mpconnect.errors import MpconnectError, RunFailed
from mpconnect.paths import home_dir

log = logging.getLogger("mpconnect.worker")

#: Seconds between two looks at the partition store.
POLL = 0.5


@contextlib.contextmanager
def beating(
    store: PostgresPartitionStore, spool_id: str, index: int, worker: str, every: float
) -> Iterator[None]:
    """Beat the partition's lease every ``every`` seconds while the block runs."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            try:
                store.beat(spool_id, index, worker)
            except MpconnectError as exc:
                log.warning("heartbeat of partition %d not written: %s", index, exc)

    thread = threading.Thread(target=loop, daemon=True, name="mpconnect-partition-beat")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class CeleryPartitionExecutor(PartitionExecutor):
    """Runs a run's partitions as Celery tasks on every worker, and in this process.

    :param engine: the coordinating run's engine (PostgreSQL ledger).
    :param lease: seconds without a heartbeat after which a partition's worker is lost.
    """

    name = "celery"

    def __init__(self, engine: Any, lease: float) -> None:
        self.engine = engine
        self.lease = lease
        self.processes = "all workers"

    def execute(
        self, job: PartitionJob, indexes: list[int], store: PartitionStore, stop: threading.Event
    ) -> None:
        """Send the tasks, read pending partitions here, send again the lost ones; return
        when all are done (or ``stop`` is set).

        :raises RunFailed: naming a partition that failed, or was lost too often.
        :raises SourcePaused: when a partition's connector paused the run.
        """
        if not isinstance(store, PostgresPartitionStore):
            raise RunFailed("distributed partitions need the shared database's ledger")
        store.retry_failed(job.spool_id)
        app = make_app(self.engine.config)
        sent: dict[int, int] = {}
        last_sent: dict[int, float] = {}

        def send(index: int) -> None:
            app.send_task(RUN_PARTITION, args=[job.run_id, job.spool_id, index])
            sent[index] = sent.get(index, 0) + 1
            last_sent[index] = time.monotonic()

        try:
            for index in indexes:
                send(index)
            wanted = set(indexes)
            while not stop.is_set():
                rows = [row for row in store.plan(job.spool_id) if row.index in wanted]
                failed = [row for row in rows if row.status == "failed"]
                if failed:
                    raise_if_paused(failed[0])
                    raise RunFailed(f"partition {failed[0].label}: {failed[0].error or 'failed'}")
                if all(row.status == "done" for row in rows):
                    return
                for row in store.lost(job.spool_id, self.lease):
                    if row.index not in wanted:
                        continue
                    if time.monotonic() - last_sent.get(row.index, 0.0) < self.lease:
                        continue
                    if sent.get(row.index, 0) >= MAX_ATTEMPTS + 1:
                        raise RunFailed(
                            f"partition {row.label}: its worker was lost {MAX_ATTEMPTS} times; "
                            "the next run reads it again"
                        )
                    log.warning(
                        "%s: partition %s lost its worker %s (no heartbeat for %.0f s); "
                        "sending it again",
                        job.source,
                        row.label,
                        row.worker,
                        self.lease,
                    )
                    send(row.index)
                pending = [row.index for row in rows if row.status == "pending"]
                if pending and self._read_here(job, pending[0], store, stop):
                    continue
                stop.wait(POLL)
        finally:
            app.close()

    def _read_here(
        self, job: PartitionJob, index: int, store: PostgresPartitionStore, stop: threading.Event
    ) -> bool:
        """Claim partition ``index`` and read it in this process; False if taken."""
        worker = worker_name()
        if not store.claim(job.spool_id, index, worker, self.lease):
            return False
        log.info("%s: the coordinator reads partition %d itself", job.source, index)
        with beating(store, job.spool_id, index, worker, self.lease / 6):
            run_partition(self.engine, job, index, stop, worker)
        return True


def partition_task(config: Any, run_id: str, spool_id: str, index: int) -> dict[str, Any]:
    """The body of ``run_partition``: claim the partition and read it; a partition done,
    failed, or read elsewhere under a live lease, or of a run that ended, is left be."""
    from mpconnect.distributed.connection import Database
    from mpconnect.distributed.ledger import PostgresRunLedger
    from mpconnect.distributed.tasks import _loaded_plugins
    from mpconnect.engine import Engine

    settings = distributed_settings(config)
    database = Database(settings.database.get_secret_value())
    try:
        ledger = PostgresRunLedger(database)
        store = ledger.partition_store()
        run = ledger.get_run(run_id)
        if run is None or run["status"] != "running" or not run["version_id"]:
            log.info("partition %d of run %s: the run is not running; nothing to do", index, run_id)
            return {"state": "run not running"}
        worker = worker_name()
        if not store.claim(spool_id, index, worker, settings.lease):
            log.info(
                "%s: partition %d is done or read elsewhere; nothing to do", run["source"], index
            )
            return {"state": "taken"}
        engine = Engine(config, _loaded_plugins(), home_dir(), ledger=ledger)
        job = PartitionJob(
            source=run["source"],
            run_id=run_id,
            spool_id=spool_id,
            spool_dir=engine.home / "spool" / spool_id,
            version_id=run["version_id"],
            concurrency=config.engine.concurrency,
        )
        stop = threading.Event()
        try:
            with beating(store, spool_id, index, worker, settings.lease / 6):
                run_partition(engine, job, index, stop, worker)
        except Exception as exc:  # recorded in the partition store by run_partition
            log.warning("%s: partition %d failed: %s", run["source"], index, exc)
            return {"state": "failed"}
        log.info("%s: partition %d done", run["source"], index)
        return {"state": "done"}
    finally:
        database.close()
