"""Bulk API 2.0: query jobs, results streamed page by page through Sforce-Locator."""

from __future__ import annotations

import math

import pytest

from mpconnect import SourceError
from mpconnect.testing import run_connector
from mpconnect_salesforce import SalesforceConnector
from mpconnect_salesforce.reads import Read
from mpconnect_salesforce.rows import Field
from mpconnect_salesforce.settings import SalesforceSettings

from .conftest import LocalSalesforce

pytestmark = pytest.mark.timeout(60)


def _sorted(records: list[dict]) -> list[str]:
    return sorted(repr(sorted(r.items(), key=str)) for r in records)


def test_bulk_yields_exactly_what_rest_yields(salesforce: LocalSalesforce) -> None:
    rest = run_connector(SalesforceConnector, salesforce.settings(use_bulk=False))
    rest_pages = salesforce.state.calls("/v59.0/query")
    bulk = run_connector(SalesforceConnector, salesforce.settings(use_bulk=True, bulk_page_size=9))
    assert _sorted(bulk.events) == _sorted(rest.events)
    assert _sorted(bulk.people) == _sorted(rest.people)  # REST reads come in SystemModstamp order
    assert _sorted([q.data for q in bulk.quarantined]) == _sorted(
        [q.data for q in rest.quarantined]
    )
    jobs = {job.query.table.name for job in salesforce.state.jobs.values()}
    assert jobs == {
        "Contact",
        "Lead",
        "OpportunityContactRole",
        "Opportunity",
        "OpportunityHistory",
        "Case",
        "Task",
    }
    assert salesforce.state.calls("/v59.0/query") == rest_pages + 7, "only the counts use REST"


def test_results_come_in_locator_pages_of_max_records(salesforce: LocalSalesforce) -> None:
    run_connector(
        SalesforceConnector,
        salesforce.settings(objects=["contacts"], use_bulk=True, bulk_page_size=7),
    )
    assert salesforce.state.calls("/results") == math.ceil(60 / 7)
    assert salesforce.state.calls("/jobs/query", "POST") == 1


def test_auto_uses_bulk_above_the_threshold_only(salesforce: LocalSalesforce) -> None:
    salesforce.state.bulk_polls = 3
    collected = run_connector(
        SalesforceConnector, salesforce.settings(objects=["contacts", "leads"], bulk_threshold=50)
    )
    assert [job.query.table.name for job in salesforce.state.jobs.values()] == ["Contact"]
    assert len(collected.events_named("Contact Created")) == 60
    assert len(collected.events_named("Lead Created")) == 40


def test_a_results_stream_cut_mid_page_is_fetched_again_without_duplicates(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.cut_bulk_after = 5
    salesforce.state.cut_bulk_times = 2
    collected = run_connector(
        SalesforceConnector,
        salesforce.settings(objects=["contacts"], use_bulk=True, bulk_page_size=20),
    )
    ids = [e["properties"]["salesforce_id"] for e in collected.events]
    assert sorted(ids) == sorted(c["Id"] for c in salesforce.org["Contact"])
    assert salesforce.state.calls("/results") == 3 + 2


def test_a_failed_job_stops_with_its_reason(salesforce: LocalSalesforce) -> None:
    salesforce.state.job_failure = "InternalServerError: query timed out"
    with pytest.raises(SourceError, match="job for Contact ended Failed: InternalServerError"):
        run_connector(SalesforceConnector, salesforce.settings(objects=["contacts"], use_bulk=True))


def test_a_job_that_never_finishes_is_aborted_after_bulk_timeout(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.bulk_polls = 10**9
    with pytest.raises(SourceError, match=r"did not finish within bulk_timeout = 0\.2 s"):
        run_connector(
            SalesforceConnector,
            salesforce.settings(objects=["contacts"], use_bulk=True, bulk_timeout=0.2),
        )
    assert [job.state for job in salesforce.state.jobs.values()] == ["Aborted"]


def test_a_compound_field_refused_by_bulk_names_the_field(salesforce: LocalSalesforce) -> None:
    people = [{"object": "Contact", "fields": "all"}]
    collected = run_connector(
        SalesforceConnector, salesforce.settings(objects=[], people=people, use_bulk=True)
    )
    assert len(collected.people) == 60
    assert all("MailingAddress" not in p["$set"] for p in collected.people)


def test_auto_sends_a_query_too_long_for_a_url_to_bulk() -> None:
    settings = SalesforceSettings(session_id="x", instance_url="https://a.example")
    wide = Read("Wide__c", "Wide__c", [Field(f"Field_{i:04d}__c") for i in range(800)])
    wide.decide(settings, count=10)
    narrow = Read("Contact", "Contact", [Field("Id")])
    narrow.decide(settings, count=10)
    assert (wide.bulk, narrow.bulk) == (True, False)
