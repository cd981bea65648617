"""identity = "email": lower-cased emails, falling back to the Id, the same for every reference."""

from __future__ import annotations

import pytest

from mpconnect.testing import run_connector
from mpconnect_salesforce import SalesforceConnector

from .conftest import LocalSalesforce
from .expected import all_events, contact_profile, lead_profile, person_id

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
    for contact in contacts:
        profile = collected.profile(person_id(contact, "email"))
        assert profile == contact_profile(org, contact)
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
    emails = {e["properties"]["distinct_id"] for e in collected.events
              if "@" in e["properties"]["distinct_id"]}
    assert emails and all(email == email.lower() for email in emails)


def test_email_identity_without_the_people_streams_still_resolves_references(
    shared_salesforce: LocalSalesforce,
) -> None:
    org = shared_salesforce.org
    collected = run_connector(
        SalesforceConnector, shared_salesforce.settings(identity="email", objects=["tasks"]))
    expected = {k: e for k, e in all_events(org, "email").items() if e["event"] == "Task Completed"}
    assert {e["properties"]["$insert_id"]: e for e in collected.events} == expected
    assert collected.people == []


def test_id_identity_keeps_record_ids(shared_salesforce: LocalSalesforce) -> None:
    collected = run_connector(
        SalesforceConnector, shared_salesforce.settings(objects=["contacts", "leads"]))
    ids = {p["$distinct_id"] for p in collected.people}
    assert ids and all(len(i) == 18 and i[:3] in ("003", "00Q") for i in ids)
