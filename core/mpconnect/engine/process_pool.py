"""Executors: who runs the partitions of a run.

:class:`PartitionExecutor` is the interface: given a :class:`PartitionJob` and the
indexes of the partitions still to read, run :func:`run_partition` for each, somewhere,
and return once each is done or the run's stop is set. Results travel through the
partition store (:mod:`mpconnect.engine.partition_store`), never through return values,
so an executor on other machines (Celery) implements the same contract.

:class:`InProcessExecutor` reads them one after the other in this process;
:class:`LocalProcessExecutor` starts up to N worker processes, each of which builds its
engine once and reads the partitions handed to it one at a time (over a pipe), and has a
partition whose worker died read again by a new one. Workers are forked from a
``forkserver`` (a single-threaded server started once, with mpconnect's modules
imported: no thread or connection of the run is inherited, and a process starts in
milliseconds); where there is none, they are spawned.
"""

from __future__ import annotations

import contextlib
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
from mpconnect.engine.partition_pause import raise_if_paused
from mpconnect.engine.partition_run import PartitionJob, run_partition, worker_name
from mpconnect.engine.partition_store import PartitionRow, PartitionStore
from mpconnect.errors import RunFailed

log = logging.getLogger("mpconnect.engine")

#: How often a partition is started again after its process died.
MAX_ATTEMPTS = 3
#: Seconds a stopped process gets to reach its checkpoint before it is terminated.
STOP_GRACE = 30.0
#: What the forkserver imports once, so that each worker process starts at once.
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
        :raises SourcePaused: when a partition's connector paused the run (no further
            partition is started; the running ones stop at their next checkpoint).
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
    """Up to ``processes`` worker processes, each building its engine from ``config``
    once, then reading the partitions handed to it one at a time (with a connector and
    sink client of their own); a worker that died is replaced and its partition read
    again.

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
        """Hand partitions to workers as they free up; a worker that died (killed, out of
        memory) leaves its partition running: it is read again by a new worker, up to
        :data:`MAX_ATTEMPTS` times."""
        context = _context()
        # A flag, not an Event: a killed process waiting on an Event deadlocks its set().
        child_stop = context.RawValue("b", 0)
        waiting = deque(indexes)
        workers: list[_Worker] = []
        deaths: dict[int, int] = {}
        level = logging.getLogger().getEffectiveLevel()

        def start_worker() -> _Worker:
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(
                    self.config,
                    self.home,
                    job,
                    theirs,
                    child_stop,
                    os.getpid(),
                    level,
                    dict(os.environ),
                ),
                name=f"mpconnect-partitions-{len(workers) + sum(deaths.values())}",
                daemon=False,
            )
            process.start()
            theirs.close()
            return _Worker(process, ours)

        try:
            while not stop.is_set():
                for worker in workers:
                    if worker.index is None and waiting:
                        worker.hand(waiting.popleft())
                while waiting and len(workers) < self.processes:
                    worker = start_worker()
                    workers.append(worker)
                    worker.hand(waiting.popleft())
                busy = [worker for worker in workers if worker.index is not None]
                if not busy:
                    return
                # Woken at once by a finished partition or a dead worker, else after a
                # tenth of a second to look at the stop flag.
                wait_for_processes(
                    [w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.1
                )
                for worker in busy:
                    index = worker.index
                    assert index is not None
                    finished = worker.finished()
                    if finished is None:
                        continue
                    if not finished:
                        workers.remove(worker)
                        worker.close()
                    outcome = self._outcome(store, job, index, worker, finished, deaths)
                    if outcome is not None:
                        waiting.append(outcome)
        finally:
            child_stop.value = 1
            for worker in workers:
                worker.close()

    @staticmethod
    def _outcome(
        store: PartitionStore,
        job: PartitionJob,
        index: int,
        worker: _Worker,
        finished: bool,
        deaths: dict[int, int],
    ) -> int | None:
        """What follows partition ``index``'s end: None when it is done; the index again
        when its worker died and it is to be read again.

        :raises RunFailed: when it failed, or its workers died too often.
        :raises SourcePaused: when its connector paused the run.
        """
        row = _row(store, job, index)
        if row.status == "done":
            return None
        exitcode = worker.process.exitcode
        if finished or row.status == "failed" or exitcode == 1:
            raise_if_paused(row)
            raise RunFailed(f"partition {row.label}: {row.error or 'failed'}")
        deaths[index] = deaths.get(index, 0) + 1
        if deaths[index] >= MAX_ATTEMPTS:
            raise RunFailed(
                f"partition {row.label}: its process died {deaths[index]} times "
                f"(last exit code {exitcode}); the next run reads it again"
            )
        log.warning(
            "%s: partition %s: its process died (exit code %s); reading it again "
            "from its start (acknowledged batches are not sent again)",
            job.source,
            row.label,
            exitcode,
        )
        return index


class _Worker:
    """The run's side of one worker process: its pipe and the partition it reads."""

    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.index: int | None = None

    def hand(self, index: int) -> None:
        """Give the worker partition ``index`` to read."""
        self.index = index
        with contextlib.suppress(OSError):  # it died: finished() tells
            self.conn.send(index)

    def finished(self) -> bool | None:
        """None while its partition is being read; True once the worker says it is done
        with it (the partition store says how), False when the worker died."""
        try:
            if not self.conn.poll():
                if self.process.is_alive():
                    return None
                if not self.conn.poll():
                    return False
            self.conn.recv()
        except (EOFError, OSError):
            return False
        self.index = None
        return True

    def close(self) -> None:
        """Tell the worker to end, wait :data:`STOP_GRACE` for it, else terminate it."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(STOP_GRACE)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()


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


def _worker(
    config: Config,
    home: Path,
    job: PartitionJob,
    conn: Any,
    stop_request: Any,
    parent: int,
    level: int,
    environ: dict[str, str],
) -> None:
    """A worker process: take the run's environment (a forkserver's is the one it
    started with), load the plugins and build the engine once, then read each partition
    the run hands it and say when it is done with it, until told to end (None) or the
    run stops. A failed partition (recorded in the partition store) ends the worker with
    exit code 1."""
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

    engine = None
    while not stop.is_set():
        try:
            index = conn.recv()
        except (EOFError, OSError):
            return
        if index is None:
            return
        if engine is None:
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
        conn.send(index)
