"""How a full read of a Salesforce org splits into partitions, read apart and in parallel.

- **People partition** (key ``people``): Contacts, Leads and Opportunities, and every
  ``people`` mapping. Profiles are built across these objects (a Contact with its Account,
  unconverted Leads merged into the Contact with their email, the owners' open-opportunity
  totals), so they stay together in the one partition that yields the profiles, exactly
  as an unpartitioned read makes them.
- **Id-range partitions** (``cases:002-of-004``, ``events[0]:001-of-004``): Cases, Tasks
  and each ``events`` mapping, cut into ``partitions_per_object`` ranges of ``Id``
  (``Id < 'b1'``, ``'b1' <= Id < 'b2'``, ..., ``Id >= 'bn'``: together they hold every row
  whatever Ids appear later). The boundaries come from the object's Ids, read once when
  the partitions are planned (``SELECT Id``, over Bulk 2.0 when the object is large) and
  sampled; Salesforce Ids of one object sort by when they were made, so equal shares of
  the sample are ranges of about equal size. Under ``identity = "email"`` each such
  partition first reads the emails of the Contacts and Leads its rows refer to.

Bulk 2.0 splits a query's results itself (pages named by opaque locators, each known only
from the previous page), so its pages cannot be handed to other processes up front; Bulk
1.0's ``Sforce-Enable-PKChunking`` makes Id ranges on the server, but only within one Bulk
1.0 job. Explicit Id ranges work over REST and Bulk 2.0 alike, each range a query of its
own that a partition read again repeats exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from mpconnect import Partition
from mpconnect_salesforce.reads import Read

__all__ = ["PEOPLE_STREAMS", "PartitionSpec", "boundaries", "range_partitions", "ranged"]

#: The standard streams of the people partition.
PEOPLE_STREAMS = ("contacts", "leads", "opportunities")
#: Ids kept to choose the boundaries from (uniformly sampled when there are more).
SAMPLE = 10_000


@dataclass(frozen=True)
class PartitionSpec:
    """What one partition reads: standard ``streams``, ``events`` mappings (by index), the
    ``people`` mappings and profiles (``people``), within ``gte <= Id < lt`` (None: open)."""

    streams: list[str] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    people: bool = False
    gte: str | None = None
    lt: str | None = None

    @classmethod
    def of(cls, partition: Partition | None) -> PartitionSpec | None:
        """The spec of a Salesforce partition; None for the whole source."""
        if partition is None or "streams" not in partition.spec:
            return None
        spec = partition.spec
        return cls(
            list(spec["streams"]),
            [int(n) for n in spec.get("events") or []],
            bool(spec.get("people")),
            spec.get("gte"),
            spec.get("lt"),
        )

    def partition(self, key: str) -> Partition:
        """This spec as a partition named ``key`` (its spec is JSON)."""
        return Partition(
            key,
            {
                "streams": self.streams,
                "events": self.events,
                "people": self.people,
                "gte": self.gte,
                "lt": self.lt,
            },
        )


def _quote(record_id: str) -> str:
    if not record_id.isalnum():
        raise ValueError(f"not a Salesforce Id: {record_id!r}")
    return f"'{record_id}'"


def ranged(read: Read, spec: PartitionSpec) -> Read:
    """``read`` restricted to the partition's ``Id`` range."""
    conditions = [f"({read.where})"] if read.where else []
    if spec.gte is not None:
        conditions.append(f"Id >= {_quote(spec.gte)}")
    if spec.lt is not None:
        conditions.append(f"Id < {_quote(spec.lt)}")
    return replace(read, where=" AND ".join(conditions) or None)


def boundaries(ids: Iterable[str], count: int, seed: int = 0) -> list[str]:
    """At most ``count - 1`` increasing Ids cutting ``ids`` into about equal ranges."""
    if count <= 1:
        return []
    rng = random.Random(seed)
    sample: list[str] = []
    for seen, record_id in enumerate(ids):
        if len(sample) < SAMPLE:
            sample.append(record_id)
        else:
            slot = rng.randrange(seen + 1)
            if slot < SAMPLE:
                sample[slot] = record_id
    sample.sort()
    cuts = {sample[len(sample) * n // count] for n in range(1, count) if sample}
    return sorted(cut for cut in cuts if cut != (sample[0] if sample else None))


def range_partitions(name: str, cuts: list[str], base: dict[str, Any]) -> list[Partition]:
    """The partitions of one stream or mapping cut at ``cuts``."""
    edges: list[str | None] = [None, *cuts, None]
    total = len(edges) - 1
    return [
        PartitionSpec(**base, gte=low, lt=high).partition(f"{name}:{n:03d}-of-{total:03d}")
        for n, (low, high) in enumerate(pairwise(edges), 1)
    ]
