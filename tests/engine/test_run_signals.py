"""`mpconnect run` stops at a checkpoint on SIGTERM, and the next run resumes or restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from engine_support import SAFETY_TIMEOUT, wait_until

from mpconnect.store.datasets import DatasetStore


def test_sigterm_stops_at_a_checkpoint_and_the_next_run_loads_exact_counts(
    tmp_path: Path, home: Path
) -> None:
    config = tmp_path / "mpconnect.toml"
    config.write_text(
        textwrap.dedent("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.demo.settings]
        events = 3000000
    """)
    )
    env = dict(os.environ, MPCONNECT_HOME=str(home))
    first = subprocess.Popen(
        [sys.executable, "-m", "mpconnect", "--config", str(config), "run", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_until(
        lambda: any((home / "spool").glob("*/*.json")) if (home / "spool").exists() else False,
        timeout=SAFETY_TIMEOUT,
    )
    first.send_signal(signal.SIGTERM)
    output = first.communicate(timeout=SAFETY_TIMEOUT)[0].decode()
    assert first.returncode == 1, output
    assert "SIGTERM: stopping at the next checkpoint" in output
    assert "stopped on request" in output

    config.write_text(config.read_text().replace("3000000", "2000"))
    second = subprocess.run(
        [sys.executable, "-m", "mpconnect", "--config", str(config), "run", "demo"],
        env=env,
        capture_output=True,
        timeout=SAFETY_TIMEOUT,
    )
    assert second.returncode == 0, second.stderr.decode()
    store = DatasetStore(home / "embedded.sqlite3")
    live = store.live_version("DEMO")
    assert live is not None
    assert store.contents("DEMO", live.version_id).events_total == 2000
    assert "abandoning unfinished version" in second.stderr.decode()
