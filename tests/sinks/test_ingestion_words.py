"""What a user reads with ``sink = "ingestion"``: runs and batches, never versions; and a
resumed run whose progress lines and summary agree on the records read."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingestion_support import (
    ingestion_mixpanel_toml,
)

from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.engine import progress

pytestmark = pytest.mark.timeout(300)

#: The ``small`` source: 1500 events and 150 profiles, one /import and one /engage batch.
SMALL_RECORDS = 1650


def ingestion_config(
    mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path], engine: str = ""
) -> Path:
    """The ``small`` demo source through the ingestion sink, with an optional [engine]."""
    return write_config(f"""{ingestion_mixpanel_toml(mixpanel_server)}

        [engine]
        {engine}

        [sources.small]
        connector = "demo"
        dataset_id = "SMALL"

        [sources.small.settings]
        events = 1500
        """)


def ledger(cli: Any, config: Path) -> list[dict[str, Any]]:
    """``mpconnect runs --json``, newest first."""
    shown = cli("--config", config, "runs", "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)


def test_a_failed_and_resumed_ingestion_run_speaks_of_runs_and_batches(
    mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path], cli: Any
) -> None:
    config = ingestion_config(mixpanel_server, write_config)
    mixpanel_server.ingestion.faults.fail_next(400, path="/import")
    failed = cli("--config", config, "run", "small", "--concurrency", "1")
    assert failed.exit_code == 1
    run_id = ledger(cli, config)[0]["run_id"]
    lines = failed.stderr.splitlines()
    assert lines[-1] == (
        "mpconnect: error: small: HTTP 400: /import of 1500 events: injected fault; the next "
        f"run resumes run {run_id}, sending only its batches not yet acknowledged (give "
        "--restart to extract the source again)"
    )
    assert "small: failed" in lines
    assert f"  records read {SMALL_RECORDS:,}, imported 0, quarantined 0, retries 0" in lines
    assert any(
        line.startswith("  0 batches acknowledged via the ingestion sink (no versions)")
        for line in lines
    )
    assert "version" not in failed.stderr.replace("(no versions)", "")

    table = cli("--config", config, "runs")
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[0].split()
    assert header[:6] == ["STARTED", "SOURCE", "SINK", "STATUS", "RUN", "BATCHES"]
    assert "VERSION" not in header

    resumed = cli("--config", config, "run", "small")
    assert resumed.exit_code == 0, resumed.output
    assert (
        f"small: resuming run {run_id}: sending only its batches not yet acknowledged"
        in resumed.stderr
    )
    assert resumed.stdout.splitlines()[0] == f"small: succeeded (resumed run {run_id})"
    assert "  2 batches acknowledged via the ingestion sink (no versions); " in resumed.stdout
    assert "version " not in resumed.output

    rows = cli("--config", config, "runs").stdout.splitlines()
    assert rows[1].split()[2:7] == ["small", "ingestion", "succeeded", run_id, "2"]
    assert rows[2].split()[2:7] == ["small", "ingestion", "resumed", run_id, "0"]


def test_a_resumed_runs_progress_lines_and_summary_agree_on_records_read(
    mixpanel_server: LocalDatasetsServer,
    write_config: Callable[..., Path],
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = ingestion_config(mixpanel_server, write_config)
    mixpanel_server.ingestion.faults.fail_next(400, path="/import")
    assert cli("--config", config, "run", "small", "--concurrency", "1").exit_code == 1

    # Off a terminal (as under CliRunner) progress is a log line every LOG_INTERVAL
    # seconds: make it often, and each answer slow, so lines are logged while uploading.
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.02)
    mixpanel_server.ingestion.faults.latency = 0.3
    resumed = cli("--config", config, "run", "small")
    assert resumed.exit_code == 0, resumed.output

    summary_read = re.search(r"records read ([\d,]+),", resumed.stdout)
    assert summary_read is not None, resumed.stdout
    assert int(summary_read.group(1).replace(",", "")) == SMALL_RECORDS
    lines = re.findall(r"small: read (\d+), imported (\d+) \(", resumed.stderr)
    assert lines, resumed.stderr
    assert {int(read) for read, _ in lines} == {SMALL_RECORDS}
    # Nothing had been acknowledged: the upload count starts at 0 and ends at all of them.
    assert [int(imported) for _, imported in lines] == sorted(int(i) for _, i in lines)


def failed_after_its_events(
    mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path], cli: Any
) -> Path:
    """The config of a run of ``small`` that failed with its events' batch acknowledged
    and its people batch refused."""
    config = ingestion_config(mixpanel_server, write_config)
    mixpanel_server.ingestion.faults.fail_next(400, path="/engage")  # /import's 1500 get through
    failed = cli("--config", config, "run", "small", "--concurrency", "1")
    assert failed.exit_code == 1
    assert "1 batch acknowledged" in failed.stderr
    return config


def test_a_resumed_runs_progress_starts_from_what_was_acknowledged(
    mixpanel_server: LocalDatasetsServer,
    write_config: Callable[..., Path],
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = failed_after_its_events(mixpanel_server, write_config, cli)

    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.02)
    mixpanel_server.ingestion.faults.latency = 0.3
    resumed = cli("--config", config, "run", "small")
    assert resumed.exit_code == 0, resumed.output
    assert f"records read {SMALL_RECORDS:,}, imported {SMALL_RECORDS:,}," in resumed.stdout
    lines = re.findall(r"small: read (\d+), imported (\d+) \(", resumed.stderr)
    assert lines, resumed.stderr
    assert {(int(read), int(imported)) for read, imported in lines} <= {
        (SMALL_RECORDS, 1500),
        (SMALL_RECORDS, SMALL_RECORDS),
    }


def test_a_resumed_runs_first_progress_line_counts_the_batches_imported_before(
    mixpanel_server: LocalDatasetsServer,
    write_config: Callable[..., Path],
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = failed_after_its_events(mixpanel_server, write_config, cli)

    # The line a user reads if the first log line comes before anything is sent.
    at_start: list[str] = []
    start = progress.LogProgress.start

    def start_and_read(self: progress.LogProgress, *args: Any, **kwargs: Any) -> None:
        start(self, *args, **kwargs)
        at_start.append(self.line())

    monkeypatch.setattr(progress.LogProgress, "start", start_and_read)
    resumed = cli("--config", config, "run", "small")
    assert resumed.exit_code == 0, resumed.output
    [line] = at_start
    assert line.startswith(f"small: read {SMALL_RECORDS}, imported 1500 ("), line
    assert line.endswith("), quarantined 0")


def test_an_ingestion_run_stopped_by_its_deadline_names_the_run_it_leaves(
    mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path], cli: Any
) -> None:
    # Every request answers 503 and each retry waits a minute: only the deadline ends it.
    config = ingestion_config(
        mixpanel_server,
        write_config,
        engine=(
            "max_run_time = 2\nmax_retries = 100\nretry_initial_wait = 60\nretry_max_wait = 600"
        ),
    )
    mixpanel_server.ingestion.faults.error_rate = 1.0
    failed = cli("--config", config, "run", "small")
    assert failed.exit_code == 1
    run_id = ledger(cli, config)[0]["run_id"]
    assert failed.stderr.splitlines()[-1] == (
        "mpconnect: error: small: stopped after engine.max_run_time (2 s) with batches still "
        f"to send; the next run resumes run {run_id}, sending only its batches not yet "
        "acknowledged (give --restart to extract the source again)"
    )


def test_versions_list_with_the_ingestion_sink_points_at_runs(
    mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path], cli: Any
) -> None:
    shown = cli(
        "--config", ingestion_config(mixpanel_server, write_config), "versions", "list", "SMALL"
    )
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.strip() == (
        "dataset SMALL has no versions in the ingestion sink (it loads without versions; "
        "its runs and batches: mpconnect runs)"
    )


def test_a_history_of_both_kinds_of_sink_heads_its_id_column_version_or_run(
    mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path], cli: Any
) -> None:
    embedded = write_config(
        """
        [sources.small]
        connector = "demo"
        dataset_id = "SMALL"

        [sources.small.settings]
        events = 1500
        """,
        name="embedded.toml",
    )
    assert cli("--config", embedded, "run", "small").exit_code == 0
    only_versions = cli("--config", embedded, "runs").stdout.splitlines()[0].split()
    assert only_versions[4] == "VERSION" and "BATCHES" not in only_versions

    config = ingestion_config(mixpanel_server, write_config)
    assert cli("--config", config, "run", "small").exit_code == 0
    table = cli("--config", config, "runs").stdout.splitlines()
    assert table[0].split()[4:6] == ["VERSION/RUN", "BATCHES"]
    newest, oldest = ledger(cli, config)
    assert table[1].split()[2:7] == ["small", "ingestion", "succeeded", newest["run_id"], "2"]
    assert table[2].split()[2:7] == [
        "small",
        "embedded",
        "succeeded",
        oldest["version_id"],
        "3",
    ]  # 1000-record batches: 1000 + 500 events, 150 people


def test_a_source_on_the_demos_dataset_gets_no_pruning_warning_without_versions(
    mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path], cli: Any
) -> None:
    config = ingestion_config(mixpanel_server, write_config)
    config.write_text(config.read_text().replace('"SMALL"', '"DEMO"'))
    ran = cli("--config", config, "run", "small")
    assert ran.exit_code == 0, ran.output
    assert "WARNING" not in ran.stderr


def test_restart_abandons_an_unfinished_ingestion_run_by_its_name(
    mixpanel_server: LocalDatasetsServer, write_config: Callable[..., Path], cli: Any
) -> None:
    config = ingestion_config(mixpanel_server, write_config)
    mixpanel_server.ingestion.faults.fail_next(400, path="/import")
    assert cli("--config", config, "run", "small", "--concurrency", "1").exit_code == 1
    run_id = ledger(cli, config)[0]["run_id"]
    again = cli("--config", config, "run", "small", "--restart")
    assert again.exit_code == 0, again.output
    assert f"WARNING small: abandoning unfinished run {run_id}: --restart given" in again.stderr
    assert "version " not in again.output
