"""The standard streams: Contacts, Leads, Opportunities, Cases and Tasks.

Each stream reads a fixed list of standard fields and turns rows into events (and, for
Contacts and unconverted Leads, profiles kept in the run's spool). Rows with no one to
attribute an event to are quarantined with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mpconnect import Event
from mpconnect_salesforce.identity import account_id
from mpconnect_salesforce.reads import Read, Run
from mpconnect_salesforce.rows import Field, when

__all__ = ["STREAMS", "StreamSpec", "reads_for"]

Row = dict[str, Any]


def _fields(*spec: str) -> list[Field]:
    """``"Name"`` or ``"Amount:currency"`` into Fields."""
    out = []
    for item in spec:
        path, _, kind = item.partition(":")
        out.append(Field(path, kind or "string"))
    return out


def _props(row: Row, names: dict[str, str]) -> dict[str, Any]:
    """``{property: row[field]}`` for the fields that have a value."""
    return {prop: row[path] for path, prop in names.items() if row.get(path) is not None}


def _event(
    run: Run,
    obj: str,
    row: Row,
    name: str,
    distinct_id: str | None,
    time_field: str,
    properties: dict[str, Any],
    missing_who: str = "",
) -> Event | None:
    time = when(row.get(time_field))
    if distinct_id is None:
        run.skip(obj, row, f"no one to attribute {name!r} to: {missing_who}")
        return None
    if time is None:
        run.skip(obj, row, f"{obj} has no {time_field}, the time of {name!r}")
        return None
    return Event(
        name=name, distinct_id=distinct_id, time=time, object_id=row["Id"], properties=properties
    )


def _owned(
    run: Run,
    obj: str,
    row: Row,
    owner: str | None,
    wanted: list[tuple[str, str, dict[str, Any]]],
    missing_who: str,
) -> Iterator[Event]:
    """The events ``wanted`` (name, time field, properties) of one row that ``owner`` owns.

    A row with no owner is quarantined once, with a reason naming every event it loses.
    """
    if owner is None:
        names = ", ".join(repr(name) for name, _, _ in wanted)
        run.skip(obj, row, f"no one to attribute {names} to: {missing_who}")
        return
    for name, time_field, properties in wanted:
        event = _event(run, obj, row, name, owner, time_field, properties)
        if event is not None:
            yield event


# Contacts ------------------------------------------------------------------------------

CONTACT_FIELDS = _fields(
    "Id:id",
    "Email:email",
    "FirstName",
    "LastName",
    "Name",
    "Phone:phone",
    "Title",
    "LeadSource:picklist",
    "AccountId:reference",
    "Account.Name",
    "OwnerId:reference",
    "MailingCountry",
    "CreatedDate:datetime",
)
_CONTACT_PROFILE = {
    "Email": "$email",
    "FirstName": "$first_name",
    "LastName": "$last_name",
    "Name": "$name",
    "Phone": "$phone",
    "Title": "title",
    "LeadSource": "lead_source",
    "AccountId": "account_id",
    "Account.Name": "account_name",
    "OwnerId": "owner_id",
    "MailingCountry": "mailing_country",
    "Id": "salesforce_id",
}
_CONTACT_EVENT = {
    "Id": "salesforce_id",
    "AccountId": "account_id",
    "Account.Name": "account_name",
    "LeadSource": "lead_source",
    "OwnerId": "owner_id",
}


def contact_events(run: Run, reads: list[Read]) -> Iterator[Event]:
    """``Contact Created`` per Contact; each Contact's profile goes to the spool."""
    for row in run.rows(reads[0]):
        distinct_id = run.identity.contact(row["Id"], row.get("Email"))
        profile = _props(row, _CONTACT_PROFILE)
        profile["salesforce_object"] = "Contact"
        run.spool.add(distinct_id, profile, row["Id"])
        event = _event(
            run,
            "Contact",
            row,
            "Contact Created",
            distinct_id,
            "CreatedDate",
            _props(row, _CONTACT_EVENT),
        )
        if event is not None:
            yield event
    run.identity.indexed.add("Contact")


# Leads ---------------------------------------------------------------------------------

LEAD_FIELDS = _fields(
    "Id:id",
    "Email:email",
    "FirstName",
    "LastName",
    "Name",
    "Phone:phone",
    "Title",
    "LeadSource:picklist",
    "Company",
    "Country",
    "OwnerId:reference",
    "Status:picklist",
    "IsConverted:boolean",
    "ConvertedDate:date",
    "ConvertedContactId:reference",
    "ConvertedAccountId:reference",
    "ConvertedOpportunityId:reference",
    "CreatedDate:datetime",
)
_LEAD_PROFILE = {
    "Email": "$email",
    "FirstName": "$first_name",
    "LastName": "$last_name",
    "Name": "$name",
    "Phone": "$phone",
    "Title": "title",
    "LeadSource": "lead_source",
    "Company": "account_name",
    "OwnerId": "owner_id",
    "Country": "mailing_country",
    "Id": "salesforce_id",
}
_LEAD_CREATED = {
    "Id": "salesforce_id",
    "LeadSource": "lead_source",
    "Status": "status",
    "Company": "company",
    "OwnerId": "owner_id",
}
_LEAD_CONVERTED = {
    "Id": "salesforce_id",
    "ConvertedContactId": "contact_id",
    "ConvertedAccountId": "account_id",
    "ConvertedOpportunityId": "opportunity_id",
    "LeadSource": "lead_source",
    "Company": "company",
}


