"""The partitions of a full read of a Salesforce org (see :mod:`.partitioning`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mpconnect import Partition
from mpconnect_salesforce.partitioning import (
    PEOPLE_STREAMS,
    PartitionSpec,
    boundaries,
    range_partitions,
)
from mpconnect_salesforce.reads import Read, Run
from mpconnect_salesforce.rows import Field
from mpconnect_salesforce.settings import SalesforceSettings
from mpconnect_salesforce.streams import STREAMS

__all__ = ["plan_partitions"]

#: The standard streams cut into Id ranges.
RANGED_STREAMS = ("cases", "tasks")


def _ids(run: Run, obj: str, where: str | None) -> Iterator[str]:
    """The Ids of an object's rows meeting ``where`` (over Bulk 2.0 when many)."""
    read = Read(f"{obj} Ids", obj, [Field("Id", "id")], where)
    read.decide(run.settings, run.client.count(obj, where))
    for row in run.rows(read):
        yield str(row["Id"])


def plan_partitions(settings: SalesforceSettings, run: Run) -> list[Partition]:
    """The people partition, then the Id ranges of Cases, Tasks and each event mapping."""
    per = settings.partitions_per_object
    together: list[str] = [name for name in PEOPLE_STREAMS if name in settings.objects]
    partitions: list[Partition] = []
    if together or settings.people:
        partitions.append(PartitionSpec(together, people=True).partition("people"))
    for name in RANGED_STREAMS:
        if name in settings.objects:
            obj, _, where = STREAMS[name].queries[0]
            cuts = boundaries(_ids(run, obj, where), per)
            base: dict[str, Any] = {"streams": [name]}
            partitions += range_partitions(name, cuts, base)
    for n, mapping in enumerate(settings.events):
        cuts = boundaries(_ids(run, mapping.object, mapping.where), per)
        partitions += range_partitions(f"events[{n}]", cuts, {"events": [n]})
    if not partitions:
        return [Partition("all")]
    if not partitions[0].spec["people"]:  # no profiles; someone must call people()
        first = partitions[0]
        partitions[0] = Partition(first.key, {**first.spec, "people": True})
    return partitions
