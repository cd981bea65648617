"""End to end through the command line: ``mpconnect run demo`` into the embedded store,
retention over repeated runs, ``versions list``, ``inspect``, and how errors look."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mpconnect.store.datasets import DatasetStore
from mpconnect.testing import run_connector
from mpconnect_demo import DemoConnector

SUMMARY = re.compile(
    r"^demo: succeeded\n"
    r"  records read (?P<read>[\d,]+), imported (?P<imported>[\d,]+), "
    r"quarantined (?P<quarantined>[\d,]+), retries \d+\n"
    r"  dataset DEMO version (?P<version>\d+) via embedded; (?P<seconds>[\d.]+) s ",
    re.MULTILINE,
)


def summary_of(stdout: str) -> dict[str, str]:
    """The figures of a run's closing summary."""
    match = SUMMARY.search(stdout)
    assert match, stdout
    return match.groupdict()


def versions(cli: Any, config: Path) -> list[dict[str, Any]]:
    """``versions list DEMO --json``."""
    result = cli("--config", config, "versions", "list", "DEMO", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_run_demo_loads_exactly_what_the_connector_generates(
    cli: Any, demo_config: Path, mpconnect_home: Path
) -> None:
    expected = run_connector(DemoConnector, {"events": 1500}, token="mpconnect-embedded")

    result = cli("--config", demo_config, "run", "demo")

    assert result.exit_code == 0, result.output
    summary = summary_of(result.stdout)
    assert (summary["read"], summary["imported"], summary["quarantined"]) == ("1,650", "1,650", "0")
    store = DatasetStore(mpconnect_home / "embedded.sqlite3")
    try:
        [version] = store.list_versions("DEMO")
        assert version.version_id == summary["version"]
        assert version.is_live
        events = sorted(
            store.iter_events("DEMO", version.version_id),
            key=lambda e: e["properties"]["$insert_id"],
        )
        people = sorted(
            store.iter_people("DEMO", version.version_id), key=lambda p: p["$distinct_id"]
        )
    finally:
        store.close()
    assert len(expected.events) == 1500 and len(expected.people) == 150
    assert events == sorted(expected.events, key=lambda e: e["properties"]["$insert_id"])
    assert people == sorted(expected.people, key=lambda p: p["$distinct_id"])


def test_inspect_shows_the_counts(cli: Any, demo_config: Path) -> None:
    cli("--config", demo_config, "run", "demo")

    text = cli("--config", demo_config, "inspect", "DEMO")
    as_json = cli("--config", demo_config, "inspect", "DEMO", "--json", "--samples", "2")

    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert re.fullmatch(r"dataset DEMO version \d+ \(live\) in .*embedded\.sqlite3", lines[0])
    assert lines[1:4] == [
        "events: 1,500",
        "  Airline Review: 1,500",
        "people records: 150 (150 profiles)",
    ]
    report = json.loads(as_json.stdout)
    assert {
        k: report[k]
        for k in (
            "events_total",
            "events_by_name",
            "events_received",
            "people_total",
            "profiles",
            "people_received",
            "is_live",
        )
    } == {
        "events_total": 1500,
        "events_by_name": {"Airline Review": 1500},
        "events_received": 1500,
        "people_total": 150,
        "profiles": 150,
        "people_received": 150,
        "is_live": True,
    }
    assert len(report["sample_events"]) == 2
    assert report["sample_events"][0]["properties"]["token"] == "mpconnect-embedded"
    assert report["sample_people"][0]["$token"] == "mpconnect-embedded"


def test_seven_runs_leave_at_most_five_versions_and_the_newest_live(
    cli: Any, write_config: Any
) -> None:
    config = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        keep_versions = 5

        [sources.demo.settings]
        events = 1500
    """)

    created = []
    for _ in range(7):
        result = cli("--config", config, "run", "demo")
        assert result.exit_code == 0, result.output
        created.append(summary_of(result.stdout)["version"])
    listed = versions(cli, config)

    assert len(set(created)) == 7
    assert [v["version_id"] for v in listed] == created[::-1][:5]
    assert [v["is_live"] for v in listed] == [True, False, False, False, False]
    newest = listed[0]
    assert newest["state"]["readable"] is True and newest["state"]["ready"] is True
    inspected = json.loads(cli("--config", config, "inspect", "DEMO", "--json").stdout)
    assert inspected["version_id"] == created[-1]
    assert inspected["events_total"] == 1500


def test_the_default_retention_keeps_two_versions(cli: Any, demo_config: Path) -> None:
    for _ in range(3):
        assert cli("--config", demo_config, "run", "demo").exit_code == 0

    listed = versions(cli, demo_config)

    assert len(listed) == 2
    assert listed[0]["is_live"] and not listed[1]["is_live"]


def test_versions_list_shows_the_state_object(cli: Any, demo_config: Path) -> None:
    cli("--config", demo_config, "run", "demo")

    [version] = versions(cli, demo_config)
    text = cli("--config", demo_config, "versions", "list", "DEMO")

    assert set(version) == {"version_id", "created_at", "is_live", "state"}
    assert set(version["state"]) == {"readable", "readable_at", "ready", "ready_at", "writable"}
    assert version["state"]["readable"] and version["state"]["ready"] and version["is_live"]
    assert version["state"]["writable"] is False
    timestamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    assert re.fullmatch(timestamp, version["created_at"])
    assert re.fullmatch(timestamp, version["state"]["ready_at"])
    header, row = text.stdout.splitlines()
    assert header.split() == [
        "VERSION",
        "CREATED",
        "LIVE",
        "READABLE",
        "WRITABLE",
        "READY",
        "READY",
        "AT",
    ]
    assert row.split()[0] == version["version_id"]
    assert row.split()[2:6] == ["yes", "yes", "no", "yes"]


def test_run_demo_works_on_a_fresh_machine_without_configuration(cli: Any) -> None:
    result = cli("run", "demo")
    shown = cli("inspect", "DEMO", "--json")

    assert result.exit_code == 0, result.output
    assert summary_of(result.stdout)["imported"] == "11,000"
    report = json.loads(shown.stdout)
    assert (report["events_total"], report["profiles"]) == (10_000, 1_000)


def test_quarantined_demo_records_are_counted_and_the_run_publishes(
    cli: Any, write_config: Any, mpconnect_home: Path
) -> None:
    config = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        max_quarantined = 0.05

        [sources.demo.settings]
        events = 100
        bad_records = 3
    """)

    result = cli("--config", config, "run", "demo")

    assert result.exit_code == 0, result.output
    summary = summary_of(result.stdout)
    assert (summary["read"], summary["imported"], summary["quarantined"]) == ("113", "110", "3")
    [path] = (mpconnect_home / "quarantine" / "demo").glob("*.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["what"] for line in lines] == [
        f"event 'Airline Review' object bad-review-{i} (distinct_id 'reviewer-{i}')"
        for i in range(3)
    ]
    assert {line["field"] for line in lines} == {"time"}
    assert all(line["reason"].startswith("field 'time': naive datetime") for line in lines)