def lead_events(run: Run, reads: list[Read]) -> Iterator[Event]:
    """``Lead Created`` per Lead and ``Lead Converted`` per converted Lead.

    A converted Lead's events belong to the Contact it became, and it is no second profile.
    Nor is an unconverted Lead with the email of a Contact (``identity = "email"``): they
    are one person, whose profile is the Contact's.
    """
    for row in run.rows(reads[0]):
        converted = bool(row.get("IsConverted"))
        contact = run.identity.of(row.get("ConvertedContactId"))
        if converted:
            owner = contact
        else:
            owner = run.identity.person(row["Id"], row.get("Email"))
            if run.identity.is_contact(owner):
                run.merged_leads += 1
                run.log.debug(
                    "Salesforce Lead %s: same email as a Contact, whose profile it keeps", row["Id"]
                )
            else:
                profile = _props(row, _LEAD_PROFILE)
                profile["salesforce_object"] = "Lead"
                run.spool.add(owner, profile, row["Id"])
        wanted = [
            ("Lead Created", "CreatedDate", {**_props(row, _LEAD_CREATED), "converted": converted})
        ]
        if converted:
            wanted.append(("Lead Converted", "ConvertedDate", _props(row, _LEAD_CONVERTED)))
        yield from _owned(
            run, "Lead", row, owner, wanted, "the converted lead has no ConvertedContactId"
        )
    run.identity.indexed.add("Lead")


# Opportunities -------------------------------------------------------------------------

ROLE_FIELDS = _fields("OpportunityId:reference", "ContactId:reference")
OPPORTUNITY_FIELDS = _fields(
    "Id:id",
    "Name",
    "AccountId:reference",
    "Amount:currency",
    "StageName:picklist",
    "Type:picklist",
    "Probability:percent",
    "IsClosed:boolean",
    "IsWon:boolean",
    "CloseDate:date",
    "CreatedDate:datetime",
    "OwnerId:reference",
)
HISTORY_FIELDS = _fields(
    "Id:id",
    "OpportunityId:reference",
    "StageName:picklist",
    "Amount:currency",
    "Probability:percent",
    "CloseDate:date",
    "CreatedDate:datetime",
    "Opportunity.AccountId:reference",
    "Opportunity.Type:picklist",
)
_OPPORTUNITY = {
    "Id": "opportunity_id",
    "Name": "opportunity_name",
    "Amount": "amount",
    "StageName": "stage",
    "Type": "type",
    "Probability": "probability",
    "AccountId": "account_id",
    "CloseDate": "close_date",
    "OwnerId": "owner_id",
}
_HISTORY = {
    "OpportunityId": "opportunity_id",
    "StageName": "stage",
    "Amount": "amount",
    "Probability": "probability",
    "Opportunity.Type": "type",
    "Opportunity.AccountId": "account_id",
    "CloseDate": "close_date",
}
_NO_OWNER = "the opportunity has no primary contact role and no account"


def _opportunity_owner(run: Run, opportunity: str, account: str | None) -> str | None:
    contact = run.primary_contacts.get(opportunity)
    if contact:
        return run.identity.of(contact)
    return account_id(account) if account else None


def opportunity_events(run: Run, reads: list[Read]) -> Iterator[Event]:
    """``Opportunity Created``, ``Won``/``Lost`` and one ``Stage Changed`` per history row.

    Attributed to the primary contact role's contact, else to ``account:<AccountId>``.
    The map of primary contacts (one entry per opportunity that has one) lives only while
    this stream runs.
    """
    roles, opportunities, history = reads
    run.primary_contacts = {
        row["OpportunityId"]: row["ContactId"]
        for row in run.rows(roles)
        if row.get("OpportunityId") and row.get("ContactId")
    }
    try:
        for row in run.rows(opportunities):
            owner = _opportunity_owner(run, row["Id"], row.get("AccountId"))
            props = _props(row, _OPPORTUNITY)
            wanted = [("Opportunity Created", "CreatedDate", props)]
            if row.get("IsClosed"):
                name = "Opportunity Won" if row.get("IsWon") else "Opportunity Lost"
                wanted.append((name, "CloseDate", props))
            yield from _owned(run, "Opportunity", row, owner, wanted, _NO_OWNER)
        for row in run.rows(history):
            owner = _opportunity_owner(run, row["OpportunityId"], row.get("Opportunity.AccountId"))
            changed = _event(
                run,
                "OpportunityHistory",
                row,
                "Opportunity Stage Changed",
                owner,
                "CreatedDate",
                _props(row, _HISTORY),
                _NO_OWNER,
            )
            if changed is not None:
                yield changed
    finally:
        run.primary_contacts = {}


