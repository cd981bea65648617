"""Runs loading one Mixpanel project at once share its rate limit.

The local server enforces a small project limit (records per rolling window, 429 with
``Retry-After`` past it, as Mixpanel does at 2 GB a minute); three sources run at once, each
in its own ``mpconnect run`` process. Everything measured comes from the server's counters.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpconnect.emulator.server import LocalDatasetsServer, ProjectLimit

pytestmark = pytest.mark.timeout(240)
SECRET = "s3cr3t-project-secret"
#: The project's budget on the local server: records per rolling window of seconds.
LIMIT, WINDOW = 6000, 20.0
EVENTS = 1800  # per source; the demo adds one reviewer profile per 10 events


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalDatasetsServer]:
    with LocalDatasetsServer(
        tmp_path / "server",
        datasets=["DEMOA", "DEMOB", "DEMOC"],
        project_token="tok",
        project_secret=SECRET,
        project_limit=ProjectLimit(events=LIMIT, window=WINDOW),
    ) as running:
        yield running


def write_config(
    path: Path, server: LocalDatasetsServer, engine: str, events: int = EVENTS
) -> Path:
    sources = "".join(
        f"""
        [sources.{name}]
        connector = "demo"
        dataset_id = "DEMO{name.upper()}"
        settings = {{ events = {events}, seed = {seed} }}
        """
        for seed, name in enumerate("abc")
    )
    path.write_text(
        textwrap.dedent(f"""
        [mixpanel]
        sink = "datasets"
        api_url = "{server.url}"
        project_token = "tok"
        secret = "${{MIXPANEL_SECRET}}"
        ca_bundle = "{server.ca_path}"
        [engine]
        max_batch_bytes = 65536
        {engine}
        """)
        + textwrap.dedent(sources)
    )
    return path


def run_at_once(config: Path, home: Path) -> list[str]:
    """Run the three sources, each in its own process, at once; return their outputs."""
    env = dict(os.environ, MPCONNECT_HOME=str(home), MIXPANEL_SECRET=SECRET)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "mpconnect", "--config", str(config), "run", name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name in "abc"
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=200)[0].decode())
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    return outputs


def test_three_sources_share_the_project_limit_without_a_429(
    tmp_path: Path, home: Path, server: LocalDatasetsServer
) -> None:
    """The runs are told the project's limit (per minute, as Mixpanel states it) and use
    90 % of it together: the server refuses nothing and sees 85-100 % of its limit."""
    per_minute = int(LIMIT * 60 / WINDOW)
    config = write_config(
        tmp_path / "mpconnect.toml", server, f"project_events_per_minute = {per_minute}"
    )
    run_at_once(config, home)
    limit = server.project_limit
    assert limit.accepted() == 3 * (EVENTS + EVENTS // 10)
    assert limit.refused() == 0
    assert limit.busiest_window() <= LIMIT
    share = limit.sustained_rate() / (LIMIT / WINDOW)
    assert 0.85 <= share <= 1.0, f"the runs used {share:.0%} of the project's limit"


def test_runs_told_too_high_a_limit_adapt_to_the_real_one(
    tmp_path: Path, home: Path, server: LocalDatasetsServer
) -> None:
    """Told twice the real limit, the runs are refused at first; each 429 halves their
    shared rate and lowers the ceiling it recovers to, and once it has adapted the server
    refuses nothing more while they keep loading."""
    events = 4500
    per_minute = int(LIMIT * 60 / WINDOW) * 2
    config = write_config(
        tmp_path / "mpconnect.toml",
        server,
        f"project_events_per_minute = {per_minute}\nmax_retries = 30",
        events=events,
    )
    outputs = run_at_once(config, home)
    limit = server.project_limit
    assert limit.accepted() == 3 * (events + events // 10)
    assert limit.refused() > 0, outputs  # it had to learn
    last_refusal = max(limit.refused_by_second)
    last_accept = max(limit.accepted_by_second)
    # after the last 429, loading went on for more than a whole window without one
    assert last_accept - last_refusal >= WINDOW, (
        sorted(limit.refused_by_second.items()),
        last_accept,
    )
    assert limit.accepted_between(last_refusal + 1, last_accept + 1) > LIMIT / 2
