"""The engine against the local datasets server over HTTPS, under injected faults.

Each run must end with the server holding exactly the source's records, no duplicates by
``$insert_id``, whatever the network did; or, if a fault never clears, fail cleanly with
the version unreadable and the ledger saying why.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import SAFETY_TIMEOUT, make_config, make_engine, wait_until

import mpconnect
from mpconnect.config import Config
from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.errors import RunFailed

SECRET = "s3cr3t-project-secret"
TOKEN = "tok-123"
EVENTS = 4000  # 4 event batches + 1 people batch (400 profiles)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalDatasetsServer]:
    """The local Datasets API with dataset DEMO, live 0.1 s after publishing."""
    monkeypatch.setenv("MIXPANEL_SECRET", SECRET)
    with LocalDatasetsServer(
        tmp_path / "server",
        datasets=["DEMO"],
        project_token=TOKEN,
        project_secret=SECRET,
        live_delay=0.1,
        seed=7,
    ) as running:
        yield running


def datasets_config(
    tmp_path: Path, server: LocalDatasetsServer, events: int = EVENTS, **engine: object
) -> Config:
    return make_config(
        tmp_path,
        {"demo": {"connector": "demo", "dataset_id": "DEMO", "settings": {"events": events}}},
        mixpanel={
            "sink": "datasets",
            "api_url": server.url,
            "project_token": TOKEN,
            "secret": "${MIXPANEL_SECRET}",
            "ca_bundle": str(server.ca_path),
        },
        engine={"retry_initial_wait": 0.02, "retry_max_wait": 0.5, "max_retries": 30, **engine},
    )


def assert_exact(server: LocalDatasetsServer, version_id: str, events: int = EVENTS) -> None:
    contents = server.store.contents("DEMO", version_id)
    assert contents.events_total == events
    assert contents.profiles == events // 10
    assert contents.events_by_name == {"Airline Review": events}
    version = server.store.get_version("DEMO", version_id)
    assert version is not None and version.is_live


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"rate_limit": 4, "retry_after": 0.1}, id="429-storm-with-retry-after"),
        pytest.param({"fail_rate": 0.3}, id="5xx-at-30-percent"),
        pytest.param({"drop_rate": 0.25}, id="dropped-connections"),
        pytest.param({"latency_ms": 40}, id="latency"),
    ],
)
def test_faults_are_survived_with_exact_counts(
    tmp_path: Path, home: Path, server: LocalDatasetsServer, faults: dict
) -> None:
    server.set_faults(**faults)
    summary = make_engine(datasets_config(tmp_path, server), home).run("demo")
    assert summary.status == "succeeded"
    assert summary.imported == summary.read == EVENTS + EVENTS // 10
    assert_exact(server, summary.version_id)
    contents = server.store.contents("DEMO", summary.version_id)
    assert contents.events_received == EVENTS, "nothing processed twice"
    if "latency_ms" not in faults:
        assert sum(server.faults_injected().values()) > 0
        assert summary.retries > 0


def test_lost_acknowledgements_do_not_count_twice(
    tmp_path: Path, home: Path, server: LocalDatasetsServer
) -> None:
    server.set_faults(lost_ack_rate=0.4, paths=("/import-events",))
    summary = make_engine(datasets_config(tmp_path, server), home).run("demo")
    contents = server.store.contents("DEMO", summary.version_id)
    assert server.faults_injected().get("lost_ack", 0) > 0
    assert contents.events_received > EVENTS, "some batches were stored, then re-sent"
    assert_exact(server, summary.version_id)


def test_a_fault_that_never_clears_fails_the_run_and_publishes_nothing(
    tmp_path: Path, home: Path, server: LocalDatasetsServer
) -> None:
    server.set_faults(fail_rate=1.0, paths=("/import-events",))
    engine = make_engine(datasets_config(tmp_path, server, max_retries=3), home)
    with pytest.raises(RunFailed, match="HTTP 500"):
        engine.run("demo")
    (version,) = server.store.list_versions("DEMO")
    assert not version.readable and not version.is_live
    assert server.requests_to("/datasets/DEMO/versions/" + version.version_id, "PATCH") == 0
    (row,) = engine.ledger.list_runs("demo")
    assert row["status"] == "failed"
    assert "HTTP 500" in row["error"]
    assert row["retries"] >= 3


def _write_config_file(tmp_path: Path, server: LocalDatasetsServer, events: int) -> Path:
    """A file for ``mpconnect run demo`` over the server; a fault that clears within a
    minute and a half is retried, every 0.05 to 1 s, so a test can hold a run at it."""
    path = tmp_path / "mpconnect.toml"
    path.write_text(
        textwrap.dedent(f"""
        [mixpanel]
        sink = "datasets"
        api_url = "{server.url}"
        project_token = "{TOKEN}"
        secret = "${{MIXPANEL_SECRET}}"
        ca_bundle = "{server.ca_path}"
        [engine]
        concurrency = 1
        retry_initial_wait = 0.05
        retry_max_wait = 1
        max_retries = 100
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.demo.settings]
        events = {events}
    """)
    )
    return path


def _mpconnect(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mpconnect", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _ledger_row(home: Path) -> dict:
    try:
        with sqlite3.connect(home / "ledger.sqlite3") as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
            acked = db.execute("SELECT COUNT(*) FROM batches WHERE acked = 1").fetchone()[0]
    except sqlite3.OperationalError:  # the run has not created its tables yet
        return {"acked": 0}
    return {**dict(row), "acked": acked} if row else {"acked": acked}


def test_kill_9_mid_upload_then_the_next_run_resumes_the_same_version(
    tmp_path: Path, home: Path, server: LocalDatasetsServer
) -> None:
    events = 12_000  # 12 event batches + 2 people batches
    config = _write_config_file(tmp_path, server, events)
    env = dict(os.environ, MPCONNECT_HOME=str(home), MIXPANEL_SECRET=SECRET)
    # The run is held mid-upload: its event batches go through, its people batches are
    # answered 500 and retried until the kill.
    server.set_faults(fail_rate=1.0, paths=("/import-people",))
    first = _mpconnect("--config", str(config), "run", "demo", env=env)
    try:
        wait_until(
            lambda: (
                (home / "ledger.sqlite3").exists()
                and _ledger_row(home).get("extraction_done") == 1
                and _ledger_row(home)["acked"] == 12
                and server.requests_to("/import-people") >= 1
            )
        )
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(SAFETY_TIMEOUT)
    killed = _ledger_row(home)
    assert killed["status"] == "running", "a killed run never got to record an outcome"
    version_id = killed["version_id"]
    assert not server.store.get_version("DEMO", version_id).readable
    acked_before = killed["acked"]
    assert acked_before == 12
    shown = subprocess.run(
        [sys.executable, "-m", "mpconnect", "--config", str(config), "runs", "--json"],
        env=env,
        capture_output=True,
        timeout=SAFETY_TIMEOUT,
    )
    [row] = json.loads(shown.stdout)
    assert row["status"] == "dead", "no process holds the lock: the run is not running"
    assert row["imported"] == 1000 * acked_before, "what was acknowledged before the kill"

    server.reset_faults()
    server.reset_counts()
    second = _mpconnect("--config", str(config), "run", "demo", env=env)
    output = second.communicate(timeout=SAFETY_TIMEOUT)[0].decode()
    assert second.returncode == 0, output
    assert f"resumed version {version_id}" in output
    sent = server.requests_to("/import-events") + server.requests_to("/import-people")
    assert sent == 14 - acked_before, "only the unacknowledged batches are sent"
    assert server.requests_to("/datasets/DEMO/versions", "POST") == 0, "no new version"
    assert_exact(server, version_id, events)
    contents = server.store.contents("DEMO", version_id)
    assert contents.events_received == events, "no event batch was sent twice"


def test_a_second_run_of_a_running_source_exits_at_once_naming_it(
    tmp_path: Path, home: Path, server: LocalDatasetsServer
) -> None:
    config = _write_config_file(tmp_path, server, 5000)
    env = dict(os.environ, MPCONNECT_HOME=str(home), MIXPANEL_SECRET=SECRET)
    # The first run is held mid-upload, retrying its people batch, until the faults clear.
    server.set_faults(fail_rate=1.0, paths=("/import-people",))
    first = _mpconnect("--config", str(config), "run", "demo", env=env)
    try:
        wait_until(
            lambda: (
                (home / "locks" / "demo.lock").exists()
                and b"pid" in (home / "locks" / "demo.lock").read_bytes()
                and server.requests_to("/import-people") >= 1
            )
        )
        second = _mpconnect("--config", str(config), "run", "demo", env=env)
        output = second.communicate(timeout=SAFETY_TIMEOUT)[0].decode()
        assert second.returncode == 1
        assert f"source 'demo' is already running: pid {first.pid}" in output
        assert first.poll() is None, "the second run returned while the first still ran"
    finally:
        server.reset_faults()
        assert first.wait(SAFETY_TIMEOUT) == 0


def test_pruning_over_the_api_keeps_keep_versions(
    tmp_path: Path, home: Path, server: LocalDatasetsServer
) -> None:
    engine = make_engine(datasets_config(tmp_path, server, events=200), home)
    ids = [engine.run("demo").version_id for _ in range(4)]
    remaining = [v.version_id for v in server.store.list_versions("DEMO")]
    assert remaining == [ids[3], ids[2]]
    assert server.store.live_version("DEMO").version_id == ids[3]


class _LoseDeleteAnswers:
    """Once a version is live, lose every answer about single versions (the prune's
    DELETEs): the server deletes, the client never hears it, retries and gets 404."""

    def __init__(self, server: LocalDatasetsServer) -> None:
        self.server = server

    @mpconnect.hookimpl
    def version_live(self, version_id: str) -> None:
        self.server.set_faults(lost_ack_rate=1.0, paths=("/datasets/DEMO/versions/",))


def test_a_lost_answer_to_a_prune_delete_does_not_fail_the_live_run(
    tmp_path: Path, home: Path, server: LocalDatasetsServer
) -> None:
    config = datasets_config(tmp_path, server, events=200)
    config.sources["demo"].keep_versions = 1
    first = make_engine(config, home).run("demo").version_id
    summary = make_engine(config, home, _LoseDeleteAnswers(server)).run("demo")
    assert summary.status == "succeeded"
    assert server.faults_injected().get("lost_ack", 0) >= 1
    assert [v.version_id for v in server.store.list_versions("DEMO")] == [summary.version_id]
    assert first != summary.version_id
    assert not list((home / "spool").glob("*")), "the published run left no spool"
