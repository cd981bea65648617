"""Partitioned runs: a process pool publishes exactly what one process does, a partition
whose process is killed is read again without sending a batch twice, and a run killed as
a whole resumes with the same plan without reading its finished partitions again."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from engine_support import make_config, make_engine, wait_until

from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.engine import RunOptions
from mpconnect.engine.partition_run import KILL_HOOK_ENV
from mpconnect.engine.summary import RunSummary
from mpconnect.errors import RunFailed
from mpconnect.store.datasets import DatasetStore

EVENTS = 30_000  # three blocks of the demo's generation
BAD = 2
REVIEWERS = EVENTS // 10
SECRET = "s3cr3t-project-secret"
TOKEN = "tok-123"


def _demo(partitions: int, events: int = EVENTS) -> dict[str, Any]:
    return {
        "demo": {
            "connector": "demo",
            "dataset_id": "DEMO",
            "max_quarantined": "unlimited",
            "sync": "full",  # an incremental source is read in one partition
            "settings": {"events": events, "bad_records": BAD, "partitions": partitions},
        }
    }


def _run(tmp_path: Path, home: Path, partitions: int, processes: int) -> RunSummary:
    config = make_config(tmp_path, _demo(partitions))
    return make_engine(config, home).run("demo", RunOptions(processes=processes))


def _snapshot(home: Path, summary: RunSummary) -> tuple[list[Any], list[Any]]:
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        assert summary.version_id is not None
        events = sorted(
            store.iter_events("DEMO", summary.version_id),
            key=lambda e: e["properties"]["$insert_id"],
        )
        people = sorted(
            store.iter_people("DEMO", summary.version_id), key=lambda p: p["$distinct_id"]
        )
    finally:
        store.close()
    return events, people


def _partitions(home: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(home / "ledger.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM partitions ORDER BY spool_id, idx").fetchall()
    finally:
        db.close()


def _quarantine_lines(summary: RunSummary) -> int:
    assert summary.quarantine_file is not None
    return len(Path(summary.quarantine_file).read_text().splitlines())


def test_two_processes_publish_exactly_what_one_process_and_one_partition_publish(
    tmp_path: Path,
) -> None:
    pooled = _run(tmp_path, tmp_path / "pooled", partitions=3, processes=2)
    alone = _run(tmp_path, tmp_path / "alone", partitions=3, processes=1)
    whole = _run(tmp_path, tmp_path / "whole", partitions=1, processes=2)

    for summary in (pooled, alone, whole):
        assert summary.status == "succeeded"
        assert summary.read == EVENTS + BAD + REVIEWERS
        assert summary.imported == EVENTS + REVIEWERS
        assert summary.quarantined == BAD
        assert _quarantine_lines(summary) == BAD
    snapshot = _snapshot(tmp_path / "pooled", pooled)
    assert len(snapshot[0]) == EVENTS and len(snapshot[1]) == REVIEWERS
    assert snapshot == _snapshot(tmp_path / "alone", alone)
    assert snapshot == _snapshot(tmp_path / "whole", whole)

    rows = _partitions(tmp_path / "pooled")
    assert [row["status"] for row in rows] == ["done"] * 3
    assert sum(row["read"] for row in rows) == pooled.read
    assert _partitions(tmp_path / "whole") == []  # one partition: today's run, no plan


def test_engine_processes_one_reads_the_partitions_in_the_runs_own_process(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, _demo(3), engine={"processes": 1})
    summary = make_engine(config, tmp_path / "home").run("demo")
    assert summary.status == "succeeded" and summary.imported == EVENTS + REVIEWERS
    workers = {row["worker"] for row in _partitions(tmp_path / "home")}
    assert workers == {f"{socket.gethostname()}:{os.getpid()}"}


def test_the_pool_reads_every_partition_with_no_more_processes_than_it_runs_at_once(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, _demo(6, events=2 * EVENTS))
    summary = make_engine(config, tmp_path / "home").run("demo", RunOptions(processes=2))

    assert summary.status == "succeeded" and summary.imported == 2 * (EVENTS + REVIEWERS)
    rows = _partitions(tmp_path / "home")
    assert [row["status"] for row in rows] == ["done"] * 6
    assert all(row["attempts"] == 1 for row in rows)
    workers = {row["worker"] for row in rows}
    assert len(workers) == 2  # each worker process read three partitions in turn
    assert f"{socket.gethostname()}:{os.getpid()}" not in workers
    assert multiprocessing.active_children() == []


def test_a_partition_that_fails_in_a_worker_fails_the_run_naming_it(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXPANEL_SECRET", SECRET)
    with LocalDatasetsServer(
        tmp_path / "server", datasets=["DEMO"], project_token=TOKEN, project_secret=SECRET
    ) as server:
        server.set_faults(fail_rate=1.0, paths=("/import-events",))
        config = make_config(
            tmp_path,
            _demo(3),
            mixpanel={
                "sink": "datasets",
                "api_url": server.url,
                "project_token": TOKEN,
                "secret": "${MIXPANEL_SECRET}",
                "ca_bundle": str(server.ca_path),
            },
            engine={"retry_initial_wait": 0.02, "retry_max_wait": 0.1, "max_retries": 2},
        )
        engine = make_engine(config, home)
        with pytest.raises(RunFailed, match=r"partition p00\d \(00\d-of-003\): HTTP 500"):
            engine.run("demo", RunOptions(processes=2))
        (version,) = server.store.list_versions("DEMO")
        assert not version.readable and not version.is_live
    rows = _partitions(home)
    errors = [row["error"] or "" for row in rows if row["status"] == "failed"]
    assert any("HTTP 500" in error for error in errors)  # the others were stopped
    assert multiprocessing.active_children() == []  # the other worker was told to end
    (run,) = engine.ledger.list_runs("demo")
    assert run["status"] == "failed"


def test_a_partition_whose_process_is_killed_is_read_again_and_sends_no_batch_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "killed"
    monkeypatch.setenv(KILL_HOOK_ENV, "1:3")  # SIGKILL once batch 3 is spooled, 2 acked
    summary = _run(tmp_path, home, partitions=3, processes=2)

    assert summary.status == "succeeded"
    assert summary.imported == EVENTS + REVIEWERS
    rows = _partitions(home)
    assert [row["attempts"] for row in rows] == [1, 2, 1]
    db = sqlite3.connect(home / "ledger.sqlite3")
    try:
        acked_before_restart = db.execute(
            "SELECT COUNT(*) FROM batches WHERE spool_id LIKE '%@p001' AND acked_at < ?",
            (rows[1]["started_at"],),
        ).fetchone()[0]
    finally:
        db.close()
    assert acked_before_restart >= 2  # acknowledged by the killed process, not sent again
    monkeypatch.delenv(KILL_HOOK_ENV)
    reference = _run(tmp_path, tmp_path / "reference", partitions=3, processes=1)
    assert _snapshot(home, summary) == _snapshot(tmp_path / "reference", reference)


def test_a_run_killed_as_a_whole_resumes_its_plan_without_reading_done_partitions(
    tmp_path: Path, home: Path
) -> None:
    config = tmp_path / "mpconnect.toml"
    config.write_text(
        textwrap.dedent(f"""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        max_quarantined = "unlimited"
        sync = "full"
        [sources.demo.settings]
        events = {EVENTS * 2}
        partitions = 6
    """)
    )
    env = dict(os.environ, MPCONNECT_HOME=str(home))
    command = [sys.executable, "-m", "mpconnect", "--config", str(config), "run", "demo"]
    first = subprocess.Popen(
        [*command, "--processes", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: (
                (home / "ledger.sqlite3").exists()
                and _table_ready(home)
                and sum(row["status"] == "done" for row in _partitions(home)) >= 2
            ),
            timeout=300,
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    done_before = {row["idx"] for row in _partitions(home) if row["status"] == "done"}
    assert 2 <= len(done_before) < 6

    second = subprocess.run(
        [*command, "--processes", "2"], env=env, capture_output=True, timeout=600
    )
    assert second.returncode == 0, second.stderr.decode()
    assert "resuming" in second.stderr.decode()
    rows = _partitions(home)
    assert [row["status"] for row in rows] == ["done"] * 6
    assert all(row["attempts"] == 1 for row in rows if row["idx"] in done_before)
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        live = store.live_version("DEMO")
        assert live is not None
        contents = store.contents("DEMO", live.version_id)
        assert contents.events_total == EVENTS * 2
        ids = {e["properties"]["$insert_id"] for e in store.iter_events("DEMO", live.version_id)}
        assert len(ids) == EVENTS * 2
    finally:
        store.close()


def _table_ready(home: Path) -> bool:
    try:
        _partitions(home)
    except sqlite3.OperationalError:
        return False
    return True
