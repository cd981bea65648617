""" "Run now" on the page of ``mpconnect ui`` alone: the run starts in the background."""

from __future__ import annotations

from pathlib import Path

from mpconnect.cli.context import CliState
from mpconnect.cli.ui import _BackgroundRuns


def test_run_now_without_a_scheduler_runs_the_source(demo_config: Path) -> None:
    state = CliState(config_path=str(demo_config))
    runs = _BackgroundRuns(state)
    assert runs("nope") == "nope: not started: no such source in the configuration"
    assert runs("demo") == "demo: run started"
    thread = runs._threads["demo"]
    assert runs("demo") in (
        "demo: not started: a run started here is still going",
        "demo: run started",
    )
    thread.join(120)
    for other in runs._threads.values():
        other.join(120)
    rows = state.engine.ledger.list_runs("demo")
    assert rows and all(row["status"] == "succeeded" for row in rows)
