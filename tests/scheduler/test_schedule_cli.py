"""``mpconnect schedule --print-crontab``, its configuration errors, and the schedule, next
run and last run columns of ``mpconnect sources list``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import mpconnect_demo
from mpconnect.errors import MpconnectError
from mpconnect.scheduler import CronSchedule, load_zone
from mpconnect.scheduler.state import SchedulerLock
from mpconnect.sinks import builtin

pytestmark = pytest.mark.timeout(300)

PLUGINS = (mpconnect_demo, builtin)
CONFIG = """
    [scheduler]
    timezone = "Europe/Paris"

    [sources.nightly]
    connector = "demo"
    dataset_id = "NIGHTLY"
    schedule = "30 2 * * *"
    settings = { events = 20 }

    [sources.new_year]
    connector = "demo"
    dataset_id = "NEWYEAR"
    schedule = "0 0 1 1 *"
    settings = { events = 20 }

    [sources.often]
    connector = "demo"
    dataset_id = "OFTEN"
    schedule = "*/10 * * * * *"
    settings = { events = 20 }
    """


@pytest.fixture
def config(write_config: Callable[..., Path]) -> Path:
    return write_config(CONFIG)


def run(cli: Any, *args: object) -> Any:
    return cli(*args, plugins=PLUGINS, entry_points=False)


def test_print_crontab_writes_one_line_per_source_that_cron_can_run(
    cli: Any, config: Path, mpconnect_home: Path
) -> None:
    result = run(cli, "schedule", "--config", config, "--print-crontab")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    command = f"{Path(sys.executable).parent / 'mpconnect'} --config {config.resolve()}"
    assert "CRON_TZ=Europe/Paris" in lines
    assert f"MPCONNECT_HOME={mpconnect_home.resolve()}" in lines
    assert f"0 0 1 1 * {command} run --quiet new_year" in lines
    assert f"30 2 * * * {command} run --quiet nightly" in lines
    assert (
        "# often: '*/10 * * * * *' has a seconds field, which cron cannot express; run it "
        "with `mpconnect schedule` instead"
    ) in lines
    assert result.stderr == (
        "mpconnect: warning: sources.often.schedule has a seconds field; "
        "cron cannot run it (left as a comment)\n"
    )
    assert all(
        line.startswith(("#", "CRON_TZ=", "MPCONNECT_HOME=", "0 0", "30 2")) for line in lines
    )


def test_schedule_without_any_scheduled_source_says_how_to_add_one(
    cli: Any, write_config: Callable[..., Path]
) -> None:
    path = write_config('[sources.a]\nconnector = "demo"\ndataset_id = "A"\n')
    result = run(cli, "--config", path, "schedule")
    assert result.exit_code == 1
    assert result.stderr == (
        f"mpconnect: error: {path}: no source has a schedule; add one to a [sources.NAME] "
        'table, such as schedule = "0 2 * * *" (02:00 every day)\n'
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '[sources.a]\nconnector = "demo"\ndataset_id = "A"\nschedule = "every day"\n',
            "sources.a.schedule: 'every day' is not a cron expression: write 5 fields",
        ),
        (
            '[scheduler]\ntimezone = "Paris"\n[sources.a]\nconnector = "demo"\ndataset_id = "A"\n'
            'schedule = "0 2 * * *"\n',
            "scheduler.timezone: unknown time zone 'Paris'",
        ),
        ('[scheduler]\ncatch_up = "all"\n', "scheduler.catch_up: Input should be 'once' or 'skip'"),
    ],
)
def test_schedule_refuses_to_start_on_a_bad_configuration(
    cli: Any, write_config: Callable[..., Path], text: str, error: str
) -> None:
    path = write_config(text)
    result = run(cli, "schedule", "--config", path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"mpconnect: error: {path}: {error}"), result.stderr


def test_a_second_scheduler_on_the_same_home_exits_with_a_clear_error(
    cli: Any, config: Path, mpconnect_home: Path
) -> None:
    first = SchedulerLock(mpconnect_home / "scheduler.lock")
    first.acquire()
    try:
        result = run(cli, "--config", config, "schedule")
    finally:
        first.release()
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "mpconnect: error: another mpconnect schedule is already running with this data "
        f"directory (pid {os.getpid()} on "
    ), result.stderr
    assert result.stderr.endswith("stop it first, or set MPCONNECT_HOME to another directory\n")


def test_sources_list_shows_schedule_next_run_and_last_run(cli: Any, config: Path) -> None:
    before = {
        row["name"]: row
        for row in json.loads(run(cli, "--config", config, "sources", "list", "--json").stdout)
    }
    assert run(cli, "--config", config, "run", "--quiet", "nightly").exit_code == 0
    result = run(cli, "--config", config, "sources", "list")
    after = {
        row["name"]: row
        for row in json.loads(run(cli, "--config", config, "sources", "list", "--json").stdout)
    }

    paris = load_zone("Europe/Paris")
    year = datetime.now(paris).year + 1
    new_year = datetime(year, 1, 1, tzinfo=paris)
    assert after["new_year"]["next_run"] == new_year.isoformat()
    assert after["new_year"]["timezone"] == "Europe/Paris"
    assert after["demo"]["schedule"] is None and after["demo"]["next_run"] is None
    assert before["nightly"]["last_status"] is None
    assert after["nightly"]["last_status"] == "succeeded"
    assert after["nightly"]["last_started_at"] > 0
    assert after["new_year"]["last_status"] is None

    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "CONNECTOR",
        "DATASET",
        "SCHEDULE",
        "NEXT",
        "RUN",
        "LAST",
        "RUN",
        "STATUS",
        "KEEP",
    ]
    table = {row.split()[0]: row for row in rows}
    assert f"{year}-01-01 00:00:00 CET" in table["new_year"]
    assert table["new_year"].split()[-2:] == ["never", "2"]
    assert table["nightly"].split()[-2:] == ["succeeded", "2"]
    assert table["demo"].split()[3:6] == ["-", "-", "-"]


def test_sources_list_marks_an_invalid_schedule(
    cli: Any, write_config: Callable[..., Path]
) -> None:
    path = write_config(
        '[sources.a]\nconnector = "demo"\ndataset_id = "A"\nschedule = "0 25 * * *"\n'
    )
    [row] = [
        r
        for r in json.loads(run(cli, "--config", path, "sources", "list", "--json").stdout)
        if r["name"] == "a"
    ]
    assert row["next_run"] is None
    assert row["next_run_error"].startswith("sources.a.schedule: '0 25 * * *' is not a valid")
    table = run(cli, "--config", path, "sources", "list").stdout
    assert "invalid schedule" in table


def test_without_croniter_scheduling_says_which_extra_to_install(
    cli: Any, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "croniter", None)  # what a missing package looks like
    with pytest.raises(MpconnectError, match=r'pip install "mpconnect\[schedule\]"'):
        CronSchedule("0 2 * * *", load_zone("UTC"))
    result = run(cli, "--config", config, "schedule")
    assert result.exit_code == 1
    assert result.stderr == (
        "mpconnect: error: scheduling needs the croniter package: "
        'pip install "mpconnect[schedule]"\n'
    )
    table = run(cli, "--config", config, "sources", "list").stdout
    assert "needs mpconnect[schedule]" in table
