"""``mpconnect ui`` on a machine that ran nothing shows the runs a worker elsewhere made,
read from the shared PostgreSQL ledger, with the worker that ran each."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cluster import Cluster, demo_sources


@pytest.fixture
def cluster(tmp_path: Path, broker_url: str, database_url: str) -> Iterator[Cluster]:
    """One configuration with two demo sources; its processes stopped at the end."""
    made = Cluster(tmp_path, broker_url, database_url, demo_sources(2))
    try:
        yield made
    finally:
        made.close()


def test_ui_elsewhere_shows_the_workers_runs(cluster: Cluster, tmp_path: Path) -> None:
    cluster.worker("worker-a")
    done = cluster.cli("dispatch", "s01", "--wait")
    assert done.returncode == 0, done.stderr
    [dispatch] = cluster.query("SELECT * FROM dispatches")
    assert dispatch["state"] == "succeeded"
    elsewhere = tmp_path / "another-machine"  # an empty home: no local ledger
    elsewhere.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "mpconnect", "ui", "--port", "0", "--read-only"],
        env={**cluster.env, "MPCONNECT_HOME": str(elsewhere)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"status page at (http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        url = match.group(1)
        sources = {s["name"]: s for s in requests.get(url + "/api/sources", timeout=30).json()}
        assert sources["s00"]["last_run"] is None
        last = sources["s01"]["last_run"]
        assert last["status"] == "succeeded" and last["imported"] == last["read"] > 0
        run = requests.get(url + f"/api/runs/{last['run_id']}", timeout=30).json()
        assert run["worker"] == dispatch["worker"]
        assert run["dispatch"]["attempts"] == 1 and run["dispatch"]["state"] == "succeeded"
        page = requests.get(url + f"/runs/{last['run_id']}", timeout=30).text
        assert f'<dd class="worker">{dispatch["worker"]}</dd>' in page
        metrics = requests.get(url + "/metrics", timeout=30).text
        assert 'mpconnect_runs_total{source="s01",status="succeeded"} 1.0' in metrics
        assert cluster.database_url not in page + metrics
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert not (elsewhere / "ledger.sqlite3").exists()