# Cases ---------------------------------------------------------------------------------

CASE_FIELDS = _fields(
    "Id:id",
    "CaseNumber",
    "ContactId:reference",
    "AccountId:reference",
    "Status:picklist",
    "Priority:picklist",
    "Origin:picklist",
    "Type:picklist",
    "Reason:picklist",
    "IsClosed:boolean",
    "ClosedDate:datetime",
    "CreatedDate:datetime",
)
_CASE = {
    "Id": "case_id",
    "CaseNumber": "case_number",
    "Status": "status",
    "Priority": "priority",
    "Origin": "origin",
    "Type": "type",
    "Reason": "reason",
    "AccountId": "account_id",
    "ContactId": "contact_id",
}


def case_events(run: Run, reads: list[Read]) -> Iterator[Event]:
    """``Case Opened`` per Case and ``Case Closed`` per closed Case.

    Attributed to the case's contact, else to ``account:<AccountId>``.
    """
    for row in run.rows(reads[0]):
        owner = run.identity.of(row.get("ContactId"))
        if owner is None and row.get("AccountId"):
            owner = account_id(row["AccountId"])
        props = _props(row, _CASE)
        wanted = [("Case Opened", "CreatedDate", props)]
        if row.get("IsClosed"):
            wanted.append(("Case Closed", "ClosedDate", props))
        yield from _owned(run, "Case", row, owner, wanted, "the case has no contact and no account")


# Tasks ---------------------------------------------------------------------------------

TASK_FIELDS = _fields(
    "Id:id",
    "WhoId:reference",
    "WhatId:reference",
    "AccountId:reference",
    "OwnerId:reference",
    "Subject",
    "Status:picklist",
    "Priority:picklist",
    "Type:picklist",
    "TaskSubtype:picklist",
    "CompletedDateTime:datetime",
    "LastModifiedDate:datetime",
)
_TASK = {
    "Id": "task_id",
    "Subject": "subject",
    "Status": "status",
    "Priority": "priority",
    "Type": "type",
    "TaskSubtype": "task_subtype",
    "WhatId": "what_id",
    "AccountId": "account_id",
    "OwnerId": "owner_id",
}


def task_events(run: Run, reads: list[Read]) -> Iterator[Event]:
    """``Task Completed`` per completed Task, attributed to its ``WhoId`` (contact or lead).

    The time is ``CompletedDateTime``, else (older tasks) ``LastModifiedDate``.
    """
    for row in run.rows(reads[0]):
        time_field = "CompletedDateTime" if row.get("CompletedDateTime") else "LastModifiedDate"
        event = _event(
            run,
            "Task",
            row,
            "Task Completed",
            run.identity.of(row.get("WhoId")),
            time_field,
            _props(row, _TASK),
            "the task has no WhoId (it is not related to a contact or lead)",
        )
        if event is not None:
            yield event


# The streams, in the order a run reads them --------------------------------------------

Stream = Callable[[Run, list[Read]], Iterator[Event]]


@dataclass(frozen=True)
class StreamSpec:
    """A standard stream: its event function, its queries, whose emails its references need.

    :param queries: ``(object, fields, where)`` per query, in the order the stream reads.
    :param needs: people objects its references point at (for ``identity = "email"``).
    """

    events: Stream
    queries: tuple[tuple[str, list[Field], str | None], ...]
    needs: tuple[str, ...] = ()


#: The standard streams, in the order a run reads them.
STREAMS: dict[str, StreamSpec] = {
    "contacts": StreamSpec(contact_events, (("Contact", CONTACT_FIELDS, None),)),
    "leads": StreamSpec(lead_events, (("Lead", LEAD_FIELDS, None),), ("Contact",)),
    "opportunities": StreamSpec(
        opportunity_events,
        (
            ("OpportunityContactRole", ROLE_FIELDS, "IsPrimary = true"),
            ("Opportunity", OPPORTUNITY_FIELDS, None),
            ("OpportunityHistory", HISTORY_FIELDS, None),
        ),
        ("Contact",),
    ),
    "cases": StreamSpec(case_events, (("Case", CASE_FIELDS, None),), ("Contact",)),
    "tasks": StreamSpec(
        task_events, (("Task", TASK_FIELDS, "IsClosed = true"),), ("Contact", "Lead")
    ),
}


def reads_for(name: str) -> list[Read]:
    """Fresh Reads of the standard stream ``name``."""
    return [Read(obj, obj, list(fields), where) for obj, fields, where in STREAMS[name].queries]
