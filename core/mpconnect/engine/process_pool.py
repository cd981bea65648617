"""Executors: who runs the partitions of a run.

:class:`PartitionExecutor` is the interface: given a :class:`PartitionJob` and the
indexes of the partitions still to read, run :func:`run_partition` for each, somewhere,
and return once each is done or the run's stop is set. Results travel through the
partition store (:mod:`mpconnect.engine.partition_store`), never through return values,
so an executor on other machines (Celery) implements the same contract.

:class:`InProcessExecutor` reads them one after the other in this process;
:class:`LocalProcessExecutor` runs up to N at once, one fresh process each, and reads
again a partition whose process died. Processes are forked from a ``forkserver`` (a
single-threaded server started once, with mpconnect's modules imported: no thread or
connection of the run is inherited, and a process starts in milliseconds); where there
is none, they are spawned.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from multiprocessing.connection import wait as wait_for_processes
from pathlib import Path
from typing import Any

from mpconnect.config import Config
from mpconnect.engine.partition_run import PartitionJob, run_partition, worker_name
from mpconnect.engine.partition_store import PartitionRow, PartitionStore
from mpconnect.errors import RunFailed

log = logging.getLogger("mpconnect.engine")

#: How often a partition is started again after its process died.
MAX_ATTEMPTS = 3
#: Seconds a stopped process gets to reach its checkpoint before it is terminated.
STOP_GRACE = 30.0
#: What the forkserver imports once, so that each partition process starts at once.
PRELOAD = [
    "mpconnect.engine.lifecycle",
    "mpconnect.engine.process_pool",
    "mpconnect.plugins",
    "mpconnect.sinks.datasets",
    "mpconnect.sinks.ingestion",
    "mpconnect.sinks.embedded",
]


def _context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


class PartitionExecutor(ABC):
    """Runs the partitions of one run."""

    #: How logs and the run summary name it.
    name: str = "executor"

    @abstractmethod
    def execute(
        self, job: PartitionJob, indexes: list[int], store: PartitionStore, stop: threading.Event
    ) -> None:
        """Run partitions ``indexes`` of ``job``; each ends ``done`` or ``failed`` in
        ``store``. Return when all are done, or early (at a checkpoint) once ``stop`` is
        set; the caller reads the outcome from ``store``.

        :raises RunFailed: naming the partition, when one failed for good.
        """


class InProcessExecutor(PartitionExecutor):
    """Reads the partitions one after the other in this process (``--processes 1``).

    :param engine: the run's :class:`~mpconnect.engine.lifecycle.Engine`.
    """

    name = "in-process"

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def execute(
        self, job: PartitionJob, indexes: list[int], store: PartitionStore, stop: threading.Event
    ) -> None:
        """Read each partition in turn; the first failure ends the run."""
        for index in indexes:
            if stop.is_set():
                return
            run_partition(self.engine, job, index, stop, worker_name())


class LocalProcessExecutor(PartitionExecutor):
    """Up to ``processes`` partitions at once, each in its own spawned process that
    builds its own connector and sink client from ``config``.

    :param config: the configuration (the processes read the source and sink from it).
    :param home: the data directory (ledger, spool, quarantine).
    :param processes: how many at once.
    """

    name = "process pool"

    def __init__(self, config: Config, home: Path, processes: int) -> None:
        self.config = config
        self.home = home
        self.processes = processes

    def execute(
        self, job: PartitionJob, indexes: list[int], store: PartitionStore, stop: threading.Event
    ) -> None:
        """Start processes as slots free up; a process that died (killed, out of memory)
        leaves its partition running: it is started again, up to :data:`MAX_ATTEMPTS`."""
        context = _context()
        # A flag, not an Event: a killed process waiting on an Event deadlocks its set().
        child_stop = context.RawValue("b", 0)
        waiting = deque(indexes)
        running: dict[int, Any] = {}
        deaths: dict[int, int] = {}
        failure: RunFailed | None = None
        level = logging.getLogger().getEffectiveLevel()
        try:
            while (waiting or running) and failure is None and not stop.is_set():
                while waiting and len(running) < self.processes:
                    index = waiting.popleft()
                    process = context.Process(
                        target=_child,
                        args=(
                            self.config,
                            self.home,
                            job,
                            index,
                            child_stop,
                            os.getpid(),
                            level,
                            dict(os.environ),
                        ),
                        name=f"mpconnect-partition-{index}",
                        daemon=False,
                    )
                    process.start()
                    running[index] = process
                for index, process in list(running.items()):
                    if process.is_alive():
                        continue
                    process.join()
                    del running[index]
                    row = _row(store, job, index)
                    if row.status == "done":
                        continue
                    if row.status == "failed" or process.exitcode == 1:
                        failure = RunFailed(f"partition {row.label}: {row.error or 'failed'}")
                        break
                    deaths[index] = deaths.get(index, 0) + 1
                    if deaths[index] >= MAX_ATTEMPTS:
                        failure = RunFailed(
                            f"partition {row.label}: its process died {deaths[index]} times "
                            f"(last exit code {process.exitcode}); the next run reads it again"
                        )
                        break
                    log.warning(
                        "%s: partition %s: its process died (exit code %s); reading it again "
                        "from its start (acknowledged batches are not sent again)",
                        job.source,
                        row.label,
                        process.exitcode,
                    )
                    waiting.append(index)
                # Woken at once by a process that ends (its slot goes to the next
                # partition), else after a tenth of a second to look at the stop flag.
                wait_for_processes([p.sentinel for p in running.values()], timeout=0.1)
        finally:
            child_stop.value = 1
            for process in running.values():
                process.join(STOP_GRACE)
                if process.is_alive():
                    process.terminate()
                    process.join()
        if failure is not None:
            raise failure


def _row(store: PartitionStore, job: PartitionJob, index: int) -> PartitionRow:
    return store.plan(job.spool_id)[index]


def _alive(pid: int) -> bool:
    """True while process ``pid`` (the run's; a forkserver is a partition's parent)
    exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _child(
    config: Config,
    home: Path,
    job: PartitionJob,
    index: int,
    stop_request: Any,
    parent: int,
    level: int,
    environ: dict[str, str],
) -> None:
    """A partition process: take the run's environment (a forkserver's is the one it
    started with), load the plugins, build the engine, read the partition."""
    os.environ.clear()
    os.environ.update(environ)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def watch() -> None:
        # Stop at a checkpoint when the run stops, or when the parent is gone.
        while not stop_request.value and _alive(parent):
            time.sleep(0.25)
        stop.set()

    threading.Thread(target=watch, daemon=True, name="mpconnect-partition-stop").start()
    from mpconnect.engine.lifecycle import Engine
    from mpconnect.plugins import load_plugins

    try:
        engine = Engine(config, load_plugins(), home)
    except BaseException as exc:
        from mpconnect.engine.ledger import SqliteRunLedger
        from mpconnect.engine.partition_run import _describe
        from mpconnect.engine.partition_store import store_for

        store_for(SqliteRunLedger(home / "ledger.sqlite3")).fail(
            job.spool_id, index, f"its process could not start: {_describe(exc)}"
        )
        raise SystemExit(1) from None
    try:
        run_partition(engine, job, index, stop, worker_name())
    except BaseException as exc:  # recorded in the partition store by run_partition
        log.debug("partition %d failed: %s", index, exc)
        raise SystemExit(1) from None
