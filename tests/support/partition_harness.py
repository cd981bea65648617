"""Read a source partition by partition, as the engine's processes do, and unpartitioned.

Each partition is read by a fresh connector (``events`` to exhaustion, then ``people``)
with ``ctx.partition`` set, as a process of ``mpconnect run --processes N`` would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import orjson

from mpconnect import Connector, Event, Partition, Profile, RunContext

Record = Event | Profile


def _ctx(state_dir: Path, partition: Partition | None) -> RunContext:
    return RunContext(
        source="src",
        dataset_id="DS",
        log=logging.getLogger("test.partitions"),
        state_dir=state_dir,
        partition=partition,
    )


def read(
    cls: type[Connector],
    settings: dict[str, Any],
    state_dir: Path,
    partition: Partition | None = None,
) -> list[Record]:
    """One fresh connector's records, in the order it yields them."""
    state_dir.mkdir(parents=True, exist_ok=True)
    connector = cls(cls.Settings(**settings))
    ctx = _ctx(state_dir, partition)
    try:
        return [*connector.events(ctx), *connector.people(ctx)]
    finally:
        connector.close()


def plan(cls: type[Connector], settings: dict[str, Any], state_dir: Path) -> list[Partition]:
    """The connector's partitions, checked as the engine checks them (keys, JSON specs)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    connector = cls(cls.Settings(**settings))
    try:
        partitions = connector.partitions(_ctx(state_dir, None))
    finally:
        connector.close()
    keys = [p.key for p in partitions]
    assert len(set(keys)) == len(keys), keys
    for partition in partitions:
        # The spec travels to other processes as JSON.
        assert json.loads(json.dumps(partition.spec)) == partition.spec
    return [Partition(p.key, json.loads(json.dumps(p.spec))) for p in partitions]


def lines(records: list[Record]) -> list[bytes]:
    """Records as sorted JSON lines (a multiset: a record read twice shows twice)."""
    return sorted(
        orjson.dumps(
            {"kind": type(r).__name__, **dataclasses.asdict(r)},
            option=orjson.OPT_SORT_KEYS,
            default=str,
        )
        for r in records
    )


def read_partitioned(
    cls: type[Connector], settings: dict[str, Any], state_dir: Path
) -> tuple[list[Partition], dict[str, list[Record]]]:
    """The plan, and each partition's records read by its own fresh connector."""
    partitions = plan(cls, settings, state_dir / "plan")
    return partitions, {
        p.key: read(cls, settings, state_dir / f"p-{n}", p) for n, p in enumerate(partitions)
    }
