"""The full read of an incremental source, partitioned: a first run in a process pool
publishes, and commits as state and source-object cache, exactly what one process does;
the incremental runs after it stay exact; a partition killed mid-read is read again and
the commit is still right; partitions that leave different states stop the run, clearly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from engine_support import make_config, make_engine, wait_until

import mpconnect
from mpconnect.engine import RunOptions
from mpconnect.engine.partition_run import KILL_HOOK_ENV
from mpconnect.engine.summary import RunSummary
from mpconnect.errors import RunFailed
from mpconnect.store.datasets import DatasetStore

EVENTS = 30_000  # three blocks of the demo's generation
REVIEWERS = EVENTS // 10


def _run(
    tmp_path: Path,
    home: Path,
    *,
    processes: int = 2,
    partitions: int = 3,
    full_refresh: bool = False,
    **settings: Any,
) -> RunSummary:
    config = make_config(
        tmp_path,
        {
            "demo": {
                "connector": "demo",
                "dataset_id": "DEMO",
                "settings": {
                    "events": EVENTS,
                    "partitions": partitions,
                    "changes": 0.01,
                    **settings,
                },
            }
        },
    )
    options = RunOptions(processes=processes, full_refresh=full_refresh)
    return make_engine(config, home).run("demo", options)


def _snapshot(home: Path) -> tuple[list[Any], list[Any]]:
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        live = store.live_version("DEMO")
        assert live is not None
        events = sorted(store.iter_events("DEMO", live.version_id), key=repr)
        people = sorted(store.iter_people("DEMO", live.version_id), key=repr)
    finally:
        store.close()
    return events, people


def _state(home: Path) -> dict[str, Any]:
    db = sqlite3.connect(home / "state.sqlite3")
    try:
        rows = db.execute("SELECT state FROM state WHERE source = 'demo'").fetchall()
        staged = db.execute("SELECT count(*) FROM staged_state").fetchone()[0]
    finally:
        db.close()
    assert len(rows) == 1 and staged == 0

    state: dict[str, Any] = orjson.loads(rows[0][0])
    return state


def _cache(home: Path, with_seq: bool = True) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(home / "cache" / "demo.sqlite3")
    try:
        rows = db.execute(
            "SELECT stream, object_id, seq, kind, hash, data FROM objects "
            "ORDER BY stream, object_id, seq"
        ).fetchall()
        leftovers = db.execute(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name GLOB 'fresh_*'"
        ).fetchone()[0]
    finally:
        db.close()
    assert leftovers == 0
    return rows if with_seq else [row[:2] + row[3:] for row in rows]


def test_a_first_incremental_run_in_two_processes_commits_what_one_process_does(
    tmp_path: Path,
) -> None:
    pooled = _run(tmp_path, tmp_path / "pooled", processes=2)
    alone = _run(tmp_path, tmp_path / "alone", processes=1)
    whole = _run(tmp_path, tmp_path / "whole", partitions=1)

    for summary in (pooled, alone, whole):
        assert (summary.status, summary.sync) == ("succeeded", "full")
        assert summary.sync_reason == "first run: no state yet"
        assert summary.read == summary.imported == EVENTS + REVIEWERS
        assert summary.objects == {
            "read": EVENTS + REVIEWERS,
            "changed": EVENTS + REVIEWERS,
            "deleted": 0,
            "cached": 0,
        }
    assert _partition_count(tmp_path / "pooled") == 3
    assert _partition_count(tmp_path / "whole") == 0  # unpartitioned, as before
    snapshot = _snapshot(tmp_path / "pooled")
    assert len(snapshot[0]) == EVENTS and len(snapshot[1]) == REVIEWERS
    assert snapshot == _snapshot(tmp_path / "alone") == _snapshot(tmp_path / "whole")
    assert _state(tmp_path / "pooled") == _state(tmp_path / "alone") == {"generation": 0}
    assert _state(tmp_path / "whole") == {"generation": 0}
    assert _cache(tmp_path / "pooled") == _cache(tmp_path / "alone")
    # Unpartitioned, the records are numbered in another order; the contents are the same.
    assert _cache(tmp_path / "pooled", with_seq=False) == _cache(tmp_path / "whole", with_seq=False)
    assert not list((tmp_path / "pooled" / "spool").iterdir())

    # The next runs read only the changes, unpartitioned, and publish what a full run does.
    for generation in (1, 2):
        summary = _run(tmp_path, tmp_path / "pooled")
        assert (summary.status, summary.sync) == ("succeeded", "incremental")
        assert _partition_count(tmp_path / "pooled") == 3  # no new plan
        reference = tmp_path / f"full-{generation}"
        full = _run(tmp_path, reference, partitions=1, generation=generation)
        assert full.sync == "full"
        assert _snapshot(tmp_path / "pooled") == _snapshot(reference)
        assert _state(tmp_path / "pooled") == {"generation": generation}


def test_full_refresh_of_an_incremental_source_is_read_in_partitions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _run(tmp_path, home)
    _run(tmp_path, home)  # generation 1, incremental
    refreshed = _run(tmp_path, home, full_refresh=True)
    assert (refreshed.status, refreshed.sync) == ("succeeded", "full")
    assert refreshed.sync_reason == "--full-refresh given"
    assert _partition_count(home) == 6
    reference = tmp_path / "reference"
    _run(tmp_path, reference, partitions=1, generation=2)
    assert _snapshot(home) == _snapshot(reference)
    assert _state(home) == _state(reference) == {"generation": 2}
    assert _cache(home, with_seq=False) == _cache(reference, with_seq=False)


def test_a_partition_killed_mid_read_is_read_again_and_the_commit_is_still_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "killed"
    monkeypatch.setenv(KILL_HOOK_ENV, "1:3")  # SIGKILL once batch 3 is spooled, 2 acked
    summary = _run(tmp_path, home)
    monkeypatch.delenv(KILL_HOOK_ENV)

    assert (summary.status, summary.sync) == ("succeeded", "full")
    assert summary.imported == EVENTS + REVIEWERS
    assert _attempts(home) == [1, 2, 1]
    reference = tmp_path / "reference"
    _run(tmp_path, reference)
    assert _snapshot(home) == _snapshot(reference)
    assert _state(home) == _state(reference)
    assert _cache(home) == _cache(reference)

    following = _run(tmp_path, home)
    assert following.sync == "incremental"
    full = tmp_path / "full"
    _run(tmp_path, full, partitions=1, generation=1)
    assert _snapshot(home) == _snapshot(full)


def _partition_count(home: Path) -> int:
    db = sqlite3.connect(home / "ledger.sqlite3")
    try:
        return int(db.execute("SELECT count(*) FROM partitions").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def _attempts(home: Path) -> list[int]:
    db = sqlite3.connect(home / "ledger.sqlite3")
    try:
        return [row[0] for row in db.execute("SELECT attempts FROM partitions ORDER BY idx")]
    finally:
        db.close()


class SplitConnector(mpconnect.Connector):
    """Two partitions that each keep their own cursor in the state."""

    name = "split"
    incremental = True

    def partitions(self, ctx: mpconnect.RunContext) -> list[mpconnect.Partition]:
        return [mpconnect.Partition("north"), mpconnect.Partition("south")]

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        assert ctx.partition is not None and ctx.full_refresh
        ctx.state["cursor"] = ctx.partition.key
        for index in range(5):
            yield mpconnect.Event(
                "Visit",
                f"{ctx.partition.key}-{index}",
                1_700_000_000 + index,
                object_id=f"{ctx.partition.key}-{index}",
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class MergingConnector(SplitConnector):
    """The same, with the earliest cursor kept."""

    name = "merging"

    @classmethod
    def merge_states(
        cls, states: list[tuple[mpconnect.Partition, dict[str, Any]]]
    ) -> dict[str, Any]:
        return {"cursor": min(state["cursor"] for _, state in states)}


def _plugin(*classes: type[mpconnect.Connector]) -> object:
    class Plugin:
        @mpconnect.hookimpl
        def register_connectors(self, register: Callable[[type], None]) -> None:
            for cls in classes:
                register(cls)

    return Plugin()


def test_partitions_that_leave_different_states_fail_the_run_naming_the_fix(
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path,
        {
            "split": {"connector": "split", "dataset_id": "S"},
            "merging": {"connector": "merging", "dataset_id": "M"},
        },
    )
    home = tmp_path / "home"
    engine = make_engine(config, home, _plugin(SplitConnector, MergingConnector))
    with pytest.raises(RunFailed) as failed:
        engine.run("split")
    message = str(failed.value)
    assert "connector 'split': the partitions of a full read left different states" in message
    assert "'north' and 'south' differ in 'cursor'" in message
    assert "merge_states(states)" in message and "docs/plugins.md" in message
    assert "Traceback" not in message
    db = sqlite3.connect(home / "state.sqlite3")
    try:
        assert db.execute("SELECT count(*) FROM state").fetchone()[0] == 0
    finally:
        db.close()

    merged = engine.run("merging")
    assert (merged.status, merged.sync, merged.imported) == ("succeeded", "full", 10)
    db = sqlite3.connect(home / "state.sqlite3")
    try:
        row = db.execute("SELECT state FROM state WHERE source = 'merging'").fetchone()
    finally:
        db.close()
    assert row[0] in (b'{"cursor":"north"}', '{"cursor":"north"}')


def _killed_first_run(tmp_path: Path, home: Path, done: int) -> list[str]:
    """Start a first run of the demo (60,000 events, 6 partitions) with ``--processes 1``
    in a process group of its own and kill it with SIGKILL once ``done`` partitions are
    done; return the command that runs it again."""
    config = tmp_path / "mpconnect.toml"
    config.write_text(
        textwrap.dedent(f"""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.demo.settings]
        events = {EVENTS * 2}
        partitions = 6
        changes = 0.01
    """)
    )
    command = [sys.executable, "-m", "mpconnect", "--config", str(config), "run", "demo"]
    first = subprocess.Popen(
        [*command, "--processes", "1"],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _done(home) >= done, timeout=300)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    return command


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, MPCONNECT_HOME=str(home))


def test_a_first_run_killed_as_a_whole_resumes_and_commits_the_same_state_and_cache(
    tmp_path: Path, home: Path
) -> None:
    command = _killed_first_run(tmp_path, home, done=2)
    env = _env(home)
    assert 2 <= _done(home) < 6
    done_before = _ended(home)
    assert not (home / "state.sqlite3").exists() or _no_state(home)

    second = subprocess.run(
        [*command, "--processes", "2"], env=env, capture_output=True, timeout=600
    )
    assert second.returncode == 0, second.stderr.decode()
    assert "resuming" in second.stderr.decode()
    after = _ended(home)
    assert len(after) == 6
    assert all(after[index] == ended for index, ended in done_before.items())  # not re-read
    reference = tmp_path / "reference"
    config_reference = make_config(
        tmp_path,
        {
            "demo": {
                "connector": "demo",
                "dataset_id": "DEMO",
                "settings": {"events": EVENTS * 2, "partitions": 6, "changes": 0.01},
            }
        },
    )
    make_engine(config_reference, reference).run("demo", RunOptions(processes=2))
    assert _snapshot(home) == _snapshot(reference)
    assert _state(home) == _state(reference) == {"generation": 0}
    assert _cache(home) == _cache(reference)


def test_a_done_partition_whose_cache_rows_are_gone_fails_the_resumed_run_naming_the_fix(
    tmp_path: Path, home: Path
) -> None:
    command = _killed_first_run(tmp_path, home, done=1)
    env = _env(home)
    done_before = _done(home)
    (rows_file,) = (home / "spool").glob("*@p000/cache-rows.sqlite3")
    rows_file.unlink()

    second = subprocess.run(
        [*command, "--processes", "2"], env=env, capture_output=True, timeout=600
    )
    assert second.returncode == 1
    error = second.stderr.decode()
    assert "partition p000 (001-of-006): its cache rows" in error
    assert "are missing; run again with --restart" in error
    assert "Traceback" not in error
    assert _done(home) == done_before  # it failed before reading another partition

    third = subprocess.run(
        [*command, "--processes", "2", "--restart"], env=env, capture_output=True, timeout=600
    )
    assert third.returncode == 0, third.stderr.decode()
    assert _state(home) == {"generation": 0}
    assert len(_cache(home)) == EVENTS * 2 + EVENTS * 2 // 10


def _done(home: Path) -> int:
    if not (home / "ledger.sqlite3").exists():
        return 0
    try:
        db = sqlite3.connect(home / "ledger.sqlite3")
    except sqlite3.Error:
        return 0
    try:
        return int(
            db.execute("SELECT count(*) FROM partitions WHERE status = 'done'").fetchone()[0]
        )
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def _ended(home: Path) -> dict[int, float]:
    """When each done partition ended, by index."""
    db = sqlite3.connect(home / "ledger.sqlite3")
    try:
        rows = db.execute("SELECT idx, ended_at FROM partitions WHERE status = 'done'")
        return {int(index): float(ended) for index, ended in rows}
    finally:
        db.close()


def _no_state(home: Path) -> bool:
    db = sqlite3.connect(home / "state.sqlite3")
    try:
        return db.execute("SELECT count(*) FROM state").fetchone()[0] == 0
    except sqlite3.OperationalError:
        return True
    finally:
        db.close()
