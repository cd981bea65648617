"""One suite, two implementations: the SQLite ledger, file lock, state store and
source-object cache of one machine, the PostgreSQL ones of many. Each test runs against
both (the state and cache tests are in ``test_shared_state_cache.py``, on the same
:class:`Backend`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpconnect.config import parse_config
from mpconnect.engine import Engine
from mpconnect.engine.ledger import BatchRef, RunLedger, SqliteRunLedger
from mpconnect.engine.lock import FileSourceLock, SourceLock
from mpconnect.engine.object_cache import ObjectCache, SqliteObjectCache, cache_path
from mpconnect.engine.state import SqliteStateStore, StateStore
from mpconnect.engine.summary import RunSummary
from mpconnect.errors import RunLocked
from mpconnect.plugins import load_plugins


class Backend:
    """Makes one implementation's ledger, locks, state store and source-object caches."""

    def __init__(self, kind: str, home: Path, database_url: str | None) -> None:
        self.kind = kind
        self.home = home
        self.database_url = database_url

    def ledger(self) -> RunLedger:
        """A ledger (a second call: another handle on the same one)."""
        if self.database_url:
            from mpconnect.distributed.ledger import PostgresRunLedger

            return PostgresRunLedger(self.database_url)
        return SqliteRunLedger(self.home / "ledger.sqlite3")

    def lock(self, source: str, run_id: str = "") -> SourceLock:
        """The lock of ``source``, as the run ``run_id`` takes it."""
        if self.database_url:
            from mpconnect.distributed.locks import PostgresSourceLock

            return PostgresSourceLock(self.database_url, source, run_id)
        return FileSourceLock(self.home / "locks", source, run_id)

    def state(self) -> StateStore:
        """A state store (a second call: another handle on the same one)."""
        if self.database_url:
            from mpconnect.distributed.state import PostgresStateStore

            return PostgresStateStore(self.database_url)
        return SqliteStateStore(self.home / "state.sqlite3")

    def cache(self, source: str = "billing") -> ObjectCache:
        """The source-object cache of ``source`` (a second call: another handle)."""
        if self.database_url:
            from mpconnect.distributed.object_cache import PostgresObjectCache

            return PostgresObjectCache(self.database_url, source)
        return SqliteObjectCache(cache_path(self.home, source))

    def write_state_text(self, source: str, text: bytes) -> None:
        """Overwrite the committed state of ``source`` as a hand edit would."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as db:
                db.execute(
                    "UPDATE source_state SET state = %s WHERE source = %s",
                    (text.decode(), source),
                )
            return
        import sqlite3

        with sqlite3.connect(self.home / "state.sqlite3") as db:
            db.execute("UPDATE state SET state = ? WHERE source = ?", (text, source))
        db.close()

    def engine_parts(self) -> dict[str, object]:
        """The Engine arguments of this implementation (ledger, locks, state, caches)."""
        return {
            "ledger": self.ledger(),
            "lock_factory": self.lock,
            "state_store": self.state(),
            "cache_factory": self.cache,
        }

    def lock_code(self, source: str) -> str:
        """Python that takes the lock in another process and prints "held"."""
        if self.database_url:
            make = (
                "from mpconnect.distributed.locks import PostgresSourceLock\n"
                f"lock = PostgresSourceLock({self.database_url!r}, {source!r}, 'other-run')\n"
            )
        else:
            make = (
                "from pathlib import Path\nfrom mpconnect.engine.lock import FileSourceLock\n"
                f"lock = FileSourceLock(Path({str(self.home / 'locks')!r}), {source!r}, "
                "'other-run')\n"
            )
        return make + "lock.acquire()\nprint('held', flush=True)\nimport time\ntime.sleep(600)\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, mpconnect_home: Path) -> Backend:
    """Each implementation in turn (PostgreSQL: a real server, an empty database)."""
    return make_backend(request, mpconnect_home)


def make_backend(request: pytest.FixtureRequest, home: Path) -> Backend:
    """The backend ``request.param`` names, its SQLite files under ``home``."""
    url = request.getfixturevalue("database_url") if request.param == "postgresql" else None
    home.mkdir(parents=True, exist_ok=True)
    return Backend(request.param, home, url)


def _summary(run_id: str, source: str = "billing", **kw: object) -> RunSummary:
    return RunSummary(run_id=run_id, source=source, dataset_id="BILLING", sink="embedded", **kw)  # type: ignore[arg-type]


def test_a_run_is_recorded_updated_and_listed_newest_first(backend: Backend) -> None:
    ledger = backend.ledger()
    ledger.record_run(_summary("r1", started_at=100.0))
    ledger.record_run(_summary("r2", started_at=200.0, version_id="v2"))
    ledger.record_run(
        _summary("r1", started_at=100.0, status="succeeded", ended_at=160.5, read=10, imported=9)
    )
    rows = backend.ledger().list_runs("billing")
    assert [r["run_id"] for r in rows] == ["r2", "r1"]
    first = backend.ledger().get_run("r1")
    assert first is not None
    assert (first["status"], first["read"], first["imported"], first["duration"]) == (
        "succeeded",
        10,
        9,
        60.5,
    )
    assert ledger.get_run("nope") is None
    assert ledger.list_runs("other") == []


def test_batches_are_checkpointed_split_and_counted(backend: Backend, tmp_path: Path) -> None:
    ledger = backend.ledger()
    ledger.record_run(
        _summary("r1", version_id="v1", status="running"),
        spool_id="s1",
        spool_dir=tmp_path,
        host="h",
        target="t",
    )
    for seq in range(3):
        ledger.add_batch("s1", BatchRef(seq, "event", 100, tmp_path / f"{seq}.json"))
    ledger.ack_batch("s1", 0, 100)
    ledger.split_batch(
        "s1",
        1,
        [
            BatchRef(10, "event", 50, tmp_path / "10.json"),
            BatchRef(11, "event", 50, tmp_path / "11.json"),
        ],
    )
    again = backend.ledger()
    assert [b.seq for b in again.unacked_batches("s1")] == [2, 10, 11]
    assert again.acked_totals("s1") == (1, 100)
    assert [n for _, n in again.acks("s1")] == [100]
    running = again.list_runs("billing")[0]
    assert (running["batches"], running["imported"]) == (1, 100)  # what is acknowledged so far


def test_the_newest_unfinished_version_is_the_resume_point(
    backend: Backend, tmp_path: Path
) -> None:
    ledger = backend.ledger()
    ledger.record_run(
        _summary("r1", version_id="v1", status="failed", started_at=1.0),
        spool_id="s1",
        spool_dir=tmp_path / "s1",
        host="h1",
        resume_key="k",
    )
    ledger.mark_extraction_done("r1", read=30, quarantined=2, duplicates=1)
    point = backend.ledger().resume_point("billing")
    assert point is not None
    assert (point.version_id, point.spool_id, point.read, point.quarantined, point.duplicates) == (
        "v1",
        "s1",
        30,
        2,
        1,
    )
    assert (point.extraction_done, point.host, point.resume_key) == (True, "h1", "k")
    ledger.mark_published("r1")
    assert backend.ledger().resume_point("billing") is None


def test_versions_being_written_are_those_of_running_runs(backend: Backend) -> None:
    ledger = backend.ledger()
    ledger.record_run(_summary("r1", version_id="v1", status="running"))
    ledger.record_run(_summary("r2", version_id="v2", status="succeeded"))
    assert backend.ledger().versions_being_written("BILLING") == {"v1"}
    ledger.set_status("r1", "abandoned", "abandoned: --restart given")
    assert backend.ledger().versions_being_written("BILLING") == set()
    assert backend.ledger().get_run("r1")["error"] == "abandoned: --restart given"  # type: ignore[index]


def test_errors_are_stored_without_secrets(backend: Backend) -> None:
    ledger = backend.ledger()
    ledger.record_run(
        _summary("r1", status="failed", error="GET https://api?api_key=sk_live_abcdef123 failed")
    )
    ledger.set_status("r1", "failed", "postgresql://loader:hunter22@db:5432/x refused")
    row = backend.ledger().get_run("r1")
    assert row is not None
    assert "hunter22" not in row["error"]
    assert "***" in row["error"]


def test_phases_are_kept_in_the_order_they_began(backend: Backend) -> None:
    ledger = backend.ledger()
    ledger.record_phase("r1", "create", 1.0, 2.0, True)
    ledger.record_phase("r1", "extract", 2.0)
    ledger.record_phase("r1", "extract", 2.0, 5.0, False)
    assert [(p["phase"], p["ended_at"], p["ok"]) for p in backend.ledger().phases("r1")] == [
        ("create", 2.0, True),
        ("extract", 5.0, False),
    ]


def test_one_holder_at_a_time_named_to_the_next(backend: Backend) -> None:
    first = backend.lock("billing", "run-1")
    second = backend.lock("billing", "run-2")
    assert not second.is_held()
    first.acquire()
    try:
        assert second.is_held()
        with pytest.raises(
            RunLocked, match=r"source 'billing' is already running: pid \d+ .*run-1"
        ):
            second.acquire()
        other = backend.lock("other")
        other.acquire()  # another source is not blocked
        other.release()
    finally:
        first.release()
    assert not second.is_held()
    with second:
        assert first.is_held()


def test_a_holder_killed_with_kill_9_frees_the_lock(backend: Backend) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", backend.lock_code("billing")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match="other-run"):
            backend.lock("billing", "mine").acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = backend.lock("billing", "mine")
    for _ in range(100):  # the server notices the closed connection at once, or nearly
        try:
            lock.acquire()
            break
        except RunLocked:
            time.sleep(0.1)
    assert lock.is_held()
    lock.release()


@pytest.fixture
def demo_engine_config(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mpconnect.toml"
    path.write_text(
        textwrap.dedent(
            """
            [sources.small]
            connector = "demo"
            dataset_id = "SMALL"
            [sources.small.settings]
            events = 300
            """
        )
    )
    yield path


def test_the_engine_runs_the_same_on_either(backend: Backend, demo_engine_config: Path) -> None:
    import tomllib

    config = parse_config(tomllib.loads(demo_engine_config.read_text()), demo_engine_config)
    engine = Engine(
        config,
        load_plugins(),
        backend.home,
        ledger=backend.ledger(),
        lock_factory=backend.lock,
    )
    summary = engine.run("small")
    assert summary.status == "succeeded"
    row = backend.ledger().list_runs("small")[0]
    assert (row["status"], row["read"], row["imported"], row["published"]) == (
        "succeeded",
        summary.read,
        summary.imported,
        1,
    )
    assert summary.imported > 300  # events and the people they name
    assert not backend.lock("small").is_held()
