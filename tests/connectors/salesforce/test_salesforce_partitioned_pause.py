"""The first, partitioned read of a Salesforce org that runs out of API quota: the run
ends ``paused: api quota`` (exit status 0, nothing published), and the next run resumes
its version, reads only the partitions not done, sends no batch twice, and publishes
exactly what an uninterrupted run does; then the source reads incrementally."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mpconnect.engine.partition_cache import CACHE_FILE
from mpconnect.engine.partition_store import partition_spool_dir
from mpconnect.testing import (
    TEST_PROJECT_SECRET,
    TEST_PROJECT_TOKEN,
    local_datasets_server,
    run_cli,
)
from mpconnect_salesforce.localserver.api import PASSWORD, SECURITY_TOKEN

from .conftest import LocalSalesforce

pytestmark = pytest.mark.timeout(300)

CONFIG = """
[mixpanel]
sink = "datasets"
api_url = "{api_url}"
ca_bundle = "{api_ca}"
project_token = "{token}"
secret = "${{MIXPANEL_SECRET}}"

[sources.crm]
connector = "salesforce"
dataset_id = "CRM"
max_quarantined = "unlimited"   # the seeded org has rows that cannot be events

[sources.crm.settings]
username = "ada@acme.test"
password = "${{SF_PASSWORD}}"
security_token = "${{SF_TOKEN}}"
login_url = "{url}"
ca_bundle = "{ca}"
retry_wait = 0.01
bulk_poll_interval = 0.01
partitions_per_object = 2
max_api_share = 1.0
"""
ENV = {"SF_PASSWORD": PASSWORD, "SF_TOKEN": SECURITY_TOKEN, "MIXPANEL_SECRET": TEST_PROJECT_SECRET}
IMPORTS = ("/import-events", "/import-people")


def _run(config: Path, home: Path, processes: int) -> Any:
    return run_cli(
        "--config", config, "run", "crm", "--processes", str(processes), home=home, env=ENV
    )


def _ledger(home: Path, query: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(home / "ledger.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def _snapshot(server: Any, version_id: str) -> tuple[list[str], list[str]]:
    store = server.store
    events = sorted(map(repr, store.iter_events("CRM", version_id)))
    people = sorted(map(repr, store.iter_people("CRM", version_id)))
    return events, people


@pytest.mark.parametrize("processes", [1, 2])
def test_a_first_read_out_of_quota_pauses_and_the_next_run_finishes_it(
    salesforce: LocalSalesforce, tmp_path: Path, processes: int
) -> None:
    salesforce.state.page_size = 5  # many calls: the quota runs out in the middle
    with local_datasets_server(tmp_path / "datasets", datasets=["CRM"]) as server:
        config = tmp_path / "mpconnect.toml"
        config.write_text(
            CONFIG.format(
                api_url=server.url,
                api_ca=server.ca_path,
                token=TEST_PROJECT_TOKEN,
                url=salesforce.url,
                ca=salesforce.ca_path,
            )
        )
        uninterrupted = _run(config, tmp_path / "reference", processes)
        assert uninterrupted.exit_code == 0, uninterrupted.output
        reference = server.store.live_version("CRM")
        assert reference is not None
        expected = _snapshot(server, reference.version_id)
        sent = {path: server.requests_to(path) for path in IMPORTS}
        calls = salesforce.state.api_used
        server.reset_counts()

        # The org has 7/8 of a full read's API calls left today.
        salesforce.state.api_used = 0
        salesforce.state.api_limit = calls - calls // 8
        home = tmp_path / "home"
        paused = _run(config, home, processes)
        assert paused.exit_code == 0, paused.output
        assert "crm: paused: api quota" in paused.output
        assert multiprocessing.active_children() == []  # the pool's workers have ended
        assert "nothing published; the next run resumes version" in paused.output
        assert server.store.live_version("CRM").version_id == reference.version_id  # type: ignore[union-attr]
        (first,) = _ledger(home, "SELECT * FROM runs")
        assert first["status"] == "paused: api quota"
        assert not server.store.get_version("CRM", first["version_id"]).readable  # type: ignore[union-attr]
        rows = _ledger(home, "SELECT * FROM partitions ORDER BY idx")
        assert len(rows) == 5  # people, and two Id ranges of cases and of tasks
        assert "paused: api quota" in {row["error"] for row in rows}
        done = {row["idx"] for row in rows if row["status"] == "done"}
        assert 0 < len(done) < 5
        spool_dir = Path(first["spool_dir"])
        for index in done:  # the done partitions' cache rows stay for the next run
            assert (partition_spool_dir(spool_dir, index) / CACHE_FILE).is_file()

        salesforce.state.api_used = 0
        salesforce.state.api_limit = 1_000_000
        resumed = _run(config, home, processes)
        assert resumed.exit_code == 0, resumed.output
        assert "resuming" in resumed.output and "crm: succeeded" in resumed.output
        runs = _ledger(home, "SELECT * FROM runs ORDER BY started_at")
        assert [run["status"] for run in runs] == ["resumed", "succeeded"]
        assert runs[1]["version_id"] == first["version_id"]
        rows = _ledger(home, "SELECT * FROM partitions ORDER BY idx")
        assert [row["status"] for row in rows] == ["done"] * 5
        assert all(row["attempts"] == 1 for row in rows if row["idx"] in done)
        assert {path: server.requests_to(path) for path in IMPORTS} == sent  # none twice
        live = server.store.live_version("CRM")
        assert live is not None and live.version_id == first["version_id"]
        assert _snapshot(server, live.version_id) == expected

        then = _run(config, home, processes)
        assert then.exit_code == 0, then.output
        assert "incremental run" in then.output
