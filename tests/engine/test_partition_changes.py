"""A partition read again after a failure skips the batches already imported, and a
source that changed under the run fails it cleanly, with nothing published."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from engine_support import make_config, make_engine

import mpconnect
from mpconnect.engine import RunOptions
from mpconnect.errors import RunFailed
from mpconnect.store.datasets import DatasetStore

PER_PARTITION = 2500  # three batches of the embedded sink's 1000 records


class ChangingConnector(mpconnect.Connector):
    """Two partitions; ``variant`` is in every event; partition ``b`` fails once it has
    yielded ``fail_after`` events and one of its batches is acknowledged."""

    name = "changing"
    variant = 1
    fail_after: int | None = None
    ledger: Path = Path()

    def partitions(self, ctx: mpconnect.RunContext) -> list[mpconnect.Partition]:
        return [mpconnect.Partition("a", {"p": "a"}), mpconnect.Partition("b", {"p": "b"})]

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        assert ctx.partition is not None
        part = ctx.partition.spec["p"]
        for index in range(PER_PARTITION):
            if part == "b" and index == type(self).fail_after:
                _wait_for_an_ack(type(self).ledger, "%@p001")
                raise ValueError("the source went away")
            yield mpconnect.Event(
                "Tick",
                f"user-{index % 7}",
                1_700_000_000 + index,
                object_id=f"{part}-{index}",
                properties={"variant": type(self).variant},
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


def _wait_for_an_ack(ledger: Path, spool: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        db = sqlite3.connect(ledger)
        try:
            row = db.execute(
                "SELECT COUNT(*) FROM batches WHERE spool_id LIKE ? AND acked = 1", (spool,)
            ).fetchone()
        finally:
            db.close()
        if row[0] >= 1:
            return
        time.sleep(0.02)
    raise AssertionError("no batch of partition b was acknowledged")


class ChangingPlugin:
    """Registers :class:`ChangingConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(ChangingConnector)


def test_a_changed_source_fails_cleanly_and_an_unchanged_one_resumes_exactly(
    tmp_path: Path, home: Path
) -> None:
    ChangingConnector.ledger = home / "ledger.sqlite3"
    ChangingConnector.variant, ChangingConnector.fail_after = 1, 2000
    config = make_config(
        tmp_path,
        {"src": {"connector": "changing", "dataset_id": "CH", "max_quarantined": "unlimited"}},
    )
    engine = make_engine(config, home, ChangingPlugin())

    with pytest.raises(RunFailed, match="source went away"):
        engine.run("src", RunOptions(processes=2))

    ChangingConnector.variant, ChangingConnector.fail_after = 2, None
    with pytest.raises(RunFailed) as changed:
        engine.run("src", RunOptions(processes=2))
    assert "partition p001 (b): batch 1 read again differs" in str(changed.value)
    assert "the source changed while the run read it; nothing is published" in str(changed.value)
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        assert store.live_version("CH") is None
    finally:
        store.close()

    ChangingConnector.variant = 1
    summary = engine.run("src", RunOptions(processes=2))
    assert summary.status == "succeeded" and summary.resumed
    assert summary.read == summary.imported == 2 * PER_PARTITION
    store = DatasetStore(home / "embedded.sqlite3")
    try:
        assert summary.version_id is not None
        events = list(store.iter_events("CH", summary.version_id))
    finally:
        store.close()
    assert len(events) == 2 * PER_PARTITION
    assert len({e["properties"]["$insert_id"] for e in events}) == 2 * PER_PARTITION
    assert {e["properties"]["variant"] for e in events} == {1}
