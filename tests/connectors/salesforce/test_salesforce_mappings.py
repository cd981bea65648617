"""Custom mappings: any object's rows as events or profiles, by configuration alone."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from mpconnect import ConfigError, RunContext
from mpconnect.testing import Collected, run_connector
from mpconnect_salesforce import SalesforceConnector

from .conftest import LocalSalesforce
from .expected import epoch, person_id

pytestmark = pytest.mark.timeout(60)

DEMO = {
    "object": "Demo_Request__c",
    "event": "Demo Requested",
    "time_field": "CreatedDate",
    "distinct_id_field": "Contact__c",
    "properties": ["Product__c", "Region__c"],
    "where": "Status__c != 'Spam'",
}


def _run(salesforce: LocalSalesforce, **settings: object) -> Collected:
    return run_connector(SalesforceConnector, salesforce.settings(objects=[], **settings))


def test_the_issue_example_yields_one_event_per_non_spam_row(
    shared_salesforce: LocalSalesforce,
) -> None:
    org = shared_salesforce.org
    collected = _run(shared_salesforce, events=[DEMO])
    rows = [r for r in org["Demo_Request__c"] if r["Status__c"] != "Spam"]
    with_contact = [r for r in rows if r["Contact__c"]]
    assert any(r["Status__c"] is None for r in with_contact), "null Status__c is not 'Spam'"
    assert len(with_contact) < len(rows) < org.sizes["Demo_Request__c"]
    events = {e["properties"]["salesforce_id"]: e for e in collected.events}
    assert events.keys() == {r["Id"] for r in with_contact}
    for row in with_contact:
        props = events[row["Id"]]["properties"]
        assert events[row["Id"]]["event"] == "Demo Requested"
        assert props["distinct_id"] == row["Contact__c"]
        assert props["time"] == epoch(row["CreatedDate"])
        assert props.get("Product__c") == row["Product__c"]
        assert props.get("Region__c") == row["Region__c"]
        assert set(props) <= {
            "Product__c",
            "Region__c",
            "salesforce_id",
            "distinct_id",
            "time",
            "token",
            "$insert_id",
        }
    quarantined = {q.data["Id"]: q.reason for q in collected.quarantined}
    assert quarantined.keys() == {r["Id"] for r in rows if not r["Contact__c"]}
    assert all("Contact__c is empty" in reason for reason in quarantined.values())


def test_a_lookup_to_contact_follows_the_email_identity(shared_salesforce: LocalSalesforce) -> None:
    org = shared_salesforce.org
    collected = _run(shared_salesforce, identity="email", events=[DEMO])
    for event in collected.events:
        row = org["Demo_Request__c"].get(event["properties"]["salesforce_id"])
        contact = org["Contact"].get(row["Contact__c"])
        assert event["properties"]["distinct_id"] == person_id(contact, "email")


def test_fields_all_takes_every_field_typed_alike_over_rest_and_bulk(
    shared_salesforce: LocalSalesforce,
) -> None:
    mapping = {
        "object": "Demo_Request__c",
        "event": "Demo Requested",
        "distinct_id_field": "Contact__c",
        "fields": "all",
    }
    rest = _run(shared_salesforce, events=[mapping])
    bulk = _run(shared_salesforce, events=[mapping], use_bulk=True)
    key = orjson.dumps  # REST reads come in SystemModstamp order, Bulk 2.0 jobs in none
    assert sorted(map(key, rest.events)) == sorted(map(key, bulk.events))
    first = next(e for e in rest.events if "Region__c" in e["properties"])
    row = shared_salesforce.org["Demo_Request__c"].get(first["properties"]["Id"])
    props = first["properties"]
    assert props["Seats__c"] == row["Seats__c"] and isinstance(props["Seats__c"], float)
    assert props["Is_Trial__c"] is row["Is_Trial__c"]
    assert props["Requested_On__c"] == row["Requested_On__c"].isoformat()
    assert props["OwnerId"] == row["OwnerId"]
    assert props["Name"] == row["Name"]


def test_properties_can_be_renamed(shared_salesforce: LocalSalesforce) -> None:
    mapping = {**DEMO, "properties": {"Product__c": "product", "Seats__c": "seats"}}
    collected = _run(shared_salesforce, events=[mapping])
    assert collected.events
    for event in collected.events:
        assert "product" in event["properties"] and "Product__c" not in event["properties"]


def test_a_people_mapping_sets_properties_on_the_contacts(
    shared_salesforce: LocalSalesforce,
) -> None:
    org = shared_salesforce.org
    mapping = {
        "object": "Member__c",
        "distinct_id_field": "Contact__c",
        "properties": {"Tier__c": "tier", "Points__c": "points", "Joined__c": "joined"},
    }
    collected = _run(shared_salesforce, people=[mapping])
    members = org.rows("Member__c")
    with_contact = [m for m in members if m["Contact__c"]]
    assert len(collected.people) == len(with_contact) < len(members)
    for member in with_contact:
        assert collected.profile(member["Contact__c"]) == {
            "tier": member["Tier__c"],
            "points": member["Points__c"],
            "joined": member["Joined__c"].isoformat(),
        }
    assert {q.data["Id"] for q in collected.quarantined} == {
        m["Id"] for m in members if not m["Contact__c"]
    }


def test_people_mappings_merge_with_the_standard_profiles(
    shared_salesforce: LocalSalesforce,
) -> None:
    mapping = {
        "object": "Member__c",
        "distinct_id_field": "Contact__c",
        "properties": {"Tier__c": "tier"},
    }
    collected = run_connector(
        SalesforceConnector, shared_salesforce.settings(objects=["contacts"], people=[mapping])
    )
    member = next(m for m in shared_salesforce.org["Member__c"] if m["Contact__c"])
    profile = collected.profile(member["Contact__c"])
    assert profile["tier"] == member["Tier__c"]
    assert profile["salesforce_object"] == "Contact"


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"object": "Demo_Requests__c"}, "events[0].object", "no object 'Demo_Requests__c'"),
        (
            {"properties": ["Prodcut__c"]},
            "events[0].properties",
            "Demo_Request__c has no field 'Prodcut__c'; did you mean Product__c",
        ),
        ({"distinct_id_field": "Contact"}, "events[0].distinct_id_field", "no field 'Contact'"),
        ({"time_field": "Region__c"}, "events[0].time_field", "not a date or datetime"),
        ({"where": "Statuz__c != 'Spam'"}, "events[0].where", "INVALID_FIELD"),
        ({"where": "Status__c !! 'Spam'"}, "events[0].where", "MALFORMED_QUERY"),
    ],
)
def test_check_and_run_name_the_bad_key(
    shared_salesforce: LocalSalesforce, change: dict, key: str, words: str
) -> None:
    settings = shared_salesforce.settings(objects=[], events=[{**DEMO, **change}])
    connector = SalesforceConnector(SalesforceConnector.Settings(**settings))
    try:
        with pytest.raises(ConfigError) as raised:
            connector.check(RunContext(source="crm", dataset_id="CRM"))
    finally:
        connector.close()
    assert f"sources.crm.settings.{key}" in str(raised.value)
    assert words in str(raised.value)
    with pytest.raises(ConfigError, match=r"sources\.test\.settings"):
        run_connector(SalesforceConnector, settings)


def test_a_compound_field_is_refused_with_the_fix(shared_salesforce: LocalSalesforce) -> None:
    people = [{"object": "Contact", "properties": ["MailingAddress"]}]
    with pytest.raises(ConfigError, match="compound address field; list its parts"):
        _run(shared_salesforce, people=people)


def test_a_mapping_takes_properties_or_all_fields_not_both() -> None:
    with pytest.raises(ValidationError, match="either properties"):
        SalesforceConnector.Settings(
            session_id="x", instance_url="https://a.example", events=[{**DEMO, "fields": "all"}]
        )
