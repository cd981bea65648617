"""The partition store of one machine (in the SQLite ledger) and of many (in PostgreSQL)
keep a partitioned run's plan, progress and batch digests the same way; the shared one
also leases each partition to one worker at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_shared_interfaces import Backend, make_backend

from mpconnect import Partition
from mpconnect.engine.ledger import BatchRef
from mpconnect.engine.partition_store import PartitionTotals, partition_spool_id, store_for


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, mpconnect_home: Path) -> Backend:
    return make_backend(request, mpconnect_home)


def test_the_plan_is_recorded_once_and_each_partition_reports_its_end(backend: Backend) -> None:
    store = store_for(backend.ledger())
    store.save_plan("run1", [Partition("a", {"part": 0}), Partition("b", {"part": 1})])
    store.save_plan("run1", [Partition("other", {})])  # a plan already there is kept
    rows = store_for(backend.ledger()).plan("run1")
    assert [(r.index, r.key, r.spec, r.status) for r in rows] == [
        (0, "a", {"part": 0}, "pending"),
        (1, "b", {"part": 1}, "pending"),
    ]
    assert store.plan("nothing") == []

    assert store.start("run1", 0, "host:1") == 1
    store.progress("run1", 0, 40, 2)
    assert store.start("run1", 0, "host:2") == 2  # read again: counts start over
    store.progress("run1", 0, 10, 1)
    store.finish("run1", 0, PartitionTotals(read=50, quarantined=1, retries=3))
    store.start("run1", 1, "host:2")
    store.fail("run1", 1, "refused: postgresql://u:hunter2@db/x")
    first, second = store.plan("run1")
    assert (first.status, first.attempts, first.read, first.retries, first.worker) == (
        "done",
        2,
        50,
        3,
        "host:2",
    )
    assert second.status == "failed" and second.error is not None
    assert "hunter2" not in second.error


def test_only_acknowledged_batches_have_digests_that_count(
    backend: Backend, tmp_path: Path
) -> None:
    ledger = backend.ledger()
    store = store_for(ledger)
    spool = partition_spool_id("run1", 0)
    for seq in (1, 2):
        ledger.add_batch(spool, BatchRef(seq, "events", 10, tmp_path / f"{seq}.jsonl.gz"))
        store.set_digest(spool, seq, f"old{seq}")
    store.set_digest(spool, 1, "new1")  # the batch spooled again before it was sent
    ledger.ack_batch(spool, 1, 10)
    assert store.acked_digests(spool) == {1: "new1"}


def test_the_shared_store_leases_a_partition_to_one_worker_at_a_time(database_url: str) -> None:
    from mpconnect.distributed.ledger import PostgresRunLedger
    from mpconnect.distributed.partition_store import PostgresPartitionStore

    store = store_for(PostgresRunLedger(database_url))
    assert isinstance(store, PostgresPartitionStore)
    store.save_plan("run1", [Partition("a", {}), Partition("b", {})])
    assert store.claim("run1", 0, "w1:1", lease=60)
    assert not store.claim("run1", 0, "w2:1", lease=60)  # its lease is live
    assert store.lost("run1", lease=60) == []
    # w1 stops beating: after the lease the partition is lost and another may take it.
    assert [r.index for r in store.lost("run1", lease=0)] == [0]
    assert store.claim("run1", 0, "w2:1", lease=0)
    store.start("run1", 0, "w2:1")
    store.finish("run1", 0, PartitionTotals(read=1, quarantined=0))
    assert not store.claim("run1", 0, "w3:1", lease=0)  # done: never read again
    store.start("run1", 1, "w1:1")
    store.fail("run1", 1, "boom")
    assert not store.claim("run1", 1, "w3:1", lease=0)  # failed: the run decides
    store.retry_failed("run1")  # a resumed run reads it again
    assert store.claim("run1", 1, "w3:1", lease=60)
