"""SIGTERM and Ctrl-C end a run that is waiting to retry at once, not at the next
checkpoint minutes later (so ``timeout`` and service managers need no SIGKILL).

"At once" is seen in what the server receives, not on a clock: a run that waited its
30 to 60 s out would send its retry before stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import SAFETY_TIMEOUT, wait_until

from mpconnect.emulator.server import LocalDatasetsServer

pytestmark = pytest.mark.timeout(300)
SECRET = "s3cr3t-project-secret"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalDatasetsServer]:
    """The local Datasets API answering every request with 500 (a fault that never clears)."""
    with LocalDatasetsServer(
        tmp_path / "server", datasets=["DEMO"], project_token="tok", project_secret=SECRET, seed=3
    ) as running:
        running.set_faults(fail_rate=1.0)
        yield running


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_ends_a_retry_wait_at_once(
    tmp_path: Path, home: Path, server: LocalDatasetsServer, signum: signal.Signals
) -> None:
    config = tmp_path / "mpconnect.toml"
    config.write_text(
        textwrap.dedent(f"""
        [mixpanel]
        sink = "datasets"
        api_url = "{server.url}"
        project_token = "tok"
        secret = "${{MIXPANEL_SECRET}}"
        ca_bundle = "{server.ca_path}"
        [engine]
        max_retries = 100
        retry_initial_wait = 60    # each retry waits 30 to 60 s, then more
        retry_max_wait = 600
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
    """)
    )
    env = dict(os.environ, MPCONNECT_HOME=str(home), MIXPANEL_SECRET=SECRET)
    process = subprocess.Popen(
        [sys.executable, "-m", "mpconnect", "--config", str(config), "run", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: sum(server.request_counts().values()) >= 1)
        sent = server.request_counts()
        process.send_signal(signum)
        output = process.communicate(timeout=SAFETY_TIMEOUT)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, output
    assert f"{signum.name}: stopping at the next checkpoint" in output
    assert "demo: stopped on request before its version was created; nothing was loaded" in output
    assert "Traceback" not in output
    assert server.request_counts() == sent, "the run retried after the signal"
