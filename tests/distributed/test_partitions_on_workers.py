"""A source in partitions on real Celery workers: each partition is a task on any worker;
the published snapshot equals a single-machine run's, record for record, also when the
process reading a partition is killed with ``kill -9`` (its partition is read again
after its lease ran out, and no record is published twice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster

from mpconnect.engine.partition_run import KILL_HOOK_ENV
from mpconnect.store.datasets import DatasetStore


def _toml(events: int, partitions: int) -> str:
    return (
        "[sources.big]\n"
        'connector = "demo"\n'
        'dataset_id = "BIG"\n'
        'sync = "full"\n'
        "[sources.big.settings]\n"
        f"events = {events}\n"
        f"partitions = {partitions}\n"
    )


def _snapshot(home: Path, version_id: str | None = None) -> tuple[list[Any], list[Any]]:
    """The events and people of BIG's live version (or ``version_id``), in a fixed order."""
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        if version_id is None:
            live = store.live_version("BIG")
            assert live is not None, "no version of BIG is live"
            version_id = live.version_id
        events = sorted(
            store.iter_events("BIG", version_id), key=lambda e: e["properties"]["$insert_id"]
        )
        people = sorted(store.iter_people("BIG", version_id), key=lambda p: p["$distinct_id"])
    finally:
        store.close()
    return events, people


