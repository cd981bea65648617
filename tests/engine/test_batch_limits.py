"""Oversized records, duplicates and the quarantine limit, through the engine and the CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import make_config, make_engine

import mpconnect
from mpconnect.engine.batching import Batcher
from mpconnect.engine.duplicates import DuplicateCounter
from mpconnect.engine.spool import SpoolWriter
from mpconnect.errors import RunFailed
from mpconnect.store.datasets import DatasetStore

WHEN = 1_700_000_000


class OddConnector(mpconnect.Connector):
    """Ten small events, one event of 1.2 MB, two events sharing object and name (so their
    ``$insert_id``), and a profile with the same ``$add`` twice."""

    name = "odd"

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for index in range(10):
            yield mpconnect.Event("Tick", f"user-{index}", WHEN + index, object_id=f"t{index}")
        yield mpconnect.Event(
            "Upload", "user-big", WHEN, object_id="huge-1", properties={"body": "x" * 1_200_000}
        )
        yield mpconnect.Event("Order", "user-1", WHEN, object_id="order-9")
        yield mpconnect.Event("Order", "user-1", WHEN + 60, object_id="order-9")

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield mpconnect.Profile("user-1", add={"orders": 1}, object_id="p1")
        yield mpconnect.Profile("user-1", add={"orders": 1}, object_id="p1")


class OddPlugin:
    """Registers :class:`OddConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(OddConnector)


def odd_config(tmp_path: Path, max_quarantined: Any = "unlimited") -> Any:
    return make_config(
        tmp_path,
        {"odd": {"connector": "odd", "dataset_id": "ODD", "max_quarantined": max_quarantined}},
    )


def test_a_record_over_1_mb_is_quarantined_with_its_size_and_never_sent(
    tmp_path: Path, home: Path
) -> None:
    summary = make_engine(odd_config(tmp_path), home, OddPlugin()).run("odd")

    assert summary.status == "succeeded"
    assert summary.quarantined == 1
    (line,) = [json.loads(x) for x in Path(summary.quarantine_file or "").read_text().splitlines()]
    assert line["what"].startswith("event 'Upload'")
    assert line["reason"].startswith("the record is 1,200,")
    assert (
        "bytes of JSON: Mixpanel refuses a record of 1 MB (1,048,576 bytes) or more"
        in line["reason"]
    )
    assert line["record"]["properties"]["body"] == "x" * 1_200_000  # nothing lost
    store = DatasetStore(home / "embedded.sqlite3")
    names = store.contents("ODD", summary.version_id or "").events_by_name
    store.close()
    assert "Upload" not in names


def test_duplicates_are_counted_reported_and_warned_about_once(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mpconnect"):
        summary = make_engine(odd_config(tmp_path), home, OddPlugin()).run("odd")

    # one event sharing its $insert_id with an earlier one, one identical $add
    assert summary.duplicates == 2
    assert "duplicates collapsed: 2" in summary.describe()
    warnings = [r.getMessage() for r in caplog.records if "duplicate events" in r.getMessage()]
    assert len(warnings) == 1
    assert "event 'Order' (distinct_id 'user-1') has $insert_id" in warnings[0]
    assert summary.to_dict()["duplicates"] == 2
    (row,) = make_engine(odd_config(tmp_path), home).ledger.list_runs("odd")
    assert row["duplicates"] == 2


def test_the_default_limit_fails_a_run_quarantining_over_1_percent(
    tmp_path: Path, home: Path
) -> None:
    config = make_config(
        tmp_path,
        {
            "demo": {
                "connector": "demo",
                "dataset_id": "DEMO",
                "settings": {"events": 300, "bad_records": 4},
            }
        },
    )

    with pytest.raises(RunFailed) as failed:
        make_engine(config, home).run("demo")

    assert (
        "4 records quarantined, over the limit of 1% of 334 records read "
        '(sources.demo.max_quarantined; raise it, or set it to "unlimited"'
    ) in str(failed.value)
    (version,) = DatasetStore(home / "embedded.sqlite3").list_versions("DEMO")
    assert not version.readable


def test_the_summary_ends_with_the_top_reasons_and_the_quarantine_file(
    cli: Any, write_config: Any, mpconnect_home: Path
) -> None:
    config = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"

        [sources.demo.settings]
        events = 100
        bad_records = 3
    """)

    refused = cli("--config", config, "run", "demo")
    allowed = cli("--config", config, "run", "demo", "--restart", "--max-quarantined", "unlimited")
    as_json = cli(
        "--config",
        config,
        "--log-format",
        "json",
        "run",
        "demo",
        "--restart",
        "--max-quarantined",
        "unlimited",
    )
    wrong = cli("--config", config, "run", "demo", "--max-quarantined", "lots")

    assert refused.exit_code == 1
    assert "3 records quarantined, over the limit of 1% of 113 records read" in refused.output
    lines = allowed.stdout.splitlines()
    assert allowed.exit_code == 0, allowed.output
    assert lines[-3] == "  top quarantine reasons:"
    assert lines[-2].split()[0] == "3"
    assert "field 'time': naive datetime" in lines[-2]
    assert lines[-1].startswith("  quarantine file: ") and lines[-1].endswith(".jsonl")
    summary = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert summary["quarantine_reasons"][0]["count"] == 3
    assert summary["quarantine_reasons"][0]["reason"].startswith("field 'time': naive")
    assert wrong.exit_code == 2
    assert "must be a count such as 10, a fraction of the records read such as 0.01" in wrong.output


def test_duplicates_across_and_within_batches_are_counted_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    written: list[Any] = []
    writer = SpoolWriter(tmp_path / "spool", 10, None, written.append)
    counter = DuplicateCounter("src")
    counter.start(tmp_path / "keys")
    batcher = Batcher(writer, "events", max_records=10, max_bytes=1 << 20, duplicates=counter)
    ids = [f"e{i}" for i in range(25)]
    ids[13] = "e2"  # a batch later
    ids[15] = "e14"  # in the same batch
    with caplog.at_level(logging.WARNING, logger="mpconnect"):
        for index, insert_id in enumerate(ids):
            event = mpconnect.Event("Tick", f"user-{index}", WHEN, insert_id=insert_id)
            assert batcher.add(event.to_mixpanel("token")) is None
        batcher.flush()
        counter.finish()

    assert counter.count == 2
    assert [batch.count for batch in written] == [10, 10, 5] and batcher.written == 3
    (warning,) = [r.getMessage() for r in caplog.records if "duplicate events" in r.getMessage()]
    assert "event 'Tick' (distinct_id 'user-13') has $insert_id e2" in warning
