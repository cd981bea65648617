"""A full read's write path in the SQLite source-object cache: its rows go to a fresh table
of their own (no index while loading), indexed at stage and renamed to ``objects`` at
commit. A run killed anywhere before the commit leaves the previous cache as it was, and
the next run publishes exactly what a full run would."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import make_config, make_engine
from test_incremental_demo import full_snapshot, snapshot

from mpconnect.engine.cached_records import encode
from mpconnect.engine.object_cache import CacheRow, SqliteObjectCache
from mpconnect.engine.object_cache_load import fresh_table
from mpconnect.records import Event


def _row(object_id: str, seq: int, rating: int) -> CacheRow:
    kind, data, digest = encode(Event("Review", "u1", 1707349506, object_id, {"rating": rating}))
    return CacheRow("reviews", object_id, seq, kind, digest, data)


def _schema(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Tables and indexes of the file: ``{name: [(type, sql)]}``."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT tbl_name, type, sql FROM sqlite_schema").fetchall()
    finally:
        db.close()
    schema: dict[str, list[tuple[str, str]]] = {}
    for table, kind, sql in rows:
        schema.setdefault(table, []).append((kind, sql or ""))
    return schema


def _committed_full(cache: SqliteObjectCache, spool_id: str, rows: list[CacheRow]) -> None:
    cache.begin(spool_id, True, "embedded:REVIEWS")
    cache.put(spool_id, rows)
    cache.stage(spool_id)
    assert cache.commit(spool_id)


def test_a_full_read_loads_a_fresh_unindexed_table_and_leaves_objects_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reviews.sqlite3"
    cache = SqliteObjectCache(path)
    _committed_full(cache, "run-1", [_row("r1", 1, 5), _row("r2", 2, 7)])
    cache.begin("run-2", True, "embedded:REVIEWS")
    cache.put("run-2", [_row("r1", 1, 9), _row("r3", 2, 1)])

    table = fresh_table("run-2")
    schema = _schema(path)
    assert [kind for kind, _ in schema[table]] == ["table"]  # no index while loading
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    assert columns == ["stream", "object_id", "seq", "kind", "hash", "data"]
    stored = db.execute(
        f"SELECT stream, object_id, seq, kind, typeof(hash), typeof(data) FROM {table}"
    ).fetchall()
    db.close()
    assert stored == [
        ("reviews", "r1", 1, "e", "blob", "blob"),
        ("reviews", "r3", 2, "e", "blob", "blob"),
    ]
    # the committed snapshot is untouched and readable from another handle
    other = SqliteObjectCache(path)
    assert other.exists() and other.stats()["objects"] == 2
    assert [r.object_id for r in other.committed("reviews", "r1")] == ["r1"]
    assert other.known("reviews", "r1", _row("r1", 1, 5).hash)
    assert not other.known("reviews", "r1", _row("r1", 1, 9).hash)
    other.close()
    cache.close()


def test_stage_indexes_the_fresh_table_and_commit_renames_it_to_objects(tmp_path: Path) -> None:
    path = tmp_path / "reviews.sqlite3"
    cache = SqliteObjectCache(path)
    _committed_full(cache, "run-1", [_row("r1", 1, 5), _row("r2", 2, 7)])
    cache.begin("run-2", True, "embedded:REVIEWS")
    cache.put("run-2", [_row("r1", 1, 9), _row("r3", 2, 1)])
    cache.stage("run-2")

    table = fresh_table("run-2")
    indexes = [sql for kind, sql in _schema(path)[table] if kind == "index"]
    assert indexes == [f"CREATE UNIQUE INDEX {table}_key ON {table} (stream, object_id, seq)"]
    assert cache.counts("run-2") == {"read": 2, "changed": 2, "deleted": 0, "cached": 0}
    assert cache.commit("run-2") is True
    assert cache.commit("run-2") is False

    schema = _schema(path)
    assert table not in schema
    assert [kind for kind, _ in schema["objects"]] == ["table", "index"]
    again = SqliteObjectCache(path)
    assert again.stats() == {"objects": 2, "records": 2, "pending": 0}
    assert again.known("reviews", "r1", _row("r1", 1, 9).hash)
    assert again.committed("reviews", "r2") == []

    # an incremental read on top of the renamed table replaces, deletes and keeps
    again.begin("run-3", False, "embedded:REVIEWS")
    again.put("run-3", [_row("r1", 1, 2)])
    again.delete("run-3", "reviews", "r3")
    again.stage("run-3")
    assert again.counts("run-3") == {"read": 1, "changed": 1, "deleted": 1, "cached": 0}
    assert again.commit("run-3")
    assert [(r.object_id, r.hash) for r in again.committed("reviews", "r1")] == [
        ("r1", _row("r1", 1, 2).hash)
    ]
    assert again.stats() == {"objects": 1, "records": 1, "pending": 0}
    again.close()
    cache.close()


def test_rows_sent_twice_keep_the_last_one(tmp_path: Path) -> None:
    cache = SqliteObjectCache(tmp_path / "reviews.sqlite3")
    cache.begin("run-1", True)
    cache.put("run-1", [_row("r1", 1, 5), _row("r2", 2, 7)])
    cache.put("run-1", [_row("r2", 2, 8)])  # a chunk written again
    cache.stage("run-1")
    assert cache.commit("run-1")
    assert [r.hash for r in cache.committed("reviews", "r2")] == [_row("r2", 2, 8).hash]
    assert cache.stats() == {"objects": 2, "records": 2, "pending": 0}
    cache.close()


def test_the_next_extraction_drops_an_abandoned_fresh_table(tmp_path: Path) -> None:
    path = tmp_path / "reviews.sqlite3"
    cache = SqliteObjectCache(path)
    cache.begin("run-1", True)
    cache.put("run-1", [_row("r1", 1, 5)])
    assert cache.stats()["pending"] == 1
    cache.close()
    cache = SqliteObjectCache(path)  # as the next run opens it
    cache.begin("run-2", False)
    assert fresh_table("run-1") not in _schema(path)
    assert cache.stats() == {"objects": 0, "records": 0, "pending": 0}
    assert not cache.exists()
    cache.close()


_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from mpconnect.config import parse_config
from mpconnect.engine import Engine, RunOptions
from mpconnect.engine.object_cache import SqliteObjectCache
from mpconnect.plugins import load_plugins

home, where = Path(sys.argv[1]), sys.argv[2]
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
setattr(SqliteObjectCache, where, killed)
config = parse_config(
    {
        "mixpanel": {"sink": "embedded", "store": str(home / "embedded.sqlite3")},
        "engine": {"concurrency": 1},
        "sources": {"reviews": {"connector": "demo", "dataset_id": "REVIEWS", "settings":
            {"events": 600, "reviewers": 40, "changes": 0.05}}},
    },
    home.parent / "mpconnect.toml",
)
Engine(config, load_plugins(()), home).run("reviews", RunOptions(full_refresh=True))
"""


