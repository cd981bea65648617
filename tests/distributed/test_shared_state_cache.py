"""The incremental state store and the source-object cache: the same tests against the
SQLite ones of one machine and the PostgreSQL ones of many (the :class:`Backend` of
``test_shared_interfaces.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from test_shared_interfaces import Backend, make_backend

from mpconnect.config import Config, parse_config
from mpconnect.engine import Engine
from mpconnect.engine.object_cache import CacheRow, ObjectCache
from mpconnect.engine.state import StateDamaged
from mpconnect.errors import MpconnectError
from mpconnect.plugins import load_plugins
from mpconnect.store.datasets import DatasetStore


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, mpconnect_home: Path) -> Backend:
    """Each implementation in turn (PostgreSQL: a real server, an empty database)."""
    return make_backend(request, mpconnect_home)


def test_a_state_is_staged_then_committed_once(backend: Backend) -> None:
    store = backend.state()
    assert store.load("billing") is None
    store.stage("billing", "s1", {"cursor": "evt_9", "pages": [1, 2]}, {"sync": "full"})
    assert backend.state().load("billing") is None  # staged is not committed
    assert store.commit("billing", "s1", "run-1") is True
    assert store.commit("billing", "s1", "run-1") is False  # idempotent
    committed = backend.state().load("billing")
    assert committed is not None
    assert (committed.state, committed.run_id, committed.last_run) == (
        {"cursor": "evt_9", "pages": [1, 2]},
        "run-1",
        {"sync": "full"},
    )
    assert committed.committed_at > 0
    assert backend.state().load("other") is None


def test_abandoned_staged_states_are_dropped_and_reset_forgets(backend: Backend) -> None:
    store = backend.state()
    store.stage("billing", "s1", {"n": 1}, {})
    store.stage("billing", "s2", {"n": 2}, {})
    store.stage("other", "s9", {"n": 9}, {})
    store.discard("billing", keep="s2")
    assert store.commit("billing", "s1", "run-1") is False
    assert store.commit("billing", "s2", "run-2") is True
    assert backend.state().load("billing").state == {"n": 2}  # type: ignore[union-attr]
    store.stage("billing", "s3", {"n": 3}, {})
    store.discard("billing")
    assert store.commit("billing", "s3", "run-3") is False  # every staged one dropped
    assert store.commit("other", "s9", "run-9") is True  # another source's untouched
    assert store.reset("billing") is True
    assert backend.state().load("billing") is None
    assert store.reset("billing") is False
    assert backend.state().load("other") is not None


def test_a_state_that_is_not_json_is_refused_naming_the_source(backend: Backend) -> None:
    with pytest.raises(MpconnectError, match=r"source 'billing': the connector's ctx.state"):
        backend.state().stage("billing", "s1", {"when": object()}, {})


def test_a_damaged_committed_state_raises_state_damaged(backend: Backend) -> None:
    store = backend.state()
    store.stage("billing", "s1", {"n": 1}, {})
    store.commit("billing", "s1", "run-1")
    backend.write_state_text("billing", b"{not json")
    with pytest.raises(StateDamaged, match="the state of source 'billing' is damaged"):
        backend.state().load("billing")
    backend.write_state_text("billing", b"[1, 2]")
    with pytest.raises(StateDamaged, match="not an object"):
        backend.state().load("billing")


def _row(stream: str, object_id: str, seq: int, text: str, kind: str = "e") -> CacheRow:
    return CacheRow(stream, object_id, seq, kind, text.encode()[:16].ljust(16, b"."), text.encode())


def _full_read(cache: ObjectCache, spool_id: str = "s1") -> None:
    cache.begin(spool_id, True, "embedded:BILLING")
    cache.put(
        spool_id,
        [
            _row("charges", "ch_1", 1, "one"),
            _row("charges", "ch_1", 2, "one-b"),
            _row("charges", "ch_2", 3, "two"),
            _row("charges", "ch_3", 4, "three"),
            _row("customers", "cus_1", 5, "cust", kind="p"),
        ],
    )
    cache.stage(spool_id)


def test_a_full_read_is_committed_atomically_once(backend: Backend) -> None:
    cache = backend.cache()
    assert not cache.exists() and cache.target() is None
    _full_read(cache)
    assert cache.counts("s1") == {"read": 4, "changed": 4, "deleted": 0, "cached": 0}
    assert not backend.cache().exists()  # pending until committed
    assert cache.commit("s1") is True
    assert cache.commit("s1") is False  # idempotent
    again = backend.cache()
    assert again.exists() and again.target() == "embedded:BILLING"
    assert again.stats() == {"objects": 4, "records": 5, "pending": 0}
    assert [r.data for r in again.committed("charges", "ch_1")] == [b"one", b"one-b"]
    assert again.known("charges", "ch_2", _row("charges", "ch_2", 0, "two").hash)
    assert not again.known("charges", "ch_2", _row("charges", "ch_2", 0, "zwei").hash)
    assert not backend.cache("other").exists()  # one cache per source


def test_an_incremental_read_replaces_deletes_and_keeps_the_rest(backend: Backend) -> None:
    cache = backend.cache()
    _full_read(cache)
    cache.commit("s1")
    cache.begin("s2", False, "embedded:BILLING")
    assert cache.commit("s2") is False  # not staged yet
    cache.put("s2", [_row("charges", "ch_1", 10, "one-new"), _row("charges", "ch_4", 11, "four")])
    cache.delete("s2", "charges", "ch_3")
    cache.delete("s2", "charges", "ch_never")  # unknown to the cache: not counted
    unchanged = [(r.stream, r.object_id, r.seq) for r in cache.unchanged("s2")]
    assert unchanged == [("charges", "ch_2", 3), ("customers", "cus_1", 5)]
    assert [r.object_id for r in cache.unchanged("s2", stream="charges")] == ["ch_2"]
    assert [r.object_id for r in cache.unchanged("s2", kind="p")] == ["cus_1"]
    cache.stage("s2")
    assert cache.counts("s2") == {"read": 2, "changed": 2, "deleted": 1, "cached": 2}
    assert backend.cache().unchanged("s2").__next__().object_id == "ch_2"  # another handle
    assert cache.commit("s2") is True
    again = backend.cache()
    assert [r.data for r in again.committed("charges", "ch_1")] == [b"one-new"]
    assert again.committed("charges", "ch_3") == []
    assert again.stats() == {"objects": 4, "records": 4, "pending": 0}


def test_a_full_read_sees_no_unchanged_rows_and_replaces_everything(backend: Backend) -> None:
    cache = backend.cache()
    _full_read(cache)
    cache.commit("s1")
    cache.begin("s2", True, "datasets:BILLING")
    assert list(cache.unchanged("s2")) == []
    cache.put("s2", [_row("charges", "ch_9", 1, "nine")])
    cache.stage("s2")
    assert cache.counts("s2")["cached"] == 0
    cache.commit("s2")
    assert backend.cache().stats() == {"objects": 1, "records": 1, "pending": 0}
    assert backend.cache().target() == "datasets:BILLING"


def test_pending_rows_of_an_abandoned_extraction_are_dropped(backend: Backend) -> None:
    cache = backend.cache()
    _full_read(cache)
    cache.commit("s1")
    cache.begin("s2", False)
    cache.put("s2", [_row("charges", "ch_1", 10, "lost")])
    cache.stage("s2")
    other = backend.cache()
    other.begin("s3", False)  # the next run: s2 was never committed
    assert other.commit("s2") is False
    assert other.stats()["pending"] == 0
    assert [r.data for r in other.committed("charges", "ch_1")] == [b"one", b"one-b"]
    other.put("s3", [_row("charges", "ch_2", 12, "kept")])
    other.discard(keep="s3")
    assert other.stats()["pending"] == 1
    other.reset()
    assert not backend.cache().exists()
    assert backend.cache().stats() == {"objects": 0, "records": 0, "pending": 0}


def make_config(tmp_path: Path, sources: dict[str, Any], **tables: dict[str, Any]) -> Config:
    """A configuration as if read from ``tmp_path/mpconnect.toml``."""
    return parse_config({"sources": sources, **tables}, tmp_path / "mpconnect.toml")


def _rss_kb() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_large_cache_is_streamed_in_order_with_memory_flat(backend: Backend) -> None:
    cache = backend.cache()
    cache.begin("s1", True)
    rows, size = 40_000, 1500  # 60 MB of records
    for start in range(0, rows, 2000):
        cache.put(
            "s1",
            [
                CacheRow("reviews", f"r{i:06d}", i, "e", i.to_bytes(16, "big"), bytes(size))
                for i in range(start, start + 2000)
            ],
        )
    cache.stage("s1")
    cache.commit("s1")
    cache.begin("s2", False)
    before = peak = _rss_kb()
    count, last = 0, ""
    for row in backend.cache().unchanged("s2"):
        assert row.object_id > last and len(row.data) == size
        last = row.object_id
        count += 1
        if count % 1000 == 0:
            peak = max(peak, _rss_kb())
    assert count == rows
    assert peak - before < 25_000  # KB: never the 60 MB of the whole cache


def test_the_engine_reads_incrementally_the_same_on_either(
    backend: Backend, tmp_path: Path
) -> None:
    def engine(home: Path, **settings: Any) -> Engine:
        config = make_config(
            tmp_path,
            {
                "reviews": {
                    "connector": "demo",
                    "dataset_id": "REVIEWS",
                    "settings": {"events": 400, "reviewers": 30, "changes": 0.05, **settings},
                }
            },
            mixpanel={"sink": "embedded", "store": str(home / "embedded.sqlite3")},
            engine={"concurrency": 1},
        )
        return Engine(config, load_plugins(), home, **backend.engine_parts())  # type: ignore[arg-type]

    def snapshot(home: Path) -> tuple[list[Any], list[Any]]:
        store = DatasetStore(home / "embedded.sqlite3")
        try:
            live = store.live_version("REVIEWS")
            assert live is not None
            return (
                sorted(store.iter_events("REVIEWS", live.version_id), key=repr),
                sorted(store.iter_people("REVIEWS", live.version_id), key=repr),
            )
        finally:
            store.close()

    first = engine(backend.home).run("reviews")
    assert (first.status, first.sync) == ("succeeded", "full")
    second = engine(backend.home).run("reviews")  # a new engine: state from the store
    assert (second.status, second.sync) == ("succeeded", "incremental")
    assert (second.objects or {})["cached"] > 300
    full_home = tmp_path / "full"
    full = Engine(
        make_config(
            tmp_path,
            {
                "reviews": {
                    "connector": "demo",
                    "dataset_id": "REVIEWS",
                    "settings": {"events": 400, "reviewers": 30, "changes": 0.05, "generation": 1},
                }
            },
            mixpanel={"sink": "embedded", "store": str(full_home / "embedded.sqlite3")},
        ),
        load_plugins(),
        full_home,
    ).run("reviews")
    assert full.sync == "full"
    assert snapshot(backend.home) == snapshot(full_home)
    committed = backend.state().load("reviews")
    assert committed is not None and committed.state == {"generation": 1}
    assert committed.run_id == second.run_id


def test_a_stream_cut_by_a_lost_connection_goes_on_after_its_last_row(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    from mpconnect.distributed.object_cache import PostgresObjectCache

    cache = PostgresObjectCache(database_url, "billing")
    cache.begin("s1", True)
    cache.put("s1", [_row("charges", f"ch_{i:05d}", i, f"r{i}") for i in range(7000)])
    cache.stage("s1")
    cache.commit("s1")
    cache.begin("s2", False)
    seen = []
    for row in cache.unchanged("s2"):
        seen.append(row.object_id)
        if len(seen) == 10:  # the reader's session ends under it (a PostgreSQL restart)
            with psycopg.connect(database_url, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE '%%mpconnect_unchanged_%%' AND pid <> pg_backend_pid()"
                ).fetchall()
            assert killed == [(True,)]
    assert seen == [f"ch_{i:05d}" for i in range(7000)]  # each once, in order
    assert "shared database connection lost" in caplog.text
    cache.close()
