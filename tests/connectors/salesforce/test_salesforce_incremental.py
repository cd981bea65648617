"""Incremental runs against the local org: after creates, updates and deletes, each
incremental run leaves exactly the snapshot a full run would publish at that moment."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from mpconnect import SourcePaused
from mpconnect_salesforce.errors import QuotaExceeded
from mpconnect_salesforce.localserver.org import Org

from .conftest import LocalSalesforce
from .expected import opportunity_totals
from .incremental_harness import Source

pytestmark = pytest.mark.timeout(120)

OWNER = "005000000000000AAA"


def _first(org: Org, name: str, **match: Any) -> dict[str, Any]:
    return next(r for r in org[name] if all(r.get(k) == v for k, v in match.items()))


def _full(salesforce: LocalSalesforce, settings: dict[str, Any]) -> list[bytes]:
    """The snapshot a full run publishes now."""
    source = Source(settings)
    source.run()
    return source.snapshot()


def _changes(org: Org) -> dict[str, str]:
    """Creates and updates across every stream, and a case deleted."""
    account = org.rows("Account")[0]["Id"]
    org.update(account, Name="Renamed Industries")
    contact = org.create(
        "Contact",
        FirstName="Nova",
        LastName="Quinn",
        Name="Nova Quinn",
        Email="nova.quinn@example.com",
        AccountId=account,
        OwnerId=OWNER,
        LeadSource="Web",
    )
    won = _first(org, "Opportunity", IsClosed=False)
    org.update(won["Id"], StageName="Closed Won", IsClosed=True, IsWon=True, Probability=100.0)
    org.create(
        "OpportunityHistory",
        OpportunityId=won["Id"],
        StageName="Closed Won",
        Probability=100.0,
        Amount=won["Amount"],
        CloseDate=won["CloseDate"],
    )
    role = _first(org, "OpportunityContactRole", IsPrimary=True)
    org.update(role["Id"], ContactId=contact)
    org.create(
        "Opportunity",
        Name="Deal new",
        AccountId=account,
        StageName="Prospecting",
        Probability=10.0,
        IsClosed=False,
        IsWon=False,
        Amount=5000.5,
        CloseDate=date(2026, 12, 31),
        OwnerId=OWNER,
    )
    org.delete(org.rows("Case")[0]["Id"])
    reopened = _first(org, "Task", IsClosed=True)
    org.update(reopened["Id"], IsClosed=False, Status="In Progress", CompletedDateTime=None)
    now = org.now()
    org.create(
        "Task",
        WhoId=contact,
        Subject="Call",
        Status="Completed",
        IsClosed=True,
        CompletedDateTime=now,
        LastModifiedDate=now,
        OwnerId=OWNER,
        TaskSubtype="Call",
    )
    lead = _first(org, "Lead", IsConverted=False)
    org.update(lead["Id"], Company="Renamed Labs")
    orphaned = next(t for t in org["Task"] if t["IsClosed"] and t["WhoId"])
    org.update(orphaned["Id"], WhoId=None)  # quarantined from now on
    case = [c for c in org["Case"] if c["ContactId"]][1]
    org.update(case["Id"], ContactId=None, AccountId=None)
    return {
        "contact": contact,
        "won": won["Id"],
        "role": role["Id"],
        "reopened": reopened["Id"],
        "orphaned": orphaned["Id"],
    }


def _more_changes(org: Org, made: dict[str, str]) -> None:
    """Deletes: an opportunity with its history, a primary contact role, a contact."""
    lost = _first(org, "Opportunity", IsClosed=False)
    org.delete(lost["Id"])
    org.delete(made["role"])
    org.delete(org.rows("Contact")[1]["Id"])
    org.update(made["contact"], Title="CTO")


@pytest.mark.parametrize("bulk", [False, True], ids=["rest", "bulk"])
def test_each_incremental_run_publishes_what_a_full_run_would(
    salesforce: LocalSalesforce, bulk: bool
) -> None:
    settings = salesforce.settings(use_bulk=bulk)
    source = Source(settings)
    first = source.run()
    assert first.full and first.yielded > 300
    assert set(source.state["cursors"]) == {"contacts", "leads", "opportunities", "cases", "tasks"}

    made = _changes(salesforce.org)
    second = source.run()
    assert not second.full and not second.reasons
    assert second.yielded < first.yielded / 5, "only what changed was read"
    assert ("cases", next(iter(salesforce.org["Case"].bin))) in second.deleted
    assert ("tasks", made["reopened"]) in second.deleted, "a task no longer closed leaves"
    assert ("tasks", made["orphaned"]) in second.deleted, "a task now quarantined leaves"
    assert source.snapshot() == _full(salesforce, settings)

    _more_changes(salesforce.org, made)
    third = source.run()
    assert ("opportunities", next(iter(salesforce.org["Opportunity"].bin))) in third.deleted
    assert source.snapshot() == _full(salesforce, settings)

    quiet = source.run()
    assert not quiet.deleted - third.deleted
    assert source.snapshot() == _full(salesforce, settings)


def test_open_opportunity_totals_follow_incremental_changes(salesforce: LocalSalesforce) -> None:
    source = Source(salesforce.settings())
    source.run()
    made = _changes(salesforce.org)
    source.run()
    totals = {
        record.distinct_id: record.set
        for (stream, _), records in source.cache.items()
        if stream == "opportunity_totals"
        for record in records
    }
    assert totals == opportunity_totals(salesforce.org)
    assert made["contact"] in totals, "the new primary contact owns an opportunity"


def test_a_cursor_older_than_the_recycle_bin_falls_back_to_a_full_read(
    salesforce: LocalSalesforce,
) -> None:
    source = Source(salesforce.settings())
    source.run()
    _changes(salesforce.org)
    salesforce.org.advance(days=16)
    late = source.run()
    assert late.full
    assert late.reasons and "recycle bin" in late.reasons[0] and "15 days" in late.reasons[0]
    assert source.snapshot() == _full(salesforce, salesforce.settings())


@pytest.mark.parametrize("overlap", [10.0, 0.0])
def test_the_overlap_window_reads_a_change_that_committed_late(
    salesforce: LocalSalesforce, overlap: float
) -> None:
    settings = salesforce.settings(overlap_minutes=overlap)
    source = Source(settings)
    source.run()
    org = salesforce.org
    early, late = org.rows("Contact")[3]["Id"], org.rows("Contact")[4]["Id"]
    org.update(early, Title="VP Sales")
    org.advance(minutes=1)
    source.run()
    cursor = org["Contact"].edits[early]["SystemModstamp"]
    org.update(late, Title="Analyst")
    org["Contact"].edits[late]["SystemModstamp"] = cursor - timedelta(minutes=3)
    source.run()
    if overlap:
        assert source.snapshot() == _full(salesforce, settings)
    else:
        assert source.snapshot() != _full(salesforce, settings), "no overlap: the change is lost"


def test_the_email_identity_stays_exact_across_incremental_runs(
    salesforce: LocalSalesforce,
) -> None:
    settings = salesforce.settings(identity="email")
    source = Source(settings)
    source.run()
    _changes(salesforce.org)
    assert not source.run().full
    assert source.snapshot() == _full(salesforce, settings)


def test_a_changed_email_under_the_email_identity_reads_everything(
    salesforce: LocalSalesforce,
) -> None:
    settings = salesforce.settings(identity="email")
    source = Source(settings)
    source.run()
    org = salesforce.org
    contact = org.rows("Contact")[2]
    org.update(contact["Id"], Email="someone.else@example.com")
    changed = source.run()
    assert changed.full
    assert changed.reasons == [
        f"Contact {contact['Id']} changed its email or was deleted or converted "
        '(identity = "email")'
    ]
    assert source.snapshot() == _full(salesforce, settings)
    org.delete(org.rows("Lead")[0]["Id"])
    assert source.run().full
    assert source.snapshot() == _full(salesforce, settings)
    org.update(org.rows("Contact")[5]["Id"], Title="CFO")
    assert not source.run().full
    assert source.snapshot() == _full(salesforce, settings)


def test_a_run_stopped_by_the_quota_guard_is_paused_and_the_next_one_goes_on(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.page_size = 5
    settings = salesforce.settings(max_api_share=0.5)
    whole = _full(salesforce, settings)
    calls = salesforce.state.api_used
    salesforce.state.api_used = 0
    salesforce.state.api_limit = calls * 9 // 5  # the guard stops at 9/10 of a full run
    source = Source(settings)
    paused = source.run()
    assert isinstance(paused.paused, QuotaExceeded)
    assert isinstance(paused.paused, SourcePaused) and paused.paused.reason == "api quota"
    assert str(paused.paused).startswith("paused: api quota (stopping before Salesforce API call")
    kept = source.state.get("cursors", {})
    assert kept and set(kept) < {"contacts", "leads", "opportunities", "cases", "tasks"}
    assert "contacts" not in kept, "contacts wait for their profiles"

    salesforce.state.api_used = 0
    salesforce.state.api_limit = 1_000_000
    gone = salesforce.org.rows("Contact")[0]["Id"]
    assert ("contacts", gone) in source.cache
    salesforce.org.delete(gone)
    goes_on = source.run()
    assert not goes_on.full and not goes_on.paused
    assert ("contacts", gone) not in source.cache
    assert source.snapshot() == _full(salesforce, settings)
    assert source.snapshot() != whole
    assert set(source.state["cursors"]) == {"contacts", "leads", "opportunities", "cases", "tasks"}


def test_the_local_org_keeps_deleted_rows_for_15_days_only(salesforce: LocalSalesforce) -> None:
    org = salesforce.org
    case = org.rows("Case")[0]["Id"]
    org.delete(case)
    assert org["Case"].get(case) is None
    assert [row["Id"] for row in org["Case"].deleted()] == [case]
    org.advance(days=14, hours=23)
    assert [row["Id"] for row in org["Case"].deleted()] == [case]
    org.advance(hours=2)
    assert list(org["Case"].deleted()) == []


DEMOS = {
    "object": "Demo_Request__c",
    "event": "Demo Requested",
    "distinct_id_field": "Contact__c",
    "properties": ["Product__c", "Region__c"],
    "where": "Status__c != 'Spam'",
}


def test_mappings_are_incremental_and_a_removed_one_leaves_the_snapshot(
    salesforce: LocalSalesforce,
) -> None:
    org = salesforce.org
    settings = salesforce.settings(events=[DEMOS], people=[{"object": "Member__c"}])
    source = Source(settings)
    source.run()
    spam = _first(org, "Demo_Request__c", Status__c="New")
    org.update(spam["Id"], Status__c="Spam")
    org.create(
        "Demo_Request__c",
        Name="DR-new",
        Contact__c=org.rows("Contact")[0]["Id"],
        Product__c="Streams",
        Status__c="New",
        OwnerId=OWNER,
    )
    org.update(org.rows("Member__c")[0]["Id"], Tier__c="Gold")
    changed = source.run()
    assert not changed.full and changed.yielded < 40
    assert any(key[1] == spam["Id"] for key in changed.deleted)
    assert source.snapshot() == _full(salesforce, settings)

    source.settings = salesforce.settings()
    dropped = source.run()
    assert not dropped.full
    assert not [key for key in source.cache if key[0].startswith(("events:", "people:"))]
    assert source.snapshot() == _full(salesforce, source.settings)


def test_changing_the_identity_setting_reads_everything(salesforce: LocalSalesforce) -> None:
    source = Source(salesforce.settings())
    source.run()
    source.settings = salesforce.settings(identity="email")
    changed = source.run()
    assert changed.reasons == ["identity changed from 'id' to 'email'"]
    assert source.snapshot() == _full(salesforce, source.settings)