@pytest.mark.parametrize(
    ("where", "indexed"),
    [("counts", False), ("commit", True)],
    ids=["killed-after-loading", "killed-after-staging"],
)
def test_a_run_killed_before_the_commit_leaves_the_old_cache_and_the_next_run_is_right(
    tmp_path: Path, home: Path, where: str, indexed: bool
) -> None:
    config = make_config(
        tmp_path,
        {
            "reviews": {
                "connector": "demo",
                "dataset_id": "REVIEWS",
                "settings": {"events": 600, "reviewers": 40, "changes": 0.05},
            }
        },
        mixpanel={"sink": "embedded", "store": str(home / "embedded.sqlite3")},
        engine={"concurrency": 1},
    )
    assert make_engine(config, home).run("reviews").sync == "full"
    path = home / "cache" / "reviews.sqlite3"
    before = SqliteObjectCache(path)
    committed = before.stats()
    before.close()

    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(home), where],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    fresh = [name for name in _schema(path) if name.startswith("fresh_")]
    assert len(fresh) == 1
    assert any(kind == "index" for kind, _ in _schema(path)[fresh[0]]) is indexed
    after = SqliteObjectCache(path)
    assert after.exists() and after.stats()["objects"] == committed["objects"]
    after.close()

    summary = make_engine(config, home).run("reviews")
    assert (summary.status, summary.sync) == ("succeeded", "incremental")
    assert snapshot(home) == full_snapshot(tmp_path, 1)
    assert not [name for name in _schema(path) if name.startswith("fresh_")]
    assert make_engine(config, home).run("reviews").sync == "incremental"
    assert snapshot(home) == full_snapshot(tmp_path, 2)
