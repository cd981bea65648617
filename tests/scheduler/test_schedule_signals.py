"""``mpconnect schedule`` as a real process: SIGHUP with a broken file keeps the old
configuration, SIGTERM mid-run exits 0 within a bound, and the next ``mpconnect run``
resumes the version or starts anew, as the engine's rules and the ledger say.

The process is this module run with ``python -c``: :func:`main` is the real command line
with a test plugin added (a connector and a sink the test can hold at a gate file).
Per-second schedules keep every wait short; the test waits on files, log lines and the
ledger, never on a clock.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mpconnect
import mpconnect_demo
from mpconnect.sink import ImportResult, RecordKind
from mpconnect.sinks import builtin
from mpconnect.sinks.embedded import EmbeddedSink

pytestmark = pytest.mark.timeout(300)

#: ``POINT:FOLDER`` (set only in the child): the run is held at POINT (``extraction``:
#: the connector after ten records; ``upload``: the sink's first upload), which writes
#: ``POINT.held`` in FOLDER, then waits until the test writes ``open`` there.
GATE_ENV = "MPCONNECT_TEST_GATE"
#: Seconds any wait of these tests allows before failing: a safety net for a hang only.
SAFETY_TIMEOUT = 120.0


def hold(name: str) -> None:
    """In the child: if the gate is at ``name``, say the run reached it and wait until the
    test opens the gate."""
    point, _, folder = os.environ.get(GATE_ENV, "").partition(":")
    if point != name:
        return
    gate = Path(folder)
    (gate / f"{name}.held").touch()
    deadline = time.monotonic() + SAFETY_TIMEOUT
    while not (gate / "open").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test never opened the gate held at {name}")
        time.sleep(0.01)  # polling a file another process writes


class Gate:
    """The test's side of a gate at ``point`` (see :data:`GATE_ENV`)."""

    def __init__(self, folder: Path, point: str) -> None:
        folder.mkdir()
        self.folder = folder
        self.env = {GATE_ENV: f"{point}:{folder}"}

    def wait_held(self, name: str) -> None:
        """Wait until the child holds its run at ``name``."""
        deadline = time.monotonic() + SAFETY_TIMEOUT
        while not (self.folder / f"{name}.held").exists():
            assert time.monotonic() < deadline, f"the run never reached {name}"
            time.sleep(0.01)

    def open(self) -> None:
        """Let the held run go on."""
        (self.folder / "open").touch()


class SlowSettings(mpconnect.ConnectorSettings):
    events: int = 100


class SlowConnector(mpconnect.Connector):
    """Events ``tick-0`` ... ``tick-N``; with a gate, held after ten records."""

    name = "slow"
    Settings = SlowSettings

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(self.settings.events):
            if index == 10:
                hold("extraction")
            yield mpconnect.Event(
                name="Tick",
                distinct_id=f"user-{index % 7}",
                time=1_700_000_000 + index,
                object_id=f"tick-{index}",
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        return iter(())


class SlowSink(EmbeddedSink):
    """The embedded store, ten records a batch; with a gate, its first upload is held."""

    name = "slowsink"
    max_batch_records = 10

    def import_batch(
        self, kind: RecordKind, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        hold("upload")
        return super().import_batch(kind, dataset_id, version_id, payload, count)


class SlowPlugin:
    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(SlowConnector)

    @mpconnect.hookimpl
    def register_sinks(self, register: Callable[[type], None]) -> None:
        register(SlowSink)


PLUGINS = (mpconnect_demo, builtin, SlowPlugin())


def main() -> None:
    """The command line with the slow plugin: what the child process runs."""
    from mpconnect.cli import build_cli

    cli = build_cli(extra_plugins=PLUGINS, entry_points=False)
    cli.main(args=sys.argv[1:], prog_name="mpconnect")


class Child:
    """``mpconnect schedule`` in a child process; its stderr lines arrive in a queue."""

    def __init__(self, args: list[str], home: Path, env: dict[str, str]) -> None:
        tests = str(Path(__file__).parent)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import test_schedule_signals as t; t.main()", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": tests, "MPCONNECT_HOME": str(home), **env},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = SAFETY_TIMEOUT) -> str:
        """Return the first new stderr line matching ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} in:\n" + "\n".join(self.lines)
                ) from None
            if line is None:
                raise AssertionError(
                    f"the process ended before {pattern!r}:\n" + "\n".join(self.lines)
                )
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float) -> int:
        """Wait for the exit (at most ``timeout`` s) and the rest of its stderr."""
        code = self.process.wait(timeout)
        while (line := self._queue.get(timeout=SAFETY_TIMEOUT)) is not None:
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(SAFETY_TIMEOUT)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def ledger_rows(home: Path, source: str) -> list[dict[str, Any]]:
    """The source's runs, oldest first, straight from the ledger file."""
    db = sqlite3.connect(home / "ledger.sqlite3", timeout=SAFETY_TIMEOUT)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(
            "SELECT * FROM runs WHERE source = ? ORDER BY started_at", (source,)
        ).fetchall()
        return [dict(row) for row in rows]
    finally:
        db.close()


