"""The worker's task: ``mpconnect.run_source(dispatch_id, source)`` runs one whole source
with the engine, the shared ledger, the shared source lock, and the shared incremental
state and source-object cache (a source's next run continues from them on any worker).

Idempotent: the task first claims its dispatch (:func:`dispatches.claim`); a message
delivered again after the dispatch ended does nothing. A message delivered again while
its first delivery still runs (the lock is held for the same dispatch) leaves that one
alone. A run cut short (a killed worker, a lost lock) is resumed by the next delivery or
dispatch exactly as on one machine: same version, only unacknowledged batches sent.

A source in several partitions has them read by ``mpconnect.run_partition`` tasks on
every worker (:mod:`mpconnect.distributed.partitions`); each claims its partition the
same way and takes the same shared ledger.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery import Celery

from mpconnect.config import load_config
from mpconnect.distributed import dispatches
from mpconnect.distributed.app import RUN_PARTITION, RUN_SOURCE, distributed_settings
from mpconnect.distributed.connection import Database
from mpconnect.distributed.ledger import PostgresRunLedger
from mpconnect.distributed.locks import PostgresSourceLock
from mpconnect.distributed.state import shared_incremental
from mpconnect.engine import Engine, RunOptions
from mpconnect.engine.lock import SourceLock
from mpconnect.errors import MpconnectError, RunFailed, RunLocked
from mpconnect.paths import home_dir
from mpconnect.plugins import Plugins, load_plugins

log = logging.getLogger("mpconnect.worker")


_plugins: Plugins | None = None


def _loaded_plugins() -> Plugins:
    global _plugins
    if _plugins is None:
        _plugins = load_plugins()
        for error in _plugins.load_errors:
            log.warning("%s", error)
    return _plugins


def worker_name() -> str:
    """``host:pid`` of this process, as dispatches and logs name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def register_tasks(app: Celery) -> None:
    """Register mpconnect's tasks on ``app``."""

    @app.task(name=RUN_SOURCE, ignore_result=True)
    def run_source(dispatch_id: str, source: str) -> dict[str, Any]:
        """Run ``source`` for dispatch ``dispatch_id``; return how it ended."""
        return execute(dispatch_id, source)

    @app.task(name=RUN_PARTITION, ignore_result=True)
    def run_partition(run_id: str, spool_id: str, index: int) -> dict[str, Any]:
        """Read partition ``index`` of run ``run_id`` (see
        :mod:`mpconnect.distributed.partitions`); return how it ended."""
        from mpconnect.distributed.partitions import partition_task

        config = load_config(os.environ.get("MPCONNECT_CONFIG"))
        return partition_task(config, run_id, spool_id, int(index))


def execute(dispatch_id: str, source: str) -> dict[str, Any]:
    """The body of the task (the configuration is read afresh: ``$MPCONNECT_CONFIG``)."""
    config = load_config(os.environ.get("MPCONNECT_CONFIG"))
    url = distributed_settings(config).database.get_secret_value()
    database = Database(url)
    try:
        ledger = PostgresRunLedger(database)
        attempt = dispatches.claim(database, dispatch_id, worker_name())
        if attempt is None:
            log.info("%s: dispatch %s already ended; nothing to do", source, dispatch_id)
            return {"dispatch_id": dispatch_id, "state": "already ended"}
        if attempt > 1:
            log.warning(
                "%s: dispatch %s delivered again (attempt %d)", source, dispatch_id, attempt
            )
        return _run(config, database, ledger, dispatch_id, source)
    finally:
        database.close()


def _run(
    config: Any, database: Database, ledger: PostgresRunLedger, dispatch_id: str, source: str
) -> dict[str, Any]:
    url = database.url
    stop = threading.Event()
    locks: list[PostgresSourceLock] = []

    def make_lock(name: str, run_id: str) -> SourceLock:
        lock = PostgresSourceLock(url, name, run_id, dispatch_id)
        lock.set_on_lost(lambda reason: stop.set())
        locks.append(lock)
        dispatches.set_run(database, dispatch_id, run_id)
        return lock

    engine = Engine(
        config,
        _loaded_plugins(),
        home_dir(),
        ledger=ledger,
        lock_factory=make_lock,
        **shared_incremental(database),
    )
    from mpconnect.distributed.partitions import CeleryPartitionExecutor

    lease = distributed_settings(config).lease
    # Partitions go to every worker (this one included) instead of local processes.
    setattr(engine, "partition_executor", lambda run: CeleryPartitionExecutor(engine, lease))  # noqa: B010
    done = threading.Event()
    every = lease / 6
    beating = threading.Thread(
        target=_heartbeat,
        args=(database, dispatch_id, done, every),
        name="mpconnect-heartbeat",
    )
    beating.daemon = True
    beating.start()
    state, summary, error = "failed", None, None
    try:
        result = engine.run(source, RunOptions(stop=stop))
        state, summary, error = result.status, result.to_dict(), result.error
    except RunLocked as exc:
        holder = locks[-1].holder() if locks else {}
        if holder.get("dispatch_id") == dispatch_id:
            log.info("%s: dispatch %s is running elsewhere; leaving it be", source, dispatch_id)
            return {"dispatch_id": dispatch_id, "state": "running elsewhere"}
        state, error = "locked", str(exc)
    except RunFailed as exc:
        failed = getattr(exc, "summary", None)
        summary = failed.to_dict() if failed is not None else None
        state = "interrupted" if failed is not None and failed.status == "interrupted" else state
        error = str(exc)
    except MpconnectError as exc:
        error = str(exc)
    except Exception as exc:
        log.exception("%s: run raised", source)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        done.set()
    if state not in dispatches.ENDED:
        state = "failed"
    dispatches.finish(database, dispatch_id, state, summary, error)
    log.info(
        "%s: dispatch %s ended: %s%s", source, dispatch_id, state, f": {error}" if error else ""
    )
    return {"dispatch_id": dispatch_id, "state": state, "error": error}


def _heartbeat(database: Database, dispatch_id: str, done: threading.Event, every: float) -> None:
    while not done.wait(every):
        try:
            dispatches.beat(database, dispatch_id)
        except MpconnectError as exc:
            log.warning("heartbeat of dispatch %s not written: %s", dispatch_id, exc)
