"""Sending runs to the workers and waiting for them: ``mpconnect dispatch`` and the
distributed scheduler use :class:`Dispatcher`."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from mpconnect.config import Config
from mpconnect.distributed import dispatches
from mpconnect.distributed.app import RUN_SOURCE, distributed_settings, make_app
from mpconnect.distributed.connection import Database
from mpconnect.distributed.schema import migrate
from mpconnect.errors import MpconnectError
from mpconnect.redact import redact

log = logging.getLogger("mpconnect.distributed")


class BrokerError(MpconnectError):
    """The broker (Redis) could not take a message."""


class Dispatcher:
    """Records dispatches in the shared database and sends their messages to Redis."""

    def __init__(self, config: Config, database: Database | None = None) -> None:
        settings = distributed_settings(config)
        self.config = config
        self.database = database or Database(settings.database.get_secret_value())
        migrate(self.database)
        self.app = make_app(config)

    def close(self) -> None:
        """Close the database connections and the broker pool."""
        self.database.close()
        self.app.close()

    def dispatch(self, source: str, requested_by: str, due: str | None = None) -> str | None:
        """Enqueue a run of ``source``; return the dispatch id (None: ``due`` was already
        dispatched by another scheduler).

        :raises BrokerError: when Redis cannot take the message; the dispatch is then
            recorded as failed, so nothing waits for it.
        """
        dispatch_id = dispatches.new_dispatch(self.database, source, requested_by, due)
        if dispatch_id is None:
            return None
        try:
            self.app.send_task(
                RUN_SOURCE,
                args=[dispatch_id, source],
                task_id=dispatch_id,
                retry=True,
                retry_policy={"max_retries": 5, "interval_start": 0.5, "interval_step": 1.0},
            )
        except Exception as exc:  # kombu's errors vary by transport
            error = (
                f"could not send the run of {source!r} to the broker "
                f"{redact(distributed_settings(self.config).broker.get_secret_value())}: "
                f"{redact(str(exc)) or type(exc).__name__}; check [distributed] broker "
                "(MPCONNECT_BROKER_URL) and that Redis is up"
            )
            dispatches.finish(self.database, dispatch_id, "failed", error=error)
            raise BrokerError(error) from None
        log.debug("%s: dispatched (%s)", source, dispatch_id)
        return dispatch_id

    def send_again(self, dispatch_id: str, source: str) -> None:
        """Send a dispatch's message again (the task is idempotent: a copy whose dispatch
        ended, or runs elsewhere, does nothing)."""
        self.app.send_task(RUN_SOURCE, args=[dispatch_id, source], task_id=dispatch_id)

    def rescue(self, only: set[str] | None = None) -> list[str]:
        """Send again the dispatches whose worker was lost (no heartbeat for ``[distributed]
        lease`` seconds and the source's lock free) or whose message may be lost (queued
        for longer than ten leases); return their ids. ``only``: just these dispatches."""
        from mpconnect.distributed.locks import PostgresSourceLock

        lease = distributed_settings(self.config).lease
        sent = []
        for row in dispatches.stale(self.database, lease, queued_for=10 * lease):
            if only is not None and row["dispatch_id"] not in only:
                continue
            if row["state"] == "running":
                if PostgresSourceLock(self.database.url, row["source"]).is_held():
                    continue  # its run is still going; only its heartbeat is late
                log.warning(
                    "%s: dispatch %s lost its worker %s (no heartbeat for %.0f s); sending "
                    "it again: the run resumes",
                    row["source"],
                    row["dispatch_id"],
                    row["worker"],
                    lease,
                )
            else:
                log.warning(
                    "%s: dispatch %s still queued after %.0f s; sending its message again",
                    row["source"],
                    row["dispatch_id"],
                    10 * lease,
                )
            dispatches.beat(self.database, row["dispatch_id"])  # one rescue per lease
            if row["state"] == "queued":
                dispatches.requeued(self.database, row["dispatch_id"])
            try:
                self.send_again(row["dispatch_id"], row["source"])
            except Exception as exc:
                log.error(
                    "could not send dispatch %s again: %s", row["dispatch_id"], redact(str(exc))
                )
                continue
            sent.append(row["dispatch_id"])
        return sent

    def wait(
        self,
        dispatch_ids: list[str],
        *,
        poll: float = 0.5,
        stop: threading.Event | None = None,
        on_end: Any = None,
    ) -> list[dict[str, Any]]:
        """Block until every dispatch ended (or ``stop`` is set); return their rows.

        :param on_end: called with each row as its dispatch ends.
        """
        waiting = set(dispatch_ids)
        rows: list[dict[str, Any]] = []
        rescue_every = distributed_settings(self.config).lease / 3
        next_rescue = time.monotonic() + rescue_every
        while True:
            rows = dispatches.get(self.database, dispatch_ids)
            for row in rows:
                if row["dispatch_id"] in waiting and row["state"] in dispatches.ENDED:
                    waiting.discard(row["dispatch_id"])
                    if on_end is not None:
                        on_end(row)
            if not waiting or (stop is not None and stop.is_set()):
                return rows
            if time.monotonic() >= next_rescue:
                self.rescue(only=waiting)
                next_rescue = time.monotonic() + rescue_every
            if stop is not None:
                stop.wait(poll)
            else:
                time.sleep(poll)
