"""The opportunities stream, and the open opportunities of each owner.

``Opportunity Created``, ``Won``/``Lost`` and one ``Opportunity Stage Changed`` per history
row, all one source object (the Opportunity): a change re-reads the Opportunity with its
whole history. Events go to the primary contact role's contact, else to
``account:<AccountId>``; a change of contact roles alone makes the Opportunity changed too.

Each owner's profile gets ``open_opportunities`` and ``open_pipeline`` (the summed amount
of its open opportunities), computed from every opportunity: on an incremental run from
the changed ones and the cached rest (``ctx.unchanged``), so they equal a full run's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mpconnect import Event, Profile, make_insert_id
from mpconnect_salesforce.build import (
    STAMP,
    changed_read,
    event,
    fields,
    gone_reads,
    owned,
    props,
    sweep,
    tracked,
)
from mpconnect_salesforce.identity import account_id
from mpconnect_salesforce.incremental import Sync
from mpconnect_salesforce.reads import Read, Run
from mpconnect_salesforce.rows import Field

__all__ = ["TOTALS", "opportunity_events", "opportunity_reads", "totals_profiles"]

STREAM = "opportunities"
#: The stream of the owners' open-opportunity profiles (object id: the owner).
TOTALS = "opportunity_totals"
#: Ids per ``Id IN (...)`` query.
_CHUNK = 200

ROLE_FIELDS = fields("OpportunityId:reference", "ContactId:reference")
OPPORTUNITY_FIELDS = fields(
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
HISTORY_FIELDS = fields(
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
    "IsClosed": "closed",
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


def opportunity_reads(sync: Sync) -> list[Read]:
    """Primary contact roles, Opportunities and their history (changed ones only on an
    incremental run, with the roles changed since and the Opportunities gone)."""
    roles = Read("OpportunityContactRole", "OpportunityContactRole", list(ROLE_FIELDS))
    roles.where = "IsPrimary = true"
    opportunities = changed_read(
        Read("Opportunity", "Opportunity", list(OPPORTUNITY_FIELDS)), STREAM, sync
    )
    history = Read("OpportunityHistory", "OpportunityHistory", list(HISTORY_FIELDS))
    reads = [roles, opportunities, history]
    since = sync.changed_since(STREAM)
    if since is not None:
        history.where = f"Opportunity.SystemModstamp >= {since}"
        touched = [Field("OpportunityId", "reference"), STAMP]
        reads.append(
            Read(
                "OpportunityContactRole changed",
                "OpportunityContactRole",
                touched,
                f"SystemModstamp >= {since}",
                all_rows=True,
            )
        )
        reads += gone_reads(STREAM, "Opportunity", None, sync)
    return reads


def _owner(run: Run, opportunity: str, account: str | None) -> str | None:
    contact = run.primary_contacts.get(opportunity)
    if contact:
        return run.identity.of(contact)
    return account_id(account) if account else None


def _count(run: Run, made: Event) -> None:
    """Add an ``Opportunity Created`` event to its owner's open-opportunity totals."""
    assert run.totals is not None
    totals = run.totals.setdefault(made.distinct_id or "", [0, 0])
    if not made.properties.get("closed"):
        totals[0] += 1
        totals[1] += round(float(made.properties.get("amount") or 0) * 100)


def _opportunity(run: Run, row: dict[str, Any]) -> Iterator[Event]:
    owner = _owner(run, row["Id"], row.get("AccountId"))
    values = props(row, _OPPORTUNITY)
    wanted = [("Opportunity Created", "CreatedDate", values)]
    if row.get("IsClosed"):
        name = "Opportunity Won" if row.get("IsWon") else "Opportunity Lost"
        wanted.append((name, "CloseDate", values))
    for made in owned(run, STREAM, "Opportunity", row, owner, wanted, _NO_OWNER):
        if made.name == "Opportunity Created":
            _count(run, made)
        yield made


def _opportunities(run: Run, rows: Iterator[dict[str, Any]]) -> Iterator[Event]:
    for row in rows:
        yield from _opportunity(run, row)


def _stage_changed(run: Run, row: dict[str, Any]) -> Event | None:
    owner = _owner(run, row["OpportunityId"], row.get("Opportunity.AccountId"))
    return event(
        run,
        STREAM,
        "OpportunityHistory",
        row,
        "Opportunity Stage Changed",
        owner,
        "CreatedDate",
        props(row, _HISTORY),
        _NO_OWNER,
        object_id=row["OpportunityId"],
        insert_id=make_insert_id(row["Id"], "Opportunity Stage Changed"),
    )


def _chunks(ids: list[str]) -> Iterator[str]:
    for start in range(0, len(ids), _CHUNK):
        yield ", ".join(f"'{i}'" for i in ids[start : start + _CHUNK])


def opportunity_events(run: Run, reads: list[Read]) -> Iterator[Event]:
    """Every event of the (changed) Opportunities, then their owners' totals are known.

    The map of primary contacts (one entry per opportunity that has one) lives only while
    this stream runs; so does, on an incremental run, the set of changed Opportunities.
    """
    roles, opportunities, history, *touched_reads = reads
    run.primary_contacts = {
        row["OpportunityId"]: row["ContactId"]
        for row in run.rows(roles)
        if row.get("OpportunityId") and row.get("ContactId")
    }
    run.totals = {}
    incremental = bool(touched_reads)
    changed: set[str] = set()
    touched = {
        row["OpportunityId"]
        for read in touched_reads
        for row in run.rows(read)
        if row.get("OpportunityId")
    }
    try:
        for row in tracked(run, STREAM, opportunities, commit=False):
            if incremental:
                changed.add(row["Id"])
            yield from _opportunity(run, row)
        extra = sorted(touched - changed)
        for ids in _chunks(extra):
            where = f"Id IN ({ids})"
            read = Read("Opportunity (roles changed)", "Opportunity", opportunities.fields, where)
            yield from _opportunities(run, tracked(run, STREAM, read, commit=False))
        for row in run.rows(history):
            if not incremental or row["OpportunityId"] in changed:
                made = _stage_changed(run, row)
                if made is not None:
                    yield made
        for ids in _chunks(extra):
            where = f"OpportunityId IN ({ids})"
            for row in run.rows(
                Read(
                    "OpportunityHistory (roles changed)",
                    "OpportunityHistory",
                    history.fields,
                    where,
                )
            ):
                made = _stage_changed(run, row)
                if made is not None:
                    yield made
    finally:
        run.primary_contacts = {}
    sweep(run, STREAM)
    if incremental or run.sync.incremental:
        for record in run.sync.ctx.unchanged(STREAM):
            if isinstance(record, Event) and record.name == "Opportunity Created":
                _count(run, record)
    run.sync.commit(STREAM, complete=True)


def totals_profiles(run: Run) -> Iterator[Profile]:
    """Each owner's ``open_opportunities`` and ``open_pipeline``; on an incremental run only
    those that changed, and the owners left with no opportunity are deleted."""
    if run.totals is None:
        return
    cached: dict[str, dict[str, Any]] = {}
    if run.sync.incremental:
        for record in run.sync.ctx.unchanged(TOTALS):
            if isinstance(record, Profile) and record.object_id:
                cached[record.object_id] = record.set
    for owner in sorted(run.totals):
        count, cents = run.totals[owner]
        values = {"open_opportunities": count, "open_pipeline": cents / 100}
        if cached.pop(owner, None) != values:
            yield Profile(distinct_id=owner, set=values, object_id=owner, stream=TOTALS)
    for owner in cached:
        run.sync.ctx.deleted(TOTALS, owner)
