"""A connector's pause (``SourcePaused``, an API quota) in one partition of a partitioned
run pauses the run: it ends ``paused: REASON`` with exit status 0 and nothing published,
and the next run resumes its version, reading only the partitions not done and sending
no batch twice, to exactly the snapshot of an uninterrupted run."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import wait_until

import mpconnect
from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.testing import run_cli

pytestmark = pytest.mark.timeout(300)

PARTITIONS = 4
PER_PARTITION = 2500  # three batches of the datasets sink (1,000 records at most)
PAUSE_AFTER = 2200  # two batches spooled, the third not yet full
SECRET = "s3cr3t-project-secret"
TOKEN = "tok-123"


class QuotaConnector(mpconnect.Connector):
    """Four partitions of 2,500 events; when ``pause_in`` names one, it pauses there once,
    after :data:`PAUSE_AFTER` events and once ``before_pause`` returns."""

    name = "quota"
    pause_in: str | None = None
    before_pause: Callable[[], None] = staticmethod(lambda: None)

    def partitions(self, ctx: mpconnect.RunContext) -> list[mpconnect.Partition]:
        return [mpconnect.Partition(f"part-{n}", {"n": n}) for n in range(PARTITIONS)]

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        assert ctx.partition is not None
        n = ctx.partition.spec["n"]
        for index in range(PER_PARTITION):
            if index == PAUSE_AFTER and ctx.partition.key == type(self).pause_in:
                type(self).pause_in = None
                type(self).before_pause()
                raise mpconnect.SourcePaused("api quota", "daily API calls nearly spent")
            yield mpconnect.Event(
                "Tick",
                f"user-{index % 50}",
                1_700_000_000 + n * PER_PARTITION + index,
                object_id=f"tick-{n}-{index}",
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class QuotaPlugin:
    """Registers :class:`QuotaConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(QuotaConnector)


def _config(tmp_path: Path, server: LocalDatasetsServer) -> Path:
    path = tmp_path / "mpconnect.toml"
    path.write_text(
        f"""
[mixpanel]
sink = "datasets"
api_url = "{server.url}"
ca_bundle = "{server.ca_path}"
project_token = "{TOKEN}"
secret = "${{MIXPANEL_SECRET}}"

[sources.ticks]
connector = "quota"
dataset_id = "TICKS"
"""
    )
    return path


def _run(config: Path, home: Path) -> Any:
    return run_cli(
        "--config",
        config,
        "run",
        "ticks",
        "--processes",
        "1",
        plugins=[QuotaPlugin()],
        home=home,
        env={"MIXPANEL_SECRET": SECRET},
    )


def _partitions(home: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(home / "ledger.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM partitions ORDER BY idx").fetchall()
    finally:
        db.close()


def _runs(home: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(home / "ledger.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM runs ORDER BY started_at").fetchall()
    finally:
        db.close()


def _events(server: LocalDatasetsServer, version_id: str) -> list[Any]:
    return sorted(
        server.store.iter_events("TICKS", version_id),
        key=lambda event: event["properties"]["$insert_id"],
    )


def test_a_pause_in_one_partition_pauses_the_run_and_the_next_run_finishes_its_version(
    tmp_path: Path,
) -> None:
    with LocalDatasetsServer(
        tmp_path / "server", datasets=["TICKS"], project_token=TOKEN, project_secret=SECRET
    ) as server:
        config = _config(tmp_path, server)
        reference = _run(config, tmp_path / "reference")
        assert reference.exit_code == 0, reference.output
        uninterrupted = server.requests_to("/import-events")
        assert uninterrupted == PARTITIONS * 3
        live = server.store.live_version("TICKS")
        assert live is not None
        expected = _events(server, live.version_id)
        assert len(expected) == PARTITIONS * PER_PARTITION
        server.reset_counts()

        home = tmp_path / "home"
        QuotaConnector.pause_in = "part-1"
        # Partition 0's three batches and partition 1's first two are sent before it pauses.
        QuotaConnector.before_pause = staticmethod(
            lambda: wait_until(lambda: server.requests_to("/import-events") >= 5, timeout=120)
        )
        paused = _run(config, home)
        assert paused.exit_code == 0, paused.output
        assert "ticks: paused: api quota" in paused.output
        assert "nothing published; the next run resumes version" in paused.output
        (first,) = _runs(home)
        assert first["status"] == "paused: api quota"
        assert server.store.live_version("TICKS").version_id == live.version_id  # type: ignore[union-attr]
        kept = server.store.get_version("TICKS", first["version_id"])
        assert kept is not None and not kept.readable  # kept, unpublished
        assert first["spool_dir"] and Path(first["spool_dir"]).is_dir()
        rows = _partitions(home)
        assert [row["status"] for row in rows] == ["done", "failed", "pending", "pending"]
        assert rows[1]["error"] == "paused: api quota"
        sent_before = server.requests_to("/import-events")
        assert sent_before == 5

        resumed = _run(config, home)
        assert resumed.exit_code == 0, resumed.output
        assert "resuming" in resumed.output
        assert "ticks: succeeded" in resumed.output
        runs = _runs(home)
        assert [run["status"] for run in runs] == ["resumed", "succeeded"]
        assert runs[1]["version_id"] == first["version_id"] and runs[1]["resumed"] == 1
        rows = _partitions(home)
        assert [row["status"] for row in rows] == ["done"] * PARTITIONS
        assert [row["attempts"] for row in rows] == [1, 2, 1, 1]  # partition 0 not read again
        # Partition 1's two acknowledged batches are skipped: no batch is sent twice.
        assert server.requests_to("/import-events") == uninterrupted
        now_live = server.store.live_version("TICKS")
        assert now_live is not None and now_live.version_id == first["version_id"]
        assert _events(server, now_live.version_id) == expected
