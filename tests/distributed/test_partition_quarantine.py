"""The quarantined records of a partition read on another machine reach the run: the
worker hands them to the shared database, and the run's coordinator writes them into
the run's quarantine file, each once, however often the partition was read."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

from mpconnect import Partition
from mpconnect.config import Config, parse_config
from mpconnect.distributed.ledger import PostgresRunLedger
from mpconnect.engine import Engine, RunOptions
from mpconnect.engine.ledger import SqliteRunLedger
from mpconnect.engine.partition_run import PartitionJob, run_partition
from mpconnect.engine.partition_store import PartitionStore, store_for
from mpconnect.engine.process_pool import PartitionExecutor
from mpconnect.plugins import load_plugins

EVENTS = 30_000  # three blocks of the demo's generation: one per partition
BAD = 7  # in the last partition


def _config(tmp_path: Path) -> Config:
    return parse_config(
        {
            "mixpanel": {"sink": "embedded", "store": str(tmp_path / "mixpanel.sqlite3")},
            "sources": {
                "demo": {
                    "connector": "demo",
                    "dataset_id": "DEMO",
                    "sync": "full",
                    "max_quarantined": "unlimited",
                    "settings": {"events": EVENTS, "bad_records": BAD, "partitions": 3},
                }
            },
        },
        tmp_path / "mpconnect.toml",
    )


class OtherMachines(PartitionExecutor):
    """Reads every partition on another machine (an engine with its own
    ``$MPCONNECT_HOME``, sharing only the database and the destination); the ``again``
    partition is read first on a third machine, then again on the second."""

    name = "other machines"

    def __init__(self, machine: Engine, first: Engine, again: int) -> None:
        self.machine = machine
        self.first = first
        self.again = again

    def execute(
        self, job: PartitionJob, indexes: list[int], store: PartitionStore, stop: threading.Event
    ) -> None:
        """Read ``indexes`` one after the other."""
        for index in indexes:
            engines = [self.first, self.machine] if index == self.again else [self.machine]
            for engine in engines:
                spool_dir = engine.home / "spool" / job.spool_id
                run_partition(
                    engine, dataclasses.replace(job, spool_dir=spool_dir), index, stop, "m"
                )


def test_partitions_read_on_other_machines_quarantine_into_the_runs_file(
    tmp_path: Path, database_url: str
) -> None:
    config = _config(tmp_path)
    plugins = load_plugins(())
    coordinator_home, machine_b, machine_c = (tmp_path / n for n in ("a", "b", "c"))
    coordinator = Engine(config, plugins, coordinator_home, ledger=PostgresRunLedger(database_url))
    other = Engine(config, plugins, machine_b, ledger=PostgresRunLedger(database_url))
    third = Engine(config, plugins, machine_c, ledger=PostgresRunLedger(database_url))
    executor = OtherMachines(other, third, again=2)
    setattr(coordinator, "partition_executor", lambda run: executor)  # noqa: B010

    summary = coordinator.run("demo", RunOptions())

    assert summary.status == "succeeded", summary.error
    assert summary.read == EVENTS + EVENTS // 10 + BAD  # events, reviewers, bad events
    assert summary.quarantined == BAD
    assert summary.quarantine_file is not None
    path = Path(summary.quarantine_file)
    assert path.is_relative_to(coordinator_home)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    # Each bad record once, named, although partition 2 was read on two machines.
    assert sorted(line["record"]["object_id"] for line in lines) == sorted(
        f"bad-review-{i}" for i in range(BAD)
    )
    assert all(line["source"] == "demo" and line["field"] == "time" for line in lines)
    assert path.stat().st_mode & 0o777 == 0o600
    # The partitions' own files stayed on the machines that read them.
    assert not list((coordinator_home / "quarantine" / "demo").glob("*@p*"))
    assert list((machine_b / "quarantine" / "demo").glob("*@p002.jsonl"))
    recorded = coordinator.ledger.get_run(summary.run_id)
    assert recorded is not None
    assert (recorded["quarantined"], recorded["quarantine_file"]) == (BAD, str(path))
    rows = store_for(coordinator.ledger).plan(recorded["spool_id"])
    assert [row.quarantined for row in rows] == [0, 0, BAD]
    assert rows[2].attempts == 2


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_the_shared_store_keeps_a_partitions_lines_and_a_reread_replaces_them(
    tmp_path: Path, database_url: str
) -> None:
    store = store_for(PostgresRunLedger(database_url))
    store.save_plan("run1", [Partition("a"), Partition("b")])
    refused, rejected = tmp_path / "p000.jsonl", tmp_path / "p000.rejected.jsonl"
    _write(refused, [b'{"n": "first attempt"}'])
    store.keep_quarantine("run1", 0, (refused, rejected))
    # More lines than one query reads, text that is not ASCII, a line separator.
    many = [
        json.dumps({"n": i, "t": "\u00e9\u2028"}, ensure_ascii=False).encode() for i in range(2_500)
    ]
    _write(refused, many)
    _write(rejected, [b'{"n": "rejected"}'])
    store.keep_quarantine("run1", 0, (refused, rejected))  # read again: replaces
    refused.unlink()  # the coordinator has not the partition's files
    rejected.unlink()
    lines = list(store.quarantine_lines("run1", 0, (refused, rejected)))
    assert lines == [line + b"\n" for line in [*many, b'{"n": "rejected"}']]
    assert list(store.quarantine_lines("run1", 1, (refused, rejected))) == []


def test_the_store_of_one_machine_reads_a_partitions_own_files(tmp_path: Path) -> None:
    store = store_for(SqliteRunLedger(tmp_path / "ledger.sqlite3"))
    refused, rejected = tmp_path / "p000.jsonl", tmp_path / "p000.rejected.jsonl"
    _write(refused, [b'{"n": 1}', b'{"n": 2}'])
    rejected.write_bytes(b'{"n": 3}')  # a last line cut short still ends its line
    store.keep_quarantine("run1", 0, (refused, rejected))  # nothing copied
    assert not (tmp_path / "quarantine").exists()
    assert list(store.quarantine_lines("run1", 0, (refused, rejected))) == [
        b'{"n": 1}\n',
        b'{"n": 2}\n',
        b'{"n": 3}\n',
    ]
    refused.unlink()
    assert list(store.quarantine_lines("run1", 0, (refused, rejected))) == [b'{"n": 3}\n']
