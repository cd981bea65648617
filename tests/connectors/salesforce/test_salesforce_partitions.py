"""A partitioned full read of a Salesforce org: the people partition and Id ranges of
Cases, Tasks and event mappings together make exactly the records of one unpartitioned read."""

from __future__ import annotations

from pathlib import Path

import pytest
from partition_harness import lines, read, read_partitioned

from mpconnect import Partition, RunContext
from mpconnect_salesforce import SalesforceConnector
from mpconnect_salesforce.partitioning import boundaries

from .conftest import LocalSalesforce

pytestmark = pytest.mark.timeout(180)

DEMO = {
    "object": "Demo_Request__c",
    "event": "Demo Requested",
    "time_field": "CreatedDate",
    "distinct_id_field": "Contact__c",
    "properties": ["Product__c", "Region__c"],
    "where": "Status__c != 'Spam'",
}


@pytest.mark.parametrize(
    ("identity", "use_bulk"), [("id", "auto"), ("email", "auto"), ("id", True)]
)
def test_partitions_together_read_exactly_the_unpartitioned_records(
    shared_salesforce: LocalSalesforce, tmp_path: Path, identity: str, use_bulk: object
) -> None:
    config = shared_salesforce.settings(
        identity=identity, events=[DEMO], partitions_per_object=3, use_bulk=use_bulk
    )
    whole = read(SalesforceConnector, config, tmp_path / "whole")
    partitions, parts = read_partitioned(SalesforceConnector, config, tmp_path)

    keys = [p.key for p in partitions]
    assert keys == [
        "people",
        "cases:001-of-003",
        "cases:002-of-003",
        "cases:003-of-003",
        "tasks:001-of-003",
        "tasks:002-of-003",
        "tasks:003-of-003",
        "events[0]:001-of-003",
        "events[0]:002-of-003",
        "events[0]:003-of-003",
    ]
    assert lines([r for records in parts.values() for r in records]) == lines(whole)
    for key, records in parts.items():
        assert records, key  # every range holds rows
        if key != "people":
            assert all(type(r).__name__ == "Event" for r in records), key


def test_a_partition_read_again_yields_the_same_records_in_the_same_order(
    shared_salesforce: LocalSalesforce, tmp_path: Path
) -> None:
    config = shared_salesforce.settings(events=[DEMO], partitions_per_object=2)
    partitions, first = read_partitioned(SalesforceConnector, config, tmp_path / "a")
    for n, partition in enumerate(partitions):
        again = read(SalesforceConnector, config, tmp_path / f"again-{n}", partition)
        assert again == first[partition.key], partition.key


def test_one_connector_reading_every_partition_in_turn(
    shared_salesforce: LocalSalesforce, tmp_path: Path
) -> None:
    """As an in-process run does: every partition's events, then every partition's people."""
    config = shared_salesforce.settings(identity="email", partitions_per_object=2)
    whole = read(SalesforceConnector, config, tmp_path / "whole")
    connector = SalesforceConnector(SalesforceConnector.Settings(**config))
    ctx = RunContext(source="crm", dataset_id="D", state_dir=tmp_path / "state")
    (tmp_path / "state").mkdir()
    records = []
    try:
        partitions = connector.partitions(ctx)
        for method in (connector.events, connector.people):
            for partition in partitions:
                ctx.partition = partition
                records.extend(method(ctx))
    finally:
        connector.close()
    assert len(partitions) == 5
    assert lines(records) == lines(whole)


def test_an_incremental_run_is_one_partition(shared_salesforce: LocalSalesforce) -> None:
    connector = SalesforceConnector(SalesforceConnector.Settings(**shared_salesforce.settings()))
    ctx = RunContext(source="crm", dataset_id="D", full_refresh=False)
    assert connector.partitions(ctx) == [Partition("all")]


def test_boundaries_cut_ids_into_about_equal_increasing_ranges() -> None:
    ids = [f"500{n:012d}AAA" for n in range(1000)]
    cuts = boundaries(reversed(ids), 4)
    assert cuts == [ids[250], ids[500], ids[750]]
    assert boundaries(ids[:1], 4) == []
    assert boundaries([], 4) == []
