"""The incremental controls on the command line: ``run --full-refresh``, ``state show``,
``state reset``, the ``sync`` key and ``connectors list``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def reviews(write_config: Callable[..., Path]) -> Path:
    """A demo source whose reviews change by 5% between runs."""
    return write_config("""
        [mixpanel]
        sink = "embedded"

        [sources.reviews]
        connector = "demo"
        dataset_id = "REVIEWS"

        [sources.reviews.settings]
        events = 600
        reviewers = 40
        changes = 0.05
        """)


def test_runs_say_their_kind_and_state_show_and_reset_work(cli: Any, reviews: Path) -> None:
    shown = cli("--config", reviews, "state", "show", "reviews")
    assert shown.exit_code == 0, shown.output
    assert "reviews: no state: its next run reads everything" in shown.stdout

    first = cli("--config", reviews, "run", "reviews")
    assert first.exit_code == 0, first.output
    assert "full run (first run: no state yet): read 640 objects" in first.stdout
    second = cli("--config", reviews, "run", "reviews")
    assert second.exit_code == 0, second.output
    assert "incremental run: read " in second.stdout
    assert ", 10 deleted), " in second.stdout

    shown = cli("--config", reviews, "state", "show", "reviews")
    assert shown.exit_code == 0, shown.output
    assert "generation = 1" in shown.stdout
    assert "last run: incremental; read " in shown.stdout
    assert "cache: 640 objects" in shown.stdout
    data = json.loads(cli("--config", reviews, "state", "show", "reviews", "--json").stdout)
    assert data["state"] == {"generation": 1} and data["cache"]["objects"] == 640

    refreshed = cli("--config", reviews, "run", "reviews", "--full-refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert "full run (--full-refresh given)" in refreshed.stdout

    reset = cli("--config", reviews, "state", "reset", "reviews")
    assert reset.exit_code == 0, reset.output
    assert "reviews: state and cache reset; the next run reads everything" in reset.stdout
    again = cli("--config", reviews, "run", "reviews")
    assert "full run (first run: no state yet)" in again.stdout


def test_state_of_an_unknown_source_is_refused_naming_it(cli: Any, reviews: Path) -> None:
    result = cli("--config", reviews, "state", "show", "nosuch")
    assert result.exit_code != 0
    assert "nosuch" in result.output and "Traceback" not in result.output


def test_a_bad_sync_value_names_the_key(cli: Any, write_config: Callable[..., Path]) -> None:
    config = write_config("""
        [sources.reviews]
        connector = "demo"
        dataset_id = "REVIEWS"
        sync = "sometimes"
        """)
    result = cli("--config", config, "run", "reviews")
    assert result.exit_code != 0
    assert "sources.reviews.sync: Input should be 'incremental' or 'full'" in result.output


def test_connectors_list_says_which_read_incrementally(cli: Any) -> None:
    result = cli("connectors", "list")
    assert result.exit_code == 0, result.output
    demo = next(line for line in result.stdout.splitlines() if line.startswith("demo"))
    assert "incremental" in demo
    rows = json.loads(cli("connectors", "list", "--json").stdout)
    assert {r["name"]: r["incremental"] for r in rows}["demo"] is True
