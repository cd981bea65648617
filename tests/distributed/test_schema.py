"""The shared schema: created by mpconnect, versioned, idempotent, safe when several
processes start at once, and never written to by an older mpconnect."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from mpconnect.distributed.connection import Database, SharedDatabaseError
from mpconnect.distributed.schema import MIGRATIONS, migrate


def _versions(url: str) -> list[int]:
    with psycopg.connect(url) as db:
        return [r[0] for r in db.execute("SELECT version FROM mpconnect_migrations ORDER BY 1")]


def test_migrations_apply_once_in_order(database_url: str) -> None:
    database = Database(database_url)
    assert migrate(database) == MIGRATIONS[-1][0]
    assert migrate(database) == MIGRATIONS[-1][0]  # again: nothing to do
    database.close()
    assert _versions(database_url) == [version for version, _, _ in MIGRATIONS]


def test_processes_migrating_at_once_take_turns(database_url: str) -> None:
    code = (
        "from mpconnect.distributed.connection import Database\n"
        "from mpconnect.distributed.schema import migrate\n"
        f"print(migrate(Database({database_url!r})))\n"
    )
    started = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in started]
    assert [p.returncode for p in started] == [0, 0, 0, 0]
    assert set(outputs) == {str(MIGRATIONS[-1][0])}
    assert _versions(database_url) == [version for version, _, _ in MIGRATIONS]


def test_a_database_of_a_newer_mpconnect_is_refused(database_url: str) -> None:
    database = Database(database_url)
    migrate(database)
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("INSERT INTO mpconnect_migrations (version, description) VALUES (999, 'x')")
    with pytest.raises(SharedDatabaseError, match=r"schema version 999.*upgrade mpconnect"):
        migrate(database)
    database.close()


def test_an_unreachable_database_is_named_without_its_password() -> None:
    database = Database("postgresql://loader:pw-never-shown@127.0.0.1:1/mpc", reconnect_for=0)
    with pytest.raises(SharedDatabaseError) as caught:
        migrate(database)
    message = str(caught.value)
    assert "cannot connect to the shared database postgresql://loader:***@127.0.0.1:1/mpc" in (
        message
    )
    assert "pw-never-shown" not in message
