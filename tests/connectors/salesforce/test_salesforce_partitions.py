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


def test_merged_cursors_are_each_streams_earliest_safe_one() -> None:
    from mpconnect_salesforce.incremental import merge_cursors

    people = {
        "identity": "id",
        "cursors": {"contacts": "2025-03-01T10:00:05.000Z"},
        "checked": {"contacts": "2025-03-01T10:00:00.000Z"},
    }
    old_cases = {  # the oldest Ids: nothing changed there for years
        "identity": "id",
        "cursors": {"cases": "2019-05-01T00:00:00.000Z"},
        "checked": {"cases": "2025-03-01T10:00:02.000Z"},
    }
    new_cases = {  # read later, newer stamps: a later cursor would miss changes above
        "identity": "id",
        "cursors": {"cases": "2025-03-01T10:09:00.000Z"},
        "checked": {"cases": "2025-03-01T10:08:00.000Z"},
    }
    states = [
        (Partition("people"), people),
        (Partition("cases:001-of-002"), old_cases),
        (Partition("cases:002-of-002"), new_cases),
    ]
    assert merge_cursors([state for _, state in states]) == {
        "cursors": {"contacts": "2025-03-01T10:00:05.000Z", "cases": "2025-03-01T10:00:02.000Z"},
        "checked": {"contacts": "2025-03-01T10:00:00.000Z", "cases": "2025-03-01T10:00:02.000Z"},
    }
    merged = SalesforceConnector.merge_states(states)
    assert merged["identity"] == "id"
    assert merged["cursors"]["cases"] == "2025-03-01T10:00:02.000Z"


def _engine_run(home: Path, settings: dict[str, object], processes: int) -> object:
    from mpconnect.config import parse_config
    from mpconnect.engine import Engine, RunOptions
    from mpconnect.plugins import load_plugins

    crm = {
        "connector": "salesforce",
        "dataset_id": "CRM",
        "max_quarantined": "unlimited",  # the seeded org has rows that cannot be events
        "settings": settings,
    }
    raw = {"sources": {"crm": crm}}
    config = parse_config(raw, home.parent / "mpconnect.toml", is_file=False)
    return Engine(config, load_plugins(), home).run("crm", RunOptions(processes=processes))


def _live(home: Path) -> tuple[list[str], list[str]]:
    from mpconnect.store.datasets import DatasetStore

    store = DatasetStore(home / "embedded.sqlite3")
    try:
        live = store.live_version("CRM")
        assert live is not None
        events = sorted(map(repr, store.iter_events("CRM", live.version_id)))
        people = sorted(map(repr, store.iter_people("CRM", live.version_id)))
    finally:
        store.close()
    return events, people


def test_a_first_run_in_two_processes_then_incremental_runs_match_a_full_run(
    salesforce: LocalSalesforce, tmp_path: Path
) -> None:
    import sqlite3

    import orjson

    settings = salesforce.settings(partitions_per_object=2)
    home = tmp_path / "home"
    first = _engine_run(home, settings, processes=2)
    assert (first.status, first.sync) == ("succeeded", "full")  # type: ignore[attr-defined]
    db = sqlite3.connect(home / "state.sqlite3")
    try:
        (raw,) = db.execute("SELECT state FROM state WHERE source = 'crm'").fetchone()
    finally:
        db.close()
    ledger = sqlite3.connect(home / "ledger.sqlite3")
    try:
        (partitions,) = ledger.execute("SELECT count(*) FROM partitions").fetchone()
    finally:
        ledger.close()
    assert partitions == 5  # people, and two Id ranges of cases and of tasks
    state = orjson.loads(raw)
    assert set(state["cursors"]) == {"contacts", "leads", "opportunities", "cases", "tasks"}
    assert set(state["checked"]) == set(state["cursors"])

    org = salesforce.org
    org.update(org.rows("Case")[-1]["Id"], Subject="Changed after the full read")
    org.delete(org.rows("Task")[0]["Id"])
    org.update(org.rows("Contact")[0]["Id"], Title="CTO")
    second = _engine_run(home, settings, processes=2)
    assert (second.status, second.sync) == ("succeeded", "incremental")  # type: ignore[attr-defined]
    full = tmp_path / "full"
    _engine_run(full, settings, processes=1)
    assert _live(home) == _live(full)
