"""Each standard event and profile field, compared with the seeded org (identity = "id")."""

from __future__ import annotations

from collections import Counter

import pytest

from mpconnect import RunContext
from mpconnect.testing import Collected, run_connector
from mpconnect_salesforce import SalesforceConnector

from .conftest import LocalSalesforce
from .expected import (
    all_events,
    contact_profile,
    epoch,
    is_totals,
    lead_profile,
    opportunity_totals,
    primary_contacts,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def collected(shared_salesforce: LocalSalesforce) -> Collected:
    """One run of every standard stream over REST."""
    return run_connector(SalesforceConnector, shared_salesforce.settings())


def _by_insert_id(collected: Collected) -> dict[str, dict]:
    return {e["properties"]["$insert_id"]: e for e in collected.events}


def test_every_event_matches_the_org_exactly(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    expected = all_events(shared_salesforce.org)
    got = _by_insert_id(collected)
    assert len(got) == len(collected.events), "an $insert_id repeats"
    assert got.keys() == expected.keys()
    for insert_id, event in expected.items():
        assert got[insert_id] == event


def test_every_event_name_is_one_of_the_documented_names(collected: Collected) -> None:
    assert set(Counter(e["event"] for e in collected.events)) == {
        "Contact Created",
        "Lead Created",
        "Lead Converted",
        "Opportunity Created",
        "Opportunity Stage Changed",
        "Opportunity Won",
        "Opportunity Lost",
        "Case Opened",
        "Case Closed",
        "Task Completed",
    }


def test_one_profile_per_contact_and_per_unconverted_lead(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    org = shared_salesforce.org
    contacts = org.rows("Contact")
    leads = org.rows("Lead")
    unconverted = [lead for lead in leads if not lead["IsConverted"]]
    assert 0 < len(unconverted) < len(leads)
    totals = opportunity_totals(org)
    people = [p for p in collected.people if not is_totals(p)]
    assert len(people) == len(contacts) + len(unconverted)
    for contact in contacts:
        expected = {**contact_profile(org, contact), **totals.get(contact["Id"], {})}
        assert collected.profile(contact["Id"]) == expected
    for lead in unconverted:
        assert collected.profile(lead["Id"]) == lead_profile(lead)


def test_each_owner_has_its_open_opportunities_and_pipeline(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    totals = opportunity_totals(shared_salesforce.org)
    got = {p["$distinct_id"]: p["$set"] for p in collected.people if is_totals(p)}
    assert got == totals
    assert {v["open_opportunities"] for v in totals.values()} >= {0, 1}
    assert any(owner.startswith("account:") for owner in totals)


def test_a_converted_lead_is_no_second_profile_and_its_events_follow_the_contact(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    converted = [lead for lead in shared_salesforce.org["Lead"] if lead["IsConverted"]]
    assert converted
    profile_ids = {p["$distinct_id"] for p in collected.people}
    for lead in converted:
        assert lead["Id"] not in profile_ids
        created = [
            e
            for e in collected.events_named("Lead Created")
            if e["properties"]["salesforce_id"] == lead["Id"]
        ]
        done = [
            e
            for e in collected.events_named("Lead Converted")
            if e["properties"]["salesforce_id"] == lead["Id"]
        ]
        assert [e["properties"]["distinct_id"] for e in created + done] == [
            lead["ConvertedContactId"]
        ] * 2
        assert done[0]["properties"]["time"] == epoch(lead["ConvertedDate"])
        assert lead["ConvertedContactId"] in profile_ids


def test_contact_profile_has_every_documented_field(collected: Collected) -> None:
    keys = set().union(
        *(p["$set"] for p in collected.people if p["$set"].get("salesforce_object") == "Contact")
    )
    assert keys == {
        "$email",
        "$first_name",
        "$last_name",
        "$name",
        "$phone",
        "title",
        "lead_source",
        "account_id",
        "account_name",
        "owner_id",
        "mailing_country",
        "salesforce_id",
        "salesforce_object",
    }


def test_opportunities_go_to_the_primary_contact_else_to_the_account(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    org = shared_salesforce.org
    primary = primary_contacts(org)
    by_contact = by_account = 0
    for event in collected.events_named("Opportunity Created"):
        opportunity = org["Opportunity"].get(event["properties"]["opportunity_id"])
        assert opportunity is not None
        if opportunity["Id"] in primary:
            by_contact += 1
            assert event["properties"]["distinct_id"] == primary[opportunity["Id"]]
        else:
            by_account += 1
            assert event["properties"]["distinct_id"] == f"account:{opportunity['AccountId']}"
    assert by_contact and by_account


def test_opportunity_won_and_lost_at_the_close_date(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    closed = [o for o in shared_salesforce.org["Opportunity"] if o["IsClosed"]]
    events = collected.events_named("Opportunity Won") + collected.events_named("Opportunity Lost")
    by_id = {e["properties"]["opportunity_id"]: e for e in events}
    for opportunity in closed:
        if opportunity["Id"] not in by_id:
            continue  # quarantined: no contact role and no account (checked below)
        event = by_id[opportunity["Id"]]
        assert event["event"] == ("Opportunity Won" if opportunity["IsWon"] else "Opportunity Lost")
        assert event["properties"]["time"] == epoch(opportunity["CloseDate"])
        assert event["properties"].get("amount") == opportunity["Amount"]
        assert event["properties"]["stage"] == opportunity["StageName"]


def test_one_stage_changed_per_history_row(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    org = shared_salesforce.org
    attributable = {
        o["Id"] for o in org["Opportunity"] if o["AccountId"] or o["Id"] in primary_contacts(org)
    }
    rows = [h for h in org["OpportunityHistory"] if h["OpportunityId"] in attributable]
    events = collected.events_named("Opportunity Stage Changed")
    assert len(events) == len(rows) > len(attributable)
    assert {
        (
            e["properties"]["opportunity_id"],
            e["properties"]["stage"],
            e["properties"]["probability"],
        )
        for e in events
    } == {(h["OpportunityId"], h["StageName"], h["Probability"]) for h in rows}


def test_rows_with_no_one_to_attribute_to_are_quarantined_with_the_reason(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    org = shared_salesforce.org
    orphans = [
        o["Id"]
        for o in org["Opportunity"]
        if not o["AccountId"] and o["Id"] not in primary_contacts(org)
    ]
    lone_cases = [c["Id"] for c in org["Case"] if not c["ContactId"] and not c["AccountId"]]
    lone_tasks = [t["Id"] for t in org["Task"] if t["IsClosed"] and not t["WhoId"]]
    assert orphans and lone_cases and lone_tasks
    reasons = {q.what: q.reason for q in collected.quarantined}
    for record_id in orphans:
        reason = reasons[f"Salesforce Opportunity {record_id}"]
        assert "no primary contact role and no account" in reason
    for record_id in lone_cases:
        assert "no contact and no account" in reasons[f"Salesforce Case {record_id}"]
    for record_id in lone_tasks:
        assert "no WhoId" in reasons[f"Salesforce Task {record_id}"]
    quarantined_ids = {q.data["Id"] for q in collected.quarantined}
    assert set(orphans) | set(lone_cases) | set(lone_tasks) <= quarantined_ids


def test_closed_rows_with_no_one_to_attribute_to_name_their_closing_event(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    org = shared_salesforce.org
    orphans = [
        o
        for o in org["Opportunity"]
        if o["IsClosed"] and not o["AccountId"] and o["Id"] not in primary_contacts(org)
    ]
    lone_cases = [
        c for c in org["Case"] if c["IsClosed"] and not c["ContactId"] and not c["AccountId"]
    ]
    assert orphans and lone_cases
    reasons: dict[str, list[str]] = {}
    for entry in collected.quarantined:
        reasons.setdefault(entry.what, []).append(entry.reason)
    for row in orphans:
        closing = "'Opportunity Won'" if row["IsWon"] else "'Opportunity Lost'"
        [reason] = reasons[f"Salesforce Opportunity {row['Id']}"]
        assert f"no one to attribute 'Opportunity Created', {closing} to" in reason
    for row in lone_cases:
        [reason] = reasons[f"Salesforce Case {row['Id']}"]
        assert "no one to attribute 'Case Opened', 'Case Closed' to" in reason


def test_cases_and_tasks_carry_their_documented_properties(collected: Collected) -> None:
    for event in collected.events_named("Case Opened") + collected.events_named("Case Closed"):
        assert {"status", "priority", "origin", "case_id"} <= event["properties"].keys()
    tasks = collected.events_named("Task Completed")
    assert tasks
    for event in tasks:
        assert event["properties"]["status"] == "Completed"


def test_a_second_run_yields_the_same_insert_ids(
    collected: Collected, shared_salesforce: LocalSalesforce
) -> None:
    again = run_connector(SalesforceConnector, shared_salesforce.settings(objects=["contacts"]))
    first = {e["properties"]["$insert_id"] for e in collected.events_named("Contact Created")}
    assert {e["properties"]["$insert_id"] for e in again.events} == first


def test_objects_limits_the_streams(shared_salesforce: LocalSalesforce) -> None:
    only = run_connector(SalesforceConnector, shared_salesforce.settings(objects=["cases"]))
    assert {e["event"] for e in only.events} == {"Case Opened", "Case Closed"}
    assert only.people == []


def test_people_alone_still_reads_the_contacts_and_leads(
    shared_salesforce: LocalSalesforce,
) -> None:
    settings = SalesforceConnector.Settings(
        **shared_salesforce.settings(objects=["contacts", "leads"])
    )
    connector = SalesforceConnector(settings)
    try:
        profiles = list(connector.people(RunContext(source="crm", dataset_id="CRM")))
    finally:
        connector.close()
    org = shared_salesforce.org
    unconverted = sum(1 for lead in org["Lead"] if not lead["IsConverted"])
    assert len(profiles) == org.sizes["Contact"] + unconverted
