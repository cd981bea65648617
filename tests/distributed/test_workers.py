"""Real workers on a real Redis and PostgreSQL: many sources at once, never one source
twice at once, and two schedulers that dispatch each due run once."""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, demo_sources


@pytest.fixture
def make_cluster(
    tmp_path: Path, broker_url: str, database_url: str
) -> Iterator[type[Cluster] | object]:
    made: list[Cluster] = []

    def make(sources_toml: str) -> Cluster:
        cluster = Cluster(tmp_path, broker_url, database_url, sources_toml)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def test_twenty_sources_dispatched_at_once_on_two_workers(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(demo_sources(20))
    cluster.worker("worker-a")
    cluster.worker("worker-b")

    first = cluster.cli("dispatch", "--all")  # every source asked twice: the second
    assert first.returncode == 0, first.stderr  # asks may meet the first ones running
    waited = cluster.cli("--log-format", "json", "dispatch", "--all", "--wait")
    ended = [json.loads(line) for line in waited.stdout.splitlines()]
    assert {e["source"] for e in ended} == {f"s{i:02d}" for i in range(20)}

    rows = cluster.wait_dispatches_ended(40)
    assert {r["state"] for r in rows} <= {"succeeded", "locked"}
    for row in rows:
        if row["state"] == "locked":
            assert f"source {row['source']!r} is already running" in row["error"]
    assert waited.returncode == (1 if any(e["state"] == "locked" for e in ended) else 0)

    runs = cluster.query("SELECT * FROM runs ORDER BY started_at")
    by_source: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        by_source[run["source"]].append(run)
    assert len(by_source) == 20
    for source, source_runs in by_source.items():
        assert all(r["status"] == "succeeded" for r in source_runs), source
        for earlier, later in itertools.pairwise(source_runs):
            assert earlier["ended_at"] <= later["started_at"], f"{source} ran twice at once"
        assert cluster.live_events(f"S{source[1:]}") == 200
    workers = {r["worker"].split(":")[1] for r in rows if r["state"] == "succeeded"}
    assert len(workers) > 1  # the runs were shared out between the pool processes

    listed = cluster.cli("runs", "--json", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == len(runs)  # `runs` reads the shared database


def test_two_schedulers_dispatch_each_due_run_once(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(demo_sources(2, events=50, schedule="*/2 * * * * *"))
    cluster.worker("worker")
    one = cluster.scheduler("scheduler-1")
    two = cluster.scheduler("scheduler-2")
    deadline = time.monotonic() + 60
    while len(cluster.query("SELECT * FROM dispatches WHERE state = 'succeeded'")) < 6:
        assert time.monotonic() < deadline, cluster.log("scheduler-1") + cluster.log("scheduler-2")
        time.sleep(0.5)
    logs = cluster.log("scheduler-1") + cluster.log("scheduler-2")
    assert logs.count("leading: dispatching due runs") == 1
    assert "standing by: another scheduler leads" in logs

    leader, standby = (
        (one, "scheduler-2")
        if "leading" in cluster.log("scheduler-1")
        else (
            two,
            "scheduler-1",
        )
    )
    leader.kill()  # kill -9: its session ends, its lock with it
    leader.wait()
    cluster.wait_log(standby, "leading: dispatching due runs")
    taken_over = time.time()
    while not cluster.query(
        "SELECT 1 FROM dispatches WHERE requested_at > %s AND state = 'succeeded'", (taken_over,)
    ):
        assert time.time() - taken_over < 60, cluster.log(standby)
        time.sleep(0.5)

    rows = cluster.query("SELECT source, due, count(*) AS n FROM dispatches GROUP BY source, due")
    assert rows
    assert all(r["n"] == 1 and r["due"] is not None for r in rows)  # each due time once


def test_dispatch_wait_prints_each_summary_and_fails_when_a_run_fails(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(
        demo_sources(1, events=100)
        + '[sources.bad]\nconnector = "demo"\ndataset_id = "BAD"\nmax_quarantined = 0\n'
        "[sources.bad.settings]\nevents = 100\nbad_records = 5\n"
    )
    cluster.worker("worker")
    done = cluster.cli("dispatch", "s00", "bad", "--wait")
    assert done.returncode == 1
    assert "s00: succeeded" in done.stdout
    assert "records read 110, imported 110" in done.stdout
    assert "mpconnect: error: bad: failed:" in done.stderr
    assert "quarantined" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert cluster.live_events("BAD") is None  # nothing of the failed run went live


def test_an_unreachable_broker_is_a_clear_error_and_nothing_waits(  # type: ignore[no-untyped-def]
    tmp_path: Path, database_url: str
) -> None:
    from real_servers import free_port

    broker = f"redis://:brokerpw42@127.0.0.1:{free_port()}/0"  # nobody listens there
    cluster = Cluster(tmp_path, broker, database_url, demo_sources(1))
    done = cluster.cli("dispatch", "s00", "--wait")
    assert done.returncode == 1
    assert "mpconnect: error: could not send the run of 's00' to the broker" in done.stderr
    assert "check [distributed] broker (MPCONNECT_BROKER_URL) and that Redis is up" in done.stderr
    assert "brokerpw42" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    rows = cluster.query("SELECT state, error FROM dispatches")
    assert [r["state"] for r in rows] == ["failed"]
    assert "brokerpw42" not in rows[0]["error"]