def test_sources_list_shows_the_last_run(cli: Any, demo_config: Path) -> None:
    before = json.loads(cli("--config", demo_config, "sources", "list", "--json").stdout)
    cli("--config", demo_config, "run", "demo")
    after = json.loads(cli("--config", demo_config, "sources", "list", "--json").stdout)

    [demo_before] = [row for row in before if row["name"] == "demo"]
    [demo_after] = [row for row in after if row["name"] == "demo"]
    assert demo_before["last_status"] is None
    assert (demo_after["connector"], demo_after["dataset_id"]) == ("demo", "DEMO")
    assert demo_after["last_status"] == "succeeded"
    assert demo_after["last_version"] == versions(cli, demo_config)[0]["version_id"]


def test_inspect_an_older_version(cli: Any, demo_config: Path) -> None:
    cli("--config", demo_config, "run", "demo")
    cli("--config", demo_config, "run", "demo")
    older = versions(cli, demo_config)[1]["version_id"]

    report = json.loads(
        cli("--config", demo_config, "inspect", "DEMO", "--version", older, "--json").stdout
    )

    assert report["version_id"] == older
    assert report["is_live"] is False
    assert report["events_total"] == 1500


# -- errors: one line, non-zero; a traceback only when asked ------------------------------


def test_inspect_errors_are_one_clear_line(cli: Any, demo_config: Path) -> None:
    no_store = cli("--config", demo_config, "inspect", "DEMO")
    cli("--config", demo_config, "run", "demo")
    no_dataset = cli("--config", demo_config, "inspect", "SALES")
    no_version = cli("--config", demo_config, "inspect", "DEMO", "--version", "42")

    for result in (no_store, no_dataset, no_version):
        assert result.exit_code == 1
        assert len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith("mpconnect: error: ")
    assert "run a source first (mpconnect run demo)" in no_store.stderr
    assert "dataset SALES is not in" in no_dataset.stderr
    assert no_dataset.stderr.rstrip().endswith("datasets: DEMO")
    assert "dataset DEMO has no version 42" in no_version.stderr


def test_versions_of_an_unknown_dataset(cli: Any, demo_config: Path) -> None:
    result = cli("--config", demo_config, "versions", "list", "SALES")

    assert result.exit_code == 0
    assert result.stdout == "dataset SALES has no versions in the embedded sink\n"


def test_a_traceback_only_with_debug(cli: Any, demo_config: Path) -> None:
    plain = cli("--config", demo_config, "run", "nosuch")
    flag = cli("--config", demo_config, "--debug", "run", "nosuch")
    variable = cli("--config", demo_config, "run", "nosuch", env={"MPCONNECT_DEBUG": "1"})

    assert plain.exit_code == 1
    assert plain.stderr.startswith("mpconnect: error: ")
    assert isinstance(plain.exception, SystemExit)
    assert "Traceback" not in plain.stderr
    for result in (flag, variable):
        assert result.exit_code == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert "mpconnect.errors.ConfigError:" in result.stderr
        assert "mpconnect: error: " in result.stderr and "no source 'nosuch'" in result.stderr


def test_run_without_a_source_is_a_usage_error(cli: Any) -> None:
    result = cli("run")

    assert result.exit_code == 2
    assert "name at least one source, or give --all" in result.stderr


def test_run_several_sources_prints_a_summary_for_each(cli: Any, write_config: Any) -> None:
    config = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.demo.settings]
        events = 10

        [sources.reviews]
        connector = "demo"
        dataset_id = "REVIEWS"
        [sources.reviews.settings]
        events = 30
        seed = 7
    """)

    result = cli("--config", config, "run", "demo", "reviews")

    assert result.exit_code == 0, result.output
    assert "demo: succeeded" in result.stdout
    assert "reviews: succeeded" in result.stdout
    assert "records read 33, imported 33" in result.stdout
    shown = json.loads(cli("--config", config, "inspect", "REVIEWS", "--json").stdout)
    assert shown["events_total"] == 30


def test_with_json_logs_the_run_summary_is_one_json_object(cli: Any, write_config: Any) -> None:
    path = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.demo.settings]
        events = 100
    """)
    result = cli("--config", path, "--log-format", "json", "run", "demo")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["read"], summary["imported"]) == ("succeeded", 110, 110)
    assert summary["version_id"] and summary["duration"] >= 0
