"""The status of every worker's runs, read from the shared PostgreSQL database.

With ``[distributed]`` configured, every worker, scheduler and ``mpconnect run`` writes
its runs to the shared ledger (:class:`~mpconnect.distributed.ledger.PostgresRunLedger`)
and its dispatches to the ``dispatches`` table. :class:`SharedStatusSource` answers the
status pages from there, so ``mpconnect ui`` on any machine shows all of them, with the
worker that ran each run and how many attempts its dispatch took. A run's quarantine
file stays on the machine that ran it: the page shows its counts everywhere and its
records on that machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mpconnect.config import Config
from mpconnect.distributed.connection import Database
from mpconnect.distributed.ledger import PostgresRunLedger
from mpconnect.plugins import Plugins
from mpconnect.redact import redact
from mpconnect.ui import ledger_queries
from mpconnect.ui.status import LocalStatusSource

#: The dispatch fields the run page shows.
DISPATCH_FIELDS = (
    "dispatch_id",
    "state",
    "worker",
    "attempts",
    "requested_by",
    "requested_at",
    "started_at",
    "ended_at",
    "error",
)


class SharedStatusSource(LocalStatusSource):
    """The status of the runs in the shared database at ``database`` (a URL).

    :param config: returns the configuration in use.
    :param plugins: the loaded plugins (to open the sink for the datasets page).
    :param home: this machine's data directory (quarantine files of runs made here, the
        rate-limit buckets when they are not in Redis).
    """

    MARK = "%s"

    def __init__(
        self,
        config: Callable[[], Config],
        plugins: Plugins,
        home: Path,
        database: str,
        next_run: Callable[[str], datetime | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = Database(database)
        super().__init__(
            config,
            plugins,
            home,
            ledger=PostgresRunLedger(self.database),
            next_run=next_run,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"SharedStatusSource({self.database!r})"

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        return self.database.fetchall(sql, params)

    def _has_table(self, name: str) -> bool:
        row = self.database.fetchone("SELECT to_regclass(%s) IS NOT NULL AS found", (name,))
        return bool(row and row["found"])

    def run_totals(self) -> dict[str, Any]:
        """Per-source totals in a few grouped queries."""
        return ledger_queries.run_totals(self._fetch, self.MARK)

    def _dispatch(self, run_id: str) -> dict[str, Any] | None:
        """The latest dispatch carried out by the run, if a worker ran it."""
        row = self.database.fetchone(
            "SELECT * FROM dispatches WHERE run_id = %s ORDER BY requested_at DESC LIMIT 1",
            (run_id,),
        )
        if row is None:
            return None
        shown = {name: row.get(name) for name in DISPATCH_FIELDS}
        if shown["error"]:
            shown["error"] = redact(str(shown["error"]))
        return shown

    def close(self) -> None:
        """Close the database connections."""
        self.database.close()
