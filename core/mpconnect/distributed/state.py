"""The incremental state in the shared PostgreSQL database: the :class:`StateStore` of
every worker, and of ``mpconnect run``/``schedule``/``state`` when ``[distributed]`` is
configured, so that a source's next run continues from its state on whichever machine
it runs.

The same semantics as :class:`~mpconnect.engine.state.SqliteStateStore`: a run stages
the state its extraction ended with under its spool id; the commit, once the run's data
is safe, makes it the committed one and drops every staged state of the source, in one
transaction (idempotent: a second commit finds nothing staged). States are kept as JSON
text, readable with ``psql``.

"Damaged", here, is a committed state that is not a JSON object (edited by hand, say):
:meth:`load` raises :class:`~mpconnect.engine.state.StateDamaged` and the run reads
everything, as with a damaged SQLite file. A database that cannot be reached is *not*
damage: it is a :class:`~mpconnect.distributed.connection.SharedDatabaseError` and the
run fails (nothing committed; the next run resumes), never a silent full read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import psycopg

from mpconnect.distributed.connection import Database
from mpconnect.distributed.schema import ensure_migrated
from mpconnect.engine.object_cache import ObjectCache
from mpconnect.engine.state import SourceState, StateDamaged, StateStore
from mpconnect.errors import MpconnectError


class PostgresStateStore(StateStore):
    """Sources' states in the shared database (tables ``source_state``, ``staged_state``).

    :param database: the shared database: a URL (the store opens and closes its own
        connections) or a :class:`Database` whose owner closes it.
    """

    #: Never set: a PostgreSQL database is not moved aside (see the module's docstring).
    damaged: str | None = None

    def __init__(self, database: Database | str) -> None:
        self._owned = isinstance(database, str)
        self.database = Database(database) if isinstance(database, str) else database
        ensure_migrated(self.database)

    def __repr__(self) -> str:
        return f"PostgresStateStore({self.database!r})"

    def load(self, source: str) -> SourceState | None:
        """The committed state, or None (see :meth:`StateStore.load`)."""
        row = self.database.fetchone(
            "SELECT state, run_id, committed_at, last_run FROM source_state WHERE source = %s",
            (source,),
        )
        if row is None:
            return None
        try:
            state = orjson.loads(row["state"])
            last_run = orjson.loads(row["last_run"]) if row["last_run"] else {}
        except orjson.JSONDecodeError as exc:
            raise StateDamaged(f"the state of source {source!r} is damaged: {exc}") from None
        if not isinstance(state, dict):
            raise StateDamaged(f"the state of source {source!r} is damaged: not an object")
        return SourceState(
            state,
            row["run_id"],
            float(row["committed_at"]),
            last_run if isinstance(last_run, dict) else {},
        )

    def stage(
        self, source: str, spool_id: str, state: dict[str, Any], last_run: dict[str, Any]
    ) -> None:
        """Keep an extraction's state, uncommitted."""
        try:
            data = orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError as exc:
            raise MpconnectError(
                f"source {source!r}: the connector's ctx.state cannot be stored: {exc}; keep "
                "only JSON values (strings, numbers, booleans, lists, dicts) in it"
            ) from None
        self.database.execute(
            "INSERT INTO staged_state (source, spool_id, state, last_run, staged_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source, spool_id) DO UPDATE SET "
            "state = excluded.state, last_run = excluded.last_run, staged_at = excluded.staged_at",
            (source, spool_id, data, orjson.dumps(last_run).decode(), time.time()),
        )

    def commit(self, source: str, spool_id: str, run_id: str) -> bool:
        """Commit the staged state of ``spool_id`` (idempotent; one transaction)."""

        def work(db: psycopg.Connection[Any]) -> bool:
            row = db.execute(
                "SELECT state, last_run FROM staged_state WHERE source = %s AND spool_id = %s "
                "FOR UPDATE",
                (source, spool_id),
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "INSERT INTO source_state (source, state, run_id, committed_at, last_run) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source) DO UPDATE SET "
                "state = excluded.state, run_id = excluded.run_id, "
                "committed_at = excluded.committed_at, last_run = excluded.last_run",
                (source, row["state"], run_id, time.time(), row["last_run"]),
            )
            db.execute("DELETE FROM staged_state WHERE source = %s", (source,))
            return True

        return self.database.transaction(work)

    def discard(self, source: str, keep: str | None = None) -> None:
        """Drop staged states other than ``keep``'s."""
        self.database.execute(
            "DELETE FROM staged_state WHERE source = %s AND spool_id IS DISTINCT FROM %s",
            (source, keep),
        )

    def reset(self, source: str) -> bool:
        """Forget the source's state (committed and staged)."""

        def work(db: psycopg.Connection[Any]) -> bool:
            had = db.execute("DELETE FROM source_state WHERE source = %s", (source,)).rowcount
            db.execute("DELETE FROM staged_state WHERE source = %s", (source,))
            return bool(had)

        return self.database.transaction(work)

    def close(self) -> None:
        """Close the store's connections (when it opened them)."""
        if self._owned:
            self.database.close()


def shared_incremental(database: Database | str) -> dict[str, Any]:
    """The ``state_store`` and ``cache_factory`` arguments of an
    :class:`~mpconnect.engine.Engine` whose incremental state and source-object caches
    live in the shared database."""
    from mpconnect.distributed.object_cache import PostgresObjectCache

    factory: Callable[[str], ObjectCache] = lambda source: PostgresObjectCache(  # noqa: E731
        database, source
    )
    return {"state_store": PostgresStateStore(database), "cache_factory": factory}