def _single_machine(tmp_path: Path, events: int, partitions: int) -> tuple[list[Any], list[Any]]:
    """What `mpconnect run --processes 1` publishes for the same source on one machine."""
    home = tmp_path / "single"
    config = tmp_path / "single.toml"
    config.write_text(_toml(events, partitions))
    env = {**os.environ, "MPCONNECT_HOME": str(home), "MPCONNECT_CONFIG": str(config)}
    env.pop(KILL_HOOK_ENV, None)
    done = subprocess.run(
        [sys.executable, "-m", "mpconnect", "run", "big", "--processes", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return _snapshot(home)


@pytest.fixture
def make_cluster(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Any]:
    made: list[Cluster] = []

    def make(events: int, partitions: int, lease: float = 6) -> Cluster:
        cluster = Cluster(tmp_path / "cluster", broker_url, database_url, _toml(events, partitions))
        text = cluster.config.read_text()
        cluster.config.write_text(
            text.replace("[distributed]\n", f"[distributed]\nlease = {lease}\n")
        )
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


def test_two_workers_publish_eight_partitions_exactly_as_one_machine(
    tmp_path: Path, make_cluster: Any
) -> None:
    events = 80_000  # eight blocks of the demo's generation: one per partition
    cluster = make_cluster(events, 8)
    cluster.worker("worker-a", concurrency=1)
    cluster.worker("worker-b", concurrency=1)

    sent = cluster.cli("dispatch", "big", "--wait", timeout=600)
    assert sent.returncode == 0, sent.stdout + sent.stderr

    parts = cluster.query("SELECT idx, status, worker, attempts FROM partitions ORDER BY idx")
    assert [p["status"] for p in parts] == ["done"] * 8
    # The coordinator (worker-a's only slot) reads partitions while worker-b reads others.
    assert len({p["worker"] for p in parts}) >= 2, parts
    snapshot = _snapshot(cluster.home)
    assert len(snapshot[0]) == events
    assert snapshot == _single_machine(tmp_path, events, 8)
    run = cluster.query("SELECT status, published, read FROM runs")
    assert [(r["status"], r["published"]) for r in run] == [("succeeded", 1)]


def test_a_partition_whose_worker_process_is_killed_is_read_again_once(
    tmp_path: Path, make_cluster: Any
) -> None:
    events = 30_000
    cluster = make_cluster(events, 3)
    # Whichever process reads partition 1 first is killed (SIGKILL) once its batch 3 is
    # spooled and batches 1-2 acknowledged: a task's pool process or the coordinator's.
    cluster.env[KILL_HOOK_ENV] = "1:3"
    cluster.worker("worker-a", concurrency=1)
    cluster.worker("worker-b", concurrency=1)

    sent = cluster.cli("dispatch", "big", "--wait", timeout=600)
    assert sent.returncode == 0, sent.stdout + sent.stderr + cluster.log("worker-a")

    parts = cluster.query("SELECT idx, status, attempts FROM partitions ORDER BY idx")
    assert [p["status"] for p in parts] == ["done"] * 3
    assert parts[1]["attempts"] == 2  # read again after its process died
    acked_before = cluster.query(
        "SELECT count(*) AS n FROM batches b JOIN partitions p "
        "ON b.spool_id = p.spool_id || '@p001' AND p.idx = 1 "
        "WHERE b.acked = 1 AND b.acked_at < p.started_at"
    )[0]["n"]
    assert acked_before >= 2  # acknowledged by the killed process, not sent again
    snapshot = _snapshot(cluster.home)
    assert len(snapshot[0]) == events  # every record once
    assert snapshot == _single_machine(tmp_path, events, 3)


def test_one_worker_with_one_slot_finishes_a_partitioned_run(
    tmp_path: Path, make_cluster: Any
) -> None:
    # The coordinator takes the only slot; it reads every partition itself, and the
    # partition tasks it sent find their partitions done and do nothing.
    cluster = make_cluster(30_000, 3)
    cluster.worker("worker-a", concurrency=1)

    sent = cluster.cli("dispatch", "big", "--wait", timeout=600)
    assert sent.returncode == 0, sent.stdout + sent.stderr

    parts = cluster.query("SELECT status, attempts FROM partitions ORDER BY idx")
    assert [(p["status"], p["attempts"]) for p in parts] == [("done", 1)] * 3
    cluster.wait_log("worker-a", "nothing to do")  # each later partition task
    assert len(_snapshot(cluster.home)[0]) == 30_000


def test_workers_with_their_own_homes_bring_every_quarantined_record_to_the_run(
    tmp_path: Path, make_cluster: Any
) -> None:
    # Two machines (their own $MPCONNECT_HOME), one "Mixpanel" both load into. The last
    # partition quarantines BAD records; its first reader is killed once it read them.
    bad = 5
    cluster = make_cluster(30_000, 3)
    text = cluster.config.read_text().replace(
        'sync = "full"\n', 'sync = "full"\nmax_quarantined = "unlimited"\n'
    )
    store = tmp_path / "mixpanel" / "embedded.sqlite3"
    cluster.config.write_text(
        f'{text}bad_records = {bad}\n\n[mixpanel]\nsink = "embedded"\nstore = "{store}"\n'
    )
    cluster.env[KILL_HOOK_ENV] = "2:11"  # batch 11: its first people batch, after the bad
    homes = [tmp_path / "machine-a", tmp_path / "machine-b"]
    for name, home in zip(("worker-a", "worker-b"), homes, strict=True):
        cluster.env["MPCONNECT_HOME"] = str(home)
        cluster.worker(name, concurrency=1)

    sent = cluster.cli("--log-format", "json", "dispatch", "big", "--wait", timeout=600)
    assert sent.returncode == 0, sent.stdout + sent.stderr + cluster.log("worker-a")

    summary = json.loads(sent.stdout.splitlines()[-1])["summary"]
    # (A coordinator killed while it read the partition is replaced by a new run: the
    # other machine's resume key differs; the run that succeeded is the one to look at.)
    parts = cluster.query(
        "SELECT p.status, p.attempts, p.quarantined FROM partitions p JOIN runs r "
        "ON r.spool_id = p.spool_id WHERE r.run_id = %s ORDER BY p.idx",
        (summary["run_id"],),
    )
    assert [p["status"] for p in parts] == ["done"] * 3
    assert parts[2]["attempts"] == 2  # read again after its process died
    assert [p["quarantined"] for p in parts] == [0, 0, bad]
    assert summary["quarantined"] == bad
    path = Path(summary["quarantine_file"])
    assert any(path.is_relative_to(home) for home in homes)  # the coordinator's machine
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["record"]["object_id"] for line in lines) == [
        f"bad-review-{i}" for i in range(bad)
    ]  # each once, named
    shown = cluster.cli("quarantine", "big")
    assert f"{bad} records quarantined" in shown.stdout, shown.stdout + shown.stderr
    assert "object bad-review-0" in shown.stdout
