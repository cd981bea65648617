"""How a full read of a Stripe account splits into partitions, read apart and in parallel.

- Every partition is bounded at the moment the plan was made: ``created < lt`` with
  ``lt`` one second after it, recorded in each spec. Objects created while the run reads
  fall in the next run, and a partition read again after a crash lists the same objects.
- **Profiles partition** (key ``profiles``): ``customers`` with the streams profile
  figures aggregate over (``charges`` for ``lifetime_value``, ``subscriptions`` for
  status, plan and ``mrr``). A profile needs every charge and subscription of its
  customer, and these are spread over all of time, so they are read by the one partition
  that yields the profiles: the figures are exactly those of an unpartitioned read, with
  nothing to merge between processes.
- **Range partitions** (``refunds:002-of-004``): each other stream, cut into
  ``partitions_per_stream`` equal ``created`` ranges from its oldest object to its newest
  (the last range reaching the bound). The oldest object is found by halving ``created``
  intervals with one-object requests (about 30 per stream, within the shared request
  budget), the newest with one. A stream with no object
  before the bound gets no partition. When ``identity`` names a metadata key, each of
  these partitions first lists the customers (to learn their distinct_ids) and yields
  none of their records.

Without ``customers`` in ``objects`` there are no profiles, and every stream is cut into
ranges. Each partition's range is cut again into one window per worker, read in parallel
and yielded in a fixed order (:mod:`mpconnect_stripe.ordered`), so a partition read again
yields the same records in the same order.

The events cursor an incremental run would start from is taken before the bound and kept,
with the facts store, by the first partition (the profiles partition) when the partitions
are read in one process with the source's state (an engine that partitions an
incremental source's full read).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from mpconnect import Partition

__all__ = ["PROFILE_STREAMS", "PartitionSpec", "plan_partitions", "sub_windows"]

#: The streams the profiles partition reads (with ``customers``).
PROFILE_STREAMS = ("customers", "charges", "subscriptions")
#: No Stripe object is older (Stripe launched in 2011).
EARLIEST = 1_262_304_000  # 2010-01-01

#: ``probe(stream, gte, lt)``: True when the stream has an object with gte <= created < lt.
Probe = Callable[[str, int, int], bool]


@dataclass(frozen=True)
class PartitionSpec:
    """What one partition reads: ``streams`` with ``gte <= created < lt`` (gte None: all)."""

    streams: list[str]
    lt: int
    gte: int | None = None
    keeps_state: bool = False
    cursor: dict[str, Any] | None = None
    #: Each stream's oldest and newest ``created`` when the plan was made (the span its
    #: windows are cut in).
    oldest: dict[str, int] = field(default_factory=dict)
    newest: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, partition: Partition | None) -> PartitionSpec | None:
        """The spec of a Stripe partition; None for the whole source (``Partition("all")``)."""
        if partition is None or "streams" not in partition.spec:
            return None
        spec = partition.spec
        return cls(
            list(spec["streams"]),
            int(spec["lt"]),
            spec.get("gte"),
            bool(spec.get("keeps_state")),
            spec.get("cursor"),
            {str(k): int(v) for k, v in (spec.get("oldest") or {}).items()},
            {str(k): int(v) for k, v in (spec.get("newest") or {}).items()},
        )

    def to_json(self) -> dict[str, Any]:
        """The spec as the JSON that travels with the partition."""
        return {
            "streams": self.streams,
            "gte": self.gte,
            "lt": self.lt,
            "keeps_state": self.keeps_state,
            "cursor": self.cursor,
            "oldest": self.oldest,
            "newest": self.newest,
        }


def oldest_created(probe: Probe, stream: str, floor: int, lt: int) -> int | None:
    """The ``created`` of the stream's oldest object in ``[floor, lt)``; None when empty."""
    if not probe(stream, floor, lt):
        return None
    lo, hi = floor, lt  # an object lies in [lo, hi); none lies before lo
    while hi - lo > 1:
        middle = lo + (hi - lo) // 2
        if probe(stream, lo, middle):
            hi = middle
        else:
            lo = middle
    return lo


def ranges(gte: int, lt: int, count: int) -> list[tuple[int, int]]:
    """``[gte, lt)`` cut into at most ``count`` adjacent, non-empty, equal ranges."""
    count = max(1, min(count, lt - gte))
    edges = [gte + (lt - gte) * n // count for n in range(count + 1)]
    return [(a, b) for a, b in pairwise(edges) if b > a]


def sub_windows(
    gte: int | None, lt: int, oldest: int | None, count: int, newest: int | None = None
) -> list[tuple[int | None, int]]:
    """``[gte, lt)`` of one stream cut into ``count`` windows read apart, between
    ``oldest`` and ``newest`` (the first window stays open below and the last reaches
    ``lt``, so nothing outside that span is missed)."""
    floor = max(gte or 0, oldest if oldest is not None else gte or EARLIEST)
    top = min(lt, newest + 1) if newest is not None else lt
    if floor >= top:
        return [(gte, lt)]
    cuts = ranges(floor, top, count)
    return [
        (gte if n == 0 else a, lt if n == len(cuts) - 1 else b) for n, (a, b) in enumerate(cuts)
    ]


def plan_partitions(
    objects: list[str],
    start: int | None,
    per_stream: int,
    now: int,
    probe: Probe,
    cursor: dict[str, Any] | None,
    newest: Callable[[str, int], int | None] = lambda stream, lt: None,
) -> list[Partition]:
    """The partitions of a full read of ``objects`` made at ``now`` (epoch seconds).

    :param newest: ``newest(stream, lt)``: the ``created`` of its newest object before ``lt``.
    :param cursor: the events cursor taken before ``now``; the first partition keeps it
        (and the facts it reads) in the source's state, for a later incremental run.
    """
    lt = now + 1
    together = [s for s in objects if s in PROFILE_STREAMS] if "customers" in objects else []
    floor = start if start is not None else EARLIEST
    oldest_of = {s: oldest_created(probe, s, floor, lt) for s in objects}
    newest_of = {s: newest(s, lt) for s in objects if oldest_of[s] is not None}
    partitions: list[Partition] = []
    if together:
        found = {s: t for s in together if (t := oldest_of[s]) is not None}
        top = {s: t for s in together if (t := newest_of.get(s)) is not None}
        spec = PartitionSpec(together, lt, oldest=found, newest=top)
        partitions.append(Partition("profiles", spec.to_json()))
    for stream in objects:
        oldest = oldest_of[stream]
        if stream in together or oldest is None:
            continue
        last = newest_of.get(stream)
        parts = ranges(oldest, lt if last is None else min(lt, last + 1), per_stream)
        parts[-1] = (parts[-1][0], lt)
        for n, (a, b) in enumerate(parts, 1):
            key = f"{stream}:{n:03d}-of-{len(parts):03d}"
            spec = PartitionSpec([stream], b, a, oldest={stream: a}, newest={stream: b - 1})
            partitions.append(Partition(key, spec.to_json()))
    if not partitions:
        partitions = [Partition("profiles", PartitionSpec(together or objects, lt).to_json())]
    first = partitions[0]
    partitions[0] = Partition(first.key, {**first.spec, "keeps_state": True, "cursor": cursor})
    return partitions
