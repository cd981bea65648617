"""Incremental runs of the demo source: after every incremental run the published
snapshot is exactly the one a full run publishes at that moment (aggregates included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_support import make_config, make_engine

from mpconnect.engine import Engine, RunOptions
from mpconnect.store.datasets import DatasetStore


def demo_engine(tmp_path: Path, home: Path, **settings: Any) -> Engine:
    config = make_config(
        tmp_path,
        {
            "reviews": {
                "connector": "demo",
                "dataset_id": "REVIEWS",
                "settings": {"events": 600, "reviewers": 40, "changes": 0.05, **settings},
            }
        },
        mixpanel={"sink": "embedded", "store": str(home / "embedded.sqlite3")},
        engine={"concurrency": 1},
    )
    return make_engine(config, home)


def snapshot(home: Path) -> tuple[list[Any], list[Any]]:
    """The live version's events and people, in a stable order."""
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        live = store.live_version("REVIEWS")
        assert live is not None
        events = sorted(store.iter_events("REVIEWS", live.version_id), key=repr)
        people = sorted(store.iter_people("REVIEWS", live.version_id), key=repr)
    finally:
        store.close()
    return events, people


def full_snapshot(tmp_path: Path, generation: int) -> tuple[list[Any], list[Any]]:
    """What a full run publishes when the source is at ``generation``."""
    home = tmp_path / f"full-{generation}"
    engine = demo_engine(tmp_path, home, generation=generation)
    summary = engine.run("reviews")
    assert summary.sync == "full"
    return snapshot(home)


def test_incremental_runs_publish_exactly_what_a_full_run_would(tmp_path: Path, home: Path) -> None:
    engine = demo_engine(tmp_path, home)
    first = engine.run("reviews")
    assert (first.status, first.sync, first.sync_reason) == (
        "succeeded",
        "full",
        "first run: no state yet",
    )
    assert snapshot(home) == full_snapshot(tmp_path, 0)
    for generation in (1, 2, 3):
        summary = engine.run("reviews")
        assert summary.status == "succeeded" and summary.sync == "incremental"
        counts = summary.objects or {}
        # 5% of 600 reviews touched: 10 updated, 10 deleted, 10 new; some reviewers too
        assert counts["deleted"] == 10
        assert 20 <= counts["read"] < 60
        assert counts["cached"] > 500
        assert "incremental run: read" in summary.describe()
        events, people = snapshot(home)
        assert (events, people) == full_snapshot(tmp_path, generation)
        assert len(events) == 600  # as many new reviews as deleted ones
    aggregates = [p for p in people if "$set" in p and "reviews_written" in p["$set"]]
    assert sum(p["$set"]["reviews_written"] for p in aggregates) == len(events)


def test_full_refresh_reads_everything_and_gives_the_same_snapshot(
    tmp_path: Path, home: Path
) -> None:
    engine = demo_engine(tmp_path, home)
    engine.run("reviews")
    engine.run("reviews")
    refreshed = engine.run("reviews", RunOptions(full_refresh=True))
    assert (refreshed.sync, refreshed.sync_reason) == ("full", "--full-refresh given")
    assert "full run (--full-refresh given)" in refreshed.describe()
    assert snapshot(home) == full_snapshot(tmp_path, 2)
    after = engine.run("reviews")
    assert after.sync == "incremental"
    assert snapshot(home) == full_snapshot(tmp_path, 3)


def test_a_state_older_than_the_sources_retention_reads_everything_and_says_so(
    tmp_path: Path, home: Path
) -> None:
    demo_engine(tmp_path, home, generation=0).run("reviews")
    summary = demo_engine(tmp_path, home, generation=3, retention=2).run("reviews")
    assert summary.sync == "full"
    assert "older than the 2 generations" in (summary.sync_reason or "")
    assert "full run (the state is at generation 0" in summary.describe()
    assert snapshot(home) == full_snapshot(tmp_path, 3)


@pytest.mark.parametrize("damage", ["cache", "state"])
def test_a_damaged_or_missing_cache_or_state_is_said_and_a_full_read_rebuilds_it(
    tmp_path: Path, home: Path, damage: str
) -> None:
    engine = demo_engine(tmp_path, home)
    engine.run("reviews")
    path = home / "cache" / "reviews.sqlite3" if damage == "cache" else home / "state.sqlite3"
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    engine = demo_engine(tmp_path, home)
    summary = engine.run("reviews")
    assert summary.status == "succeeded" and summary.sync == "full"
    assert "could not be read" in (summary.sync_reason or "")
    assert "reading everything" in (summary.sync_reason or "")
    assert list(path.parent.glob(path.name + ".damaged-*"))
    # a lost state is a lost cursor: the demo source starts again from generation 0
    generation = 1 if damage == "cache" else 0
    assert snapshot(home) == full_snapshot(tmp_path, generation)
    assert engine.run("reviews").sync == "incremental"
    assert snapshot(home) == full_snapshot(tmp_path, generation + 1)


def test_a_missing_cache_reads_everything(tmp_path: Path, home: Path) -> None:
    engine = demo_engine(tmp_path, home)
    engine.run("reviews")
    for path in (home / "cache").iterdir():
        path.unlink()
    summary = demo_engine(tmp_path, home).run("reviews")
    assert summary.sync == "full"
    assert "cache is missing" in (summary.sync_reason or "")
    assert snapshot(home) == full_snapshot(tmp_path, 1)


def test_sync_full_keeps_no_cache(tmp_path: Path, home: Path) -> None:
    config = make_config(
        tmp_path,
        {"reviews": {"connector": "demo", "dataset_id": "REVIEWS", "sync": "full"}},
        mixpanel={"sink": "embedded", "store": str(home / "embedded.sqlite3")},
    )
    summary = make_engine(config, home).run("reviews")
    assert summary.sync == "full" and summary.sync_reason == 'sources.reviews.sync = "full"'
    assert not (home / "cache").exists()
