"""What the connector should produce from a fake org, restated from the issue's rules.

Each helper reads the org directly (not through the connector) and returns Mixpanel-shaped
expectations, so a test compares the connector's output with an independent account.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from mpconnect import make_insert_id
from mpconnect_salesforce.localserver.org import Org, Row


def epoch(value: datetime | date) -> int:
    """Epoch seconds; a date is midnight UTC."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return int(value.timestamp())


def present(values: dict[str, Any]) -> dict[str, Any]:
    """The entries that have a value, dates as Mixpanel receives them."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        elif isinstance(value, date):
            value = value.isoformat()
        out[key] = value
    return out


def person_id(row: Row, identity: str) -> str:
    """A Contact's or Lead's distinct_id under ``identity``."""
    if identity == "email" and row.get("Email"):
        return str(row["Email"]).lower()
    return str(row["Id"])


def reference_id(org: Org, record_id: str | None, identity: str) -> str | None:
    """The distinct_id of the Contact or Lead ``record_id`` points at."""
    found = org.by_id(record_id)
    return None if found is None else person_id(found[1], identity)


def event(
    name: str, object_id: str, distinct_id: str, time: datetime | date, properties: dict[str, Any]
) -> dict[str, Any]:
    """One expected event, keyed for comparison by its ``$insert_id``."""
    return {
        "event": name,
        "properties": {
            **present(properties),
            "distinct_id": distinct_id,
            "time": epoch(time),
            "token": "test-token",
            "$insert_id": make_insert_id(object_id, name),
        },
    }


def contact_profile(org: Org, row: Row) -> dict[str, Any]:
    """The ``$set`` of a Contact's profile."""
    account = org["Account"].get(row["AccountId"])
    return present(
        {
            "$email": row["Email"],
            "$first_name": row["FirstName"],
            "$last_name": row["LastName"],
            "$name": row["Name"],
            "$phone": row["Phone"],
            "title": row["Title"],
            "lead_source": row["LeadSource"],
            "account_id": row["AccountId"],
            "account_name": account["Name"] if account else None,
            "owner_id": row["OwnerId"],
            "mailing_country": row["MailingCountry"],
            "salesforce_id": row["Id"],
            "salesforce_object": "Contact",
        }
    )


def lead_profile(row: Row) -> dict[str, Any]:
    """The ``$set`` of an unconverted Lead's profile."""
    return present(
        {
            "$email": row["Email"],
            "$first_name": row["FirstName"],
            "$last_name": row["LastName"],
            "$name": row["Name"],
            "$phone": row["Phone"],
            "title": row["Title"],
            "lead_source": row["LeadSource"],
            "account_name": row["Company"],
            "owner_id": row["OwnerId"],
            "mailing_country": row["Country"],
            "salesforce_id": row["Id"],
            "salesforce_object": "Lead",
        }
    )


def primary_contacts(org: Org) -> dict[str, str]:
    """Opportunity Id -> the Contact of its primary contact role."""
    return {
        r["OpportunityId"]: r["ContactId"] for r in org["OpportunityContactRole"] if r["IsPrimary"]
    }


def opportunity_owner(org: Org, opportunity: Row, identity: str = "id") -> str | None:
    """Whom an opportunity's events belong to: primary contact, else ``account:<Id>``."""
    contact = primary_contacts(org).get(opportunity["Id"])
    if contact:
        return reference_id(org, contact, identity)
    return f"account:{opportunity['AccountId']}" if opportunity["AccountId"] else None


def opportunity_totals(org: Org, identity: str = "id") -> dict[str, dict[str, Any]]:
    """Each opportunity owner's open opportunities and their summed amount."""
    totals: dict[str, tuple[int, int]] = {}
    for o in org["Opportunity"]:
        owner = opportunity_owner(org, o, identity)
        if owner is None:
            continue
        count, cents = totals.get(owner, (0, 0))
        if not o["IsClosed"]:
            count, cents = count + 1, cents + round((o["Amount"] or 0) * 100)
        totals[owner] = (count, cents)
    return {
        owner: {"open_opportunities": count, "open_pipeline": cents / 100}
        for owner, (count, cents) in totals.items()
    }


def is_totals(record: dict[str, Any]) -> bool:
    """True for an owner's open-opportunity totals (not a Contact's or Lead's profile)."""
    return "open_opportunities" in record.get("$set", {})


