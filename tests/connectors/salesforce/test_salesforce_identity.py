"""identity = "email": lower-cased emails, falling back to the Id, the same for every reference."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from mpconnect.emulator.background import LocalCA
from mpconnect.testing import run_connector
from mpconnect_salesforce import SalesforceConnector
from mpconnect_salesforce.localserver.org import Org

from .conftest import LocalSalesforce, start_salesforce
from .expected import all_events, contact_profile, lead_profile, opportunity_totals, person_id

pytestmark = pytest.mark.timeout(60)


def test_people_are_their_lower_cased_email_else_their_id(
    shared_salesforce: LocalSalesforce,
) -> None:
    org = shared_salesforce.org
    collected = run_connector(SalesforceConnector, shared_salesforce.settings(identity="email"))
    contacts = org.rows("Contact")
    mixed_case = [c for c in contacts if c["Email"] and c["Email"] != c["Email"].lower()]
    no_email = [c for c in contacts if not c["Email"]]
    assert mixed_case and no_email
    totals = opportunity_totals(org, "email")
    for contact in contacts:
        profile = collected.profile(person_id(contact, "email"))
        owned = totals.get(person_id(contact, "email"), {})
        assert profile == {**contact_profile(org, contact), **owned}
    for contact in mixed_case:
        assert collected.profile(contact["Email"].lower())["$email"] == contact["Email"]
    for contact in no_email:
        assert collected.profile(contact["Id"])["salesforce_id"] == contact["Id"]
    for lead in org["Lead"]:
        if not lead["IsConverted"]:
            assert collected.profile(person_id(lead, "email")) == lead_profile(lead)


def test_every_event_follows_the_email_identity(shared_salesforce: LocalSalesforce) -> None:
    org = shared_salesforce.org
    collected = run_connector(SalesforceConnector, shared_salesforce.settings(identity="email"))
    expected = all_events(org, "email")
    got = {e["properties"]["$insert_id"]: e for e in collected.events}
    assert got == expected
    emails = {
        e["properties"]["distinct_id"]
        for e in collected.events
        if "@" in e["properties"]["distinct_id"]
    }
    assert emails and all(email == email.lower() for email in emails)


def test_email_identity_without_the_people_streams_still_resolves_references(
    shared_salesforce: LocalSalesforce,
) -> None:
    org = shared_salesforce.org
    collected = run_connector(
        SalesforceConnector, shared_salesforce.settings(identity="email", objects=["tasks"])
    )
    expected = {k: e for k, e in all_events(org, "email").items() if e["event"] == "Task Completed"}
    assert {e["properties"]["$insert_id"]: e for e in collected.events} == expected
    assert collected.people == []


def test_id_identity_keeps_record_ids(shared_salesforce: LocalSalesforce) -> None:
    collected = run_connector(
        SalesforceConnector, shared_salesforce.settings(objects=["contacts", "leads"])
    )
    ids = {p["$distinct_id"] for p in collected.people}
    assert ids and all(len(i) == 18 and i[:3] in ("003", "00Q") for i in ids)


@pytest.fixture
def lead_like_a_contact(local_ca: LocalCA) -> Iterator[LocalSalesforce]:
    """Two Contacts and two unconverted Leads; Lead 0 has Contact 0's email (other case)."""
    org = Org(seed=7, contacts=2, leads=2, opportunities=0, cases=0, tasks=0)
    contact = org["Contact"].row(0)
    assert contact is not None and contact["Email"]
    make_lead = org["Lead"].make

    def lead(index: int) -> dict:
        row = make_lead(index)
        row.update(
            IsConverted=False,
            ConvertedContactId=None,
            ConvertedDate=None,
            ConvertedAccountId=None,
            ConvertedOpportunityId=None,
            Status="Open - Not Contacted",
        )
        row["Email"] = f" {contact['Email'].upper()}" if index == 0 else f"lead{index}@example.org"
        return row

    org["Lead"].make = lead
    server, api = start_salesforce(local_ca, org)
    try:
        yield api
    finally:
        server.stop()


def test_a_lead_with_a_contacts_email_keeps_the_contacts_profile(
    lead_like_a_contact: LocalSalesforce,
    caplog: pytest.LogCaptureFixture,
) -> None:
    org = lead_like_a_contact.org
    contact, duplicate, other = org["Contact"].row(0), org["Lead"].row(0), org["Lead"].row(1)
    email = contact["Email"].lower()
    caplog.set_level(logging.INFO)
    collected = run_connector(
        SalesforceConnector,
        lead_like_a_contact.settings(identity="email", objects=["contacts", "leads"]),
    )
    assert collected.profile(email) == contact_profile(org, contact)
    loaded = {p["$set"]["salesforce_id"] for p in collected.people}
    assert duplicate["Id"] not in loaded and other["Id"] in loaded
    [created] = [
        e
        for e in collected.events_named("Lead Created")
        if e["properties"]["salesforce_id"] == duplicate["Id"]
    ]
    assert created["properties"]["distinct_id"] == email
    assert collected.quarantined == []
    assert "1 unconverted leads share a Contact's email" in caplog.text


def test_a_lead_with_a_contacts_email_is_its_own_profile_under_the_id_identity(
    lead_like_a_contact: LocalSalesforce,
) -> None:
    org = lead_like_a_contact.org
    collected = run_connector(
        SalesforceConnector, lead_like_a_contact.settings(objects=["contacts", "leads"])
    )
    duplicate = org["Lead"].row(0)
    assert collected.profile(duplicate["Id"])["salesforce_object"] == "Lead"
