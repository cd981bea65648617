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
from mpconnect_salesforce.build import (
    changed_read,
    event,
    fields,
    gone_reads,
    owned,
    props,
    tracked,
)
from mpconnect_salesforce.identity import account_id
from mpconnect_salesforce.incremental import Sync
from mpconnect_salesforce.opportunities import opportunity_events, opportunity_reads
from mpconnect_salesforce.reads import Read, Run
from mpconnect_salesforce.rows import Field

__all__ = ["STREAMS", "StreamSpec", "reads_for"]

Row = dict[str, Any]


# Contacts ------------------------------------------------------------------------------

CONTACT_FIELDS = fields(
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
    for row in tracked(run, "contacts", reads[0], commit=False):
        distinct_id = run.identity.contact(row["Id"], row.get("Email"))
        profile = props(row, _CONTACT_PROFILE)
        profile["salesforce_object"] = "Contact"
        run.spool.add(distinct_id, profile, row["Id"], "contacts")
        made = event(
            run,
            "contacts",
            "Contact",
            row,
            "Contact Created",
            distinct_id,
            "CreatedDate",
            props(row, _CONTACT_EVENT),
        )
        if made is not None:
            yield made
    run.identity.indexed.add("Contact")


# Leads ---------------------------------------------------------------------------------

LEAD_FIELDS = fields(
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
    for row in tracked(run, "leads", reads[0], commit=False):
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
                profile = props(row, _LEAD_PROFILE)
                profile["salesforce_object"] = "Lead"
                run.spool.add(owner, profile, row["Id"], "leads")
        wanted = [
            ("Lead Created", "CreatedDate", {**props(row, _LEAD_CREATED), "converted": converted})
        ]
        if converted:
            wanted.append(("Lead Converted", "ConvertedDate", props(row, _LEAD_CONVERTED)))
        yield from owned(
            run, "leads", "Lead", row, owner, wanted, "the converted lead has no ConvertedContactId"
        )
    run.identity.indexed.add("Lead")


# Cases ---------------------------------------------------------------------------------

CASE_FIELDS = fields(
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
    for row in tracked(run, "cases", reads[0]):
        owner = run.identity.of(row.get("ContactId"))
        if owner is None and row.get("AccountId"):
            owner = account_id(row["AccountId"])
        values = props(row, _CASE)
        wanted = [("Case Opened", "CreatedDate", values)]
        if row.get("IsClosed"):
            wanted.append(("Case Closed", "ClosedDate", values))
        yield from owned(
            run, "cases", "Case", row, owner, wanted, "the case has no contact and no account"
        )


# Tasks ---------------------------------------------------------------------------------

TASK_FIELDS = fields(
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
    for row in tracked(run, "tasks", reads[0]):
        time_field = "CompletedDateTime" if row.get("CompletedDateTime") else "LastModifiedDate"
        made = event(
            run,
            "tasks",
            "Task",
            row,
            "Task Completed",
            run.identity.of(row.get("WhoId")),
            time_field,
            props(row, _TASK),
            "the task has no WhoId (it is not related to a contact or lead)",
        )
        if made is not None:
            yield made


# The streams, in the order a run reads them --------------------------------------------

Stream = Callable[[Run, list[Read]], Iterator[Event]]


@dataclass(frozen=True)
class StreamSpec:
    """A standard stream: its event function, its queries, whose emails its references need.

    :param queries: ``(object, fields, where)`` per query, in the order the stream reads;
        the first is the stream's own object (the others: opportunities only).
    :param needs: people objects its references point at (for ``identity = "email"``).
    :param changed_also: a condition that makes a row changed besides its own
        ``SystemModstamp`` (``{since}`` is the stream's start), such as a parent's change.
    """

    events: Stream
    queries: tuple[tuple[str, list[Field], str | None], ...]
    needs: tuple[str, ...] = ()
    changed_also: str = ""


#: The standard streams, in the order a run reads them.
STREAMS: dict[str, StreamSpec] = {
    "contacts": StreamSpec(
        contact_events,
        (("Contact", CONTACT_FIELDS, None),),
        changed_also="Account.SystemModstamp >= {since}",
    ),
    "leads": StreamSpec(lead_events, (("Lead", LEAD_FIELDS, None),), ("Contact",)),
    "opportunities": StreamSpec(opportunity_events, (), ("Contact",)),
    "cases": StreamSpec(case_events, (("Case", CASE_FIELDS, None),), ("Contact",)),
    "tasks": StreamSpec(
        task_events, (("Task", TASK_FIELDS, "IsClosed = true"),), ("Contact", "Lead")
    ),
}


def reads_for(name: str, sync: Sync) -> list[Read]:
    """Fresh Reads of the standard stream ``name``: changes only on an incremental run."""
    if name == "opportunities":
        return opportunity_reads(sync)
    spec = STREAMS[name]
    obj, fields_, where = spec.queries[0]
    read = changed_read(Read(obj, obj, list(fields_), where), name, sync, spec.changed_also)
    return [read, *gone_reads(name, obj, where, sync)]