def all_events(org: Org, identity: str = "id") -> dict[str, dict[str, Any]]:
    """Every event the standard streams should yield, by ``$insert_id``."""
    out: list[dict[str, Any]] = []
    accounts = org["Account"]
    for c in org["Contact"]:
        account = accounts.get(c["AccountId"])
        out.append(
            event(
                "Contact Created",
                c["Id"],
                person_id(c, identity),
                c["CreatedDate"],
                {
                    "salesforce_id": c["Id"],
                    "account_id": c["AccountId"],
                    "account_name": account["Name"] if account else None,
                    "lead_source": c["LeadSource"],
                    "owner_id": c["OwnerId"],
                },
            )
        )
    for lead in org["Lead"]:
        converted = lead["IsConverted"]
        owner = (
            reference_id(org, lead["ConvertedContactId"], identity)
            if converted
            else person_id(lead, identity)
        )
        assert owner is not None
        out.append(
            event(
                "Lead Created",
                lead["Id"],
                owner,
                lead["CreatedDate"],
                {
                    "salesforce_id": lead["Id"],
                    "lead_source": lead["LeadSource"],
                    "status": lead["Status"],
                    "company": lead["Company"],
                    "owner_id": lead["OwnerId"],
                    "converted": converted,
                },
            )
        )
        if converted:
            out.append(
                event(
                    "Lead Converted",
                    lead["Id"],
                    owner,
                    lead["ConvertedDate"],
                    {
                        "salesforce_id": lead["Id"],
                        "contact_id": lead["ConvertedContactId"],
                        "account_id": lead["ConvertedAccountId"],
                        "opportunity_id": lead["ConvertedOpportunityId"],
                        "lead_source": lead["LeadSource"],
                        "company": lead["Company"],
                    },
                )
            )
    opportunities = org["Opportunity"]
    for o in opportunities:
        owner = opportunity_owner(org, o, identity)
        if owner is None:
            continue
        props = {
            "opportunity_id": o["Id"],
            "opportunity_name": o["Name"],
            "amount": o["Amount"],
            "stage": o["StageName"],
            "type": o["Type"],
            "probability": o["Probability"],
            "closed": o["IsClosed"],
            "account_id": o["AccountId"],
            "close_date": o["CloseDate"],
            "owner_id": o["OwnerId"],
        }
        out.append(event("Opportunity Created", o["Id"], owner, o["CreatedDate"], props))
        if o["IsClosed"]:
            name = "Opportunity Won" if o["IsWon"] else "Opportunity Lost"
            out.append(event(name, o["Id"], owner, o["CloseDate"], props))
    for h in org["OpportunityHistory"]:
        o = opportunities.get(h["OpportunityId"])
        assert o is not None
        owner = opportunity_owner(org, o, identity)
        if owner is None:
            continue
        out.append(
            event(
                "Opportunity Stage Changed",
                h["Id"],
                owner,
                h["CreatedDate"],
                {
                    "opportunity_id": o["Id"],
                    "stage": h["StageName"],
                    "amount": h["Amount"],
                    "probability": h["Probability"],
                    "type": o["Type"],
                    "account_id": o["AccountId"],
                    "close_date": h["CloseDate"],
                },
            )
        )
    for case in org["Case"]:
        owner = reference_id(org, case["ContactId"], identity) or (
            f"account:{case['AccountId']}" if case["AccountId"] else None
        )
        if owner is None:
            continue
        props = {
            "case_id": case["Id"],
            "case_number": case["CaseNumber"],
            "status": case["Status"],
            "priority": case["Priority"],
            "origin": case["Origin"],
            "type": case["Type"],
            "reason": case["Reason"],
            "account_id": case["AccountId"],
            "contact_id": case["ContactId"],
        }
        out.append(event("Case Opened", case["Id"], owner, case["CreatedDate"], props))
        if case["IsClosed"]:
            out.append(event("Case Closed", case["Id"], owner, case["ClosedDate"], props))
    for task in org["Task"]:
        if not task["IsClosed"] or not task["WhoId"]:
            continue
        owner = reference_id(org, task["WhoId"], identity)
        assert owner is not None
        out.append(
            event(
                "Task Completed",
                task["Id"],
                owner,
                task["CompletedDateTime"] or task["LastModifiedDate"],
                {
                    "task_id": task["Id"],
                    "subject": task["Subject"],
                    "status": task["Status"],
                    "priority": task["Priority"],
                    "type": task["Type"],
                    "task_subtype": task["TaskSubtype"],
                    "what_id": task["WhatId"],
                    "account_id": task["AccountId"],
                    "owner_id": task["OwnerId"],
                },
            )
        )
    return {e["properties"]["$insert_id"]: e for e in out}
