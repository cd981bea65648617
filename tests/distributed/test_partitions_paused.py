"""A partitioned run on Celery workers whose connector pauses (the local Salesforce org
runs out of API quota): the run ends ``paused: api quota`` with nothing published, and
the next dispatch resumes its version, reads only the partitions not done, and publishes
exactly what an uninterrupted run does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster

from mpconnect.store.datasets import DatasetStore

pytest.importorskip("simple_salesforce")
pytest.importorskip("aiohttp")

from mpconnect.emulator.background import BackgroundServer, LocalCA
from mpconnect_salesforce.localserver.api import (
    PASSWORD,
    SECURITY_TOKEN,
    USERNAME,
    ApiState,
    SalesforceApi,
)
from mpconnect_salesforce.localserver.org import Org

pytestmark = pytest.mark.timeout(600)

SOURCE = """
[sources.crm]
connector = "salesforce"
dataset_id = "CRM"
sync = "full"                   # distributed mode reads full sources in partitions
max_quarantined = "unlimited"   # the seeded org has rows that cannot be events

[sources.crm.settings]
username = "{username}"
password = "${{SF_PASSWORD}}"
security_token = "${{SF_TOKEN}}"
login_url = "{url}"
ca_bundle = "{ca}"
retry_wait = 0.01
bulk_poll_interval = 0.01
partitions_per_object = 2
max_api_share = 1.0
"""


@pytest.fixture
def org(tmp_path: Path) -> Iterator[tuple[ApiState, str, Path]]:
    """The local Salesforce API over TLS: its state, URL and CA file."""
    ca = LocalCA(tmp_path / "salesforce-ca")
    state = ApiState(Org(seed=7))
    state.page_size = 5  # many calls: the quota runs out in the middle of the run
    server = BackgroundServer(SalesforceApi(state).app, ssl_context=ca.server_context()).start()
    try:
        yield state, server.url, ca.ca_path
    finally:
        server.stop()


def _snapshot(home: Path, version_id: str) -> tuple[list[str], list[str]]:
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        events = sorted(map(repr, store.iter_events("CRM", version_id)))
        people = sorted(map(repr, store.iter_people("CRM", version_id)))
    finally:
        store.close()
    return events, people


def _live(home: Path) -> str | None:
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        live = store.live_version("CRM")
    finally:
        store.close()
    return None if live is None else live.version_id


def test_a_paused_partition_pauses_the_run_and_the_next_dispatch_resumes_it(
    tmp_path: Path, broker_url: str, database_url: str, org: tuple[ApiState, str, Path]
) -> None:
    state, url, ca = org
    cluster = Cluster(
        tmp_path / "cluster",
        broker_url,
        database_url,
        SOURCE.format(username=USERNAME, url=url, ca=ca),
    )
    cluster.env.update(SF_PASSWORD=PASSWORD, SF_TOKEN=SECURITY_TOKEN)
    try:
        cluster.worker("worker-a", concurrency=1)
        cluster.worker("worker-b", concurrency=1)

        whole = cluster.cli("dispatch", "crm", "--wait", timeout=300)
        assert whole.returncode == 0, whole.stdout + whole.stderr
        reference = _live(cluster.home)
        assert reference is not None
        expected = _snapshot(cluster.home, reference)
        calls = state.api_used

        state.api_used = 0
        state.api_limit = calls - calls // 8  # 7/8 of a full read's calls left today
        cluster.cli("dispatch", "crm", "--wait", timeout=300)
        runs = cluster.query("SELECT * FROM runs ORDER BY started_at")
        paused = runs[-1]
        assert paused["status"] == "paused: api quota", cluster.log("worker-a")
        assert _live(cluster.home) == reference  # nothing published
        parts = cluster.query(
            "SELECT idx, status, error, attempts FROM partitions WHERE spool_id = %s ORDER BY idx",
            (paused["spool_id"],),
        )
        assert len(parts) == 5
        assert "paused: api quota" in {p["error"] for p in parts}
        done = {p["idx"] for p in parts if p["status"] == "done"}
        assert 0 < len(done) < 5

        state.api_used = 0
        state.api_limit = 1_000_000
        resumed = cluster.cli("dispatch", "crm", "--wait", timeout=300)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        last = cluster.query("SELECT * FROM runs ORDER BY started_at")[-1]
        assert (last["status"], last["version_id"]) == ("succeeded", paused["version_id"])
        parts = cluster.query(
            "SELECT idx, status, attempts FROM partitions WHERE spool_id = %s ORDER BY idx",
            (paused["spool_id"],),
        )
        assert [p["status"] for p in parts] == ["done"] * 5
        assert all(p["attempts"] == 1 for p in parts if p["idx"] in done)
        assert _live(cluster.home) == paused["version_id"]
        assert _snapshot(cluster.home, paused["version_id"]) == expected
    finally:
        cluster.close()
