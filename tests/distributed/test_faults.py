"""Faults under real workers: a worker killed with ``kill -9`` mid-run, Redis restarted
mid-run, PostgreSQL restarted mid-run. Each ends with one published version holding
every record exactly once, or fails cleanly with nothing partial live, and the next
dispatch then loads it exactly once.

The run loads into the local Datasets API server, each answer delayed so that the run
lasts long enough to be hit mid-way; the workers reach it over HTTPS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster
from real_servers import PostgresServer, RedisServer

from mpconnect.testing import local_datasets_server

EVENTS = 4000


@pytest.fixture
def mixpanel(tmp_path: Path) -> Iterator[Any]:
    """The local Datasets API, 40 ms per answer (small batches: a run of some seconds)."""
    with local_datasets_server(tmp_path / "mixpanel", datasets=["BIG"], latency_ms=40) as server:
        yield server


def _sources(server: Any, lease: float = 6) -> str:
    return f"""
[mixpanel]
sink = "datasets"
api_url = "{server.url}"
project_token = "{server.project_token}"
secret = "${{MIXPANEL_SECRET}}"
ca_bundle = "{server.ca_path}"

[engine]
concurrency = 1
max_batch_bytes = 65536
retry_initial_wait = 0.2
retry_max_wait = 2

[sources.big]
connector = "demo"
dataset_id = "BIG"
[sources.big.settings]
events = {EVENTS}
"""


def _fault_config(cluster: Cluster, lease: float) -> None:
    text = cluster.config.read_text()
    cluster.config.write_text(
        text.replace("[distributed]\n", f"[distributed]\nlease = {lease}\n", 1)
    )


@pytest.fixture
def cluster(tmp_path: Path, broker_url: str, database_url: str, mixpanel: Any) -> Iterator[Cluster]:
    made = Cluster(tmp_path, broker_url, database_url, _sources(mixpanel))
    made.env["MIXPANEL_SECRET"] = mixpanel.project_secret
    _fault_config(made, lease=6)
    try:
        yield made
    finally:
        made.close()


def _wait_acked(cluster: Cluster, at_least: int = 3) -> dict[str, Any]:
    """Wait until the running run of ``big`` has ``at_least`` acknowledged batches."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = cluster.query(
            "SELECT r.run_id, count(b.seq) AS acked FROM runs r JOIN batches b "
            "ON b.spool_id = r.spool_id AND b.acked = 1 WHERE r.status = 'running' "
            "GROUP BY r.run_id"
        )
        if rows and rows[0]["acked"] >= at_least:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("the run never got going:\n" + cluster.log("worker-a"))


def _live_events(server: Any) -> tuple[int, int]:
    """(events in the live version of BIG, versions of BIG that are live)."""
    versions = server.store.list_versions("BIG")
    live = [v for v in versions if v.is_live]
    if not live:
        return 0, 0
    return server.store.contents("BIG", live[0].version_id).events_total, len(live)


def _dispatch_wait(cluster: Cluster) -> tuple[int, dict[str, Any]]:
    done = cluster.cli("--log-format", "json", "dispatch", "big", "--wait")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines, done.stderr
    return done.returncode, lines[-1]


def test_a_worker_killed_mid_run_is_replaced_and_its_run_resumed_once(
    cluster: Cluster, mixpanel: Any
) -> None:
    workers = {name: cluster.worker(name, concurrency=1) for name in ("worker-a", "worker-b")}
    waiting = subprocess.Popen(  # the orchestrator's `dispatch --wait`
        [sys.executable, "-m", "mpconnect", "--log-format", "json", "dispatch", "big", "--wait"],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_acked(cluster)
        pid = int(cluster.query("SELECT worker FROM dispatches")[0]["worker"].split(":")[1])
        name = next(n for n, w in workers.items() if os.getpgid(pid) == w.pid)
        os.killpg(workers[name].pid, signal.SIGKILL)  # the whole worker: main and pool
        workers[name].wait()
        assert _live_events(mixpanel) == (0, 0)  # nothing partial went live
        out, err = waiting.communicate(timeout=180)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    # After the lease ran out without a heartbeat and with the lock free (it died with
    # the worker's session), `dispatch --wait` sent the run again: the other worker
    # resumed the version and only sent what was not acknowledged.
    assert waiting.returncode == 0, err
    ended = json.loads(out.splitlines()[-1])
    assert (ended["state"], ended["attempts"]) == ("succeeded", 2)
    assert "lost its worker" in err
    assert _live_events(mixpanel) == (EVENTS, 1)
    runs = cluster.query("SELECT status, published, resumed FROM runs ORDER BY started_at")
    assert [r["status"] for r in runs] in (["resumed", "succeeded"], ["abandoned", "succeeded"])
    assert [r["published"] for r in runs] == [0, 1]


def test_a_pool_process_killed_mid_run_is_redelivered_at_once_and_resumed(
    cluster: Cluster, mixpanel: Any
) -> None:
    cluster.worker("worker-a", concurrency=1)
    sent = cluster.cli("dispatch", "big")
    assert sent.returncode == 0, sent.stderr
    _wait_acked(cluster)
    child = int(cluster.query("SELECT worker FROM dispatches")[0]["worker"].split(":")[1])
    os.kill(child, signal.SIGKILL)  # only the pool process running the task
    # task_reject_on_worker_lost: the worker puts the message back at once (no lease, no
    # visibility timeout); a new pool process resumes the version.
    rows = cluster.wait_dispatches_ended(1, timeout=120)
    assert (rows[0]["state"], rows[0]["attempts"]) == ("succeeded", 2), rows[0]
    assert _live_events(mixpanel) == (EVENTS, 1)
    runs = cluster.query("SELECT status FROM runs ORDER BY started_at")
    assert [r["status"] for r in runs] in (["resumed", "succeeded"], ["abandoned", "succeeded"])


def test_redis_restarted_mid_run(
    cluster: Cluster, mixpanel: Any, redis_server: RedisServer
) -> None:
    cluster.worker("worker-a", concurrency=1)
    sent = cluster.cli("dispatch", "big")
    assert sent.returncode == 0, sent.stderr
    _wait_acked(cluster)
    redis_server.stop()
    time.sleep(1)
    redis_server.start()
    rows = cluster.wait_dispatches_ended(1, timeout=120)
    assert rows[0]["state"] == "succeeded", rows[0]["error"]
    assert _live_events(mixpanel) == (EVENTS, 1)
    # The worker reconnected: it takes the next run.
    code, last = _dispatch_wait(cluster)
    assert (code, last["state"]) == (0, "succeeded")
    assert _live_events(mixpanel) == (EVENTS, 1)


def test_postgresql_restarted_mid_run(
    cluster: Cluster, mixpanel: Any, postgres_server: PostgresServer
) -> None:
    cluster.worker("worker-a", concurrency=1)
    sent = cluster.cli("dispatch", "big")
    assert sent.returncode == 0, sent.stderr
    _wait_acked(cluster)
    postgres_server.stop(fast=True)  # every session aborted, as in a crash
    time.sleep(1)
    postgres_server.start()
    rows = cluster.wait_dispatches_ended(1, timeout=180)
    if rows[0]["state"] != "succeeded":  # a clean failure: nothing partial is live ...
        assert rows[0]["state"] in ("failed", "interrupted"), rows[0]
        assert _live_events(mixpanel)[0] in (0,)
        code, last = _dispatch_wait(cluster)  # ... and the next dispatch loads it
        assert (code, last["state"]) == (0, "succeeded"), last
    assert _live_events(mixpanel) == (EVENTS, 1)