def events_loaded(cli: Any, config: Path, dataset: str) -> int:
    import json

    result = cli(
        "--config", config, "inspect", dataset, "--json", plugins=PLUGINS, entry_points=False
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["is_live"]
    return report["events_total"]


SLOW_SOURCE = """
    [sources.ticks]
    connector = "slow"
    dataset_id = "TICKS"
    schedule = "* * * * * *"
    settings = { events = 2500 }
    """


def test_sighup_with_a_broken_file_keeps_the_old_one_and_sigterm_stops_mid_run(
    cli: Any,
    write_config: Callable[..., Path],
    mpconnect_home: Path,
    children: list[Child],
    tmp_path: Path,
) -> None:
    config = write_config(SLOW_SOURCE)
    gate = Gate(tmp_path / "gate", "extraction")
    child = Child(
        ["--config", str(config), "schedule", "--reload-interval", "0", "--stop-timeout", "120"],
        mpconnect_home,
        gate.env,
    )
    children.append(child)
    child.wait_for(r"ticks: schedule '\* \* \* \* \* \*' \(UTC\); next run ")

    good = config.read_text()
    config.write_text("[sources.ticks\n")
    child.signal(signal.SIGHUP)
    child.wait_for(r"configuration not reloaded, keeping the previous one: .*not valid TOML")
    config.write_text(good)

    gate.wait_held("extraction")  # the old configuration runs, held mid-extraction
    child.signal(signal.SIGTERM)
    child.wait_for(r"SIGTERM received: starting no more runs")
    gate.open()
    assert child.finish(timeout=SAFETY_TIMEOUT) == 0
    log = "\n".join(child.lines)
    assert "ticks: starting run (scheduled for " in log
    assert re.search(r"ticks: run interrupted \(ticks: stopped on request during extraction", log)
    assert log.endswith("scheduler stopped")

    [stopped] = ledger_rows(mpconnect_home, "ticks")
    assert (stopped["status"], stopped["extraction_done"]) == ("interrupted", 0)
    result = cli("--config", config, "run", "ticks", plugins=PLUGINS, entry_points=False)
    assert result.exit_code == 0, result.output
    first, second = ledger_rows(mpconnect_home, "ticks")
    # The engine's rules: never mix two extractions in one version.
    assert (first["status"], second["resumed"]) == ("abandoned", 0)
    assert (second["status"], second["read"], second["imported"]) == ("succeeded", 2500, 2500)
    assert events_loaded(cli, config, "TICKS") == 2500


def test_sigterm_after_extraction_leaves_a_version_the_next_run_resumes(
    cli: Any,
    write_config: Callable[..., Path],
    mpconnect_home: Path,
    children: list[Child],
    tmp_path: Path,
) -> None:
    config = write_config("""
        [mixpanel]
        sink = "slowsink"
        project_token = "test-token"

        [engine]
        concurrency = 1

        [sources.ticks]
        connector = "slow"
        dataset_id = "TICKS"
        schedule = "* * * * * *"
        settings = { events = 60 }
        """)
    gate = Gate(tmp_path / "gate", "upload")
    child = Child(
        ["--config", str(config), "schedule", "--stop-timeout", "120"], mpconnect_home, gate.env
    )
    children.append(child)
    gate.wait_held("upload")  # the first batch's upload is held; extraction goes on
    deadline = time.monotonic() + SAFETY_TIMEOUT
    while not any(r["extraction_done"] for r in ledger_rows(mpconnect_home, "ticks")):
        assert time.monotonic() < deadline, "extraction never finished"
        time.sleep(0.02)  # polling the ledger another process writes
    child.signal(signal.SIGTERM)
    child.wait_for(r"SIGTERM received: starting no more runs")
    gate.open()
    assert child.finish(timeout=SAFETY_TIMEOUT) == 0
    assert "ticks: run interrupted (ticks: stopped on request before publishing" in "\n".join(
        child.lines
    )

    [stopped] = ledger_rows(mpconnect_home, "ticks")
    assert (stopped["status"], stopped["extraction_done"]) == ("interrupted", 1)
    result = cli("--config", config, "run", "ticks", plugins=PLUGINS, entry_points=False)
    assert result.exit_code == 0, result.output
    assert "ticks: succeeded (resumed version " in result.stdout
    first, second = ledger_rows(mpconnect_home, "ticks")
    assert first["status"] == "resumed"
    assert (second["read"], second["imported"], second["resumed"]) == (60, 60, 1)
    assert events_loaded(cli, config, "TICKS") == 60
