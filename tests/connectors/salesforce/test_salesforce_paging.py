"""REST reads: lazy nextRecordsUrl paging, retries with backoff, and giving up clearly."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from mpconnect import SourceError
from mpconnect.emulator.background import LocalCA
from mpconnect.testing import run_connector
from mpconnect_salesforce import SalesforceConnector
from mpconnect_salesforce.localserver.org import Org

from .conftest import LocalSalesforce, start_salesforce
from .expected import contact_profile

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def big(local_ca: LocalCA) -> Iterator[LocalSalesforce]:
    """An org of 3000 contacts served 13 records a page."""
    server, api = start_salesforce(local_ca, Org(seed=11, contacts=3000), page_size=13)
    try:
        yield api
    finally:
        server.stop()


def test_paging_across_many_pages_reads_every_record_once(big: LocalSalesforce) -> None:
    collected = run_connector(SalesforceConnector, big.settings(objects=["contacts"]))
    pages = math.ceil(3000 / 13)
    assert big.state.calls("/query/01g") == pages - 1
    assert len(collected.events) == 3000
    ids = [e["properties"]["salesforce_id"] for e in collected.events]
    assert len(set(ids)) == 3000
    assert [p["$distinct_id"] for p in collected.people] == ids
    last = big.org["Contact"].row(2999)
    assert collected.profile(last["Id"]) == contact_profile(big.org, last)


def test_the_batch_size_setting_asks_for_smaller_pages(salesforce: LocalSalesforce) -> None:
    run_connector(
        SalesforceConnector, salesforce.settings(objects=["contacts"], rest_batch_size=10)
    )
    assert salesforce.state.calls("/query/01g") == math.ceil(60 / 10) - 1


def test_server_errors_mid_paging_are_retried_without_duplicates(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.page_size = 7
    salesforce.state.fail("/query/01g", status=503, times=2)
    salesforce.state.fail(
        "/query/01g",
        status=400,
        code="UNABLE_TO_LOCK_ROW",
        message="unable to obtain exclusive access to this record",
        times=1,
    )
    collected = run_connector(SalesforceConnector, salesforce.settings(objects=["contacts"]))
    ids = [e["properties"]["salesforce_id"] for e in collected.events]
    assert sorted(ids) == sorted(c["Id"] for c in salesforce.org["Contact"])
    assert salesforce.state.calls("/query/01g") == math.ceil(60 / 7) - 1 + 3


def test_a_timeout_is_retried(salesforce: LocalSalesforce) -> None:
    salesforce.state.stall("/query", seconds=0.8, times=1)
    collected = run_connector(
        SalesforceConnector, salesforce.settings(objects=["cases"], timeout=0.2)
    )
    assert len(collected.events_named("Case Opened")) + len(collected.quarantined) == 25


def test_an_error_that_persists_stops_the_run_with_the_server_message(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.page_size = 7
    salesforce.state.fail(
        "/query/01g",
        status=500,
        code="UNKNOWN_EXCEPTION",
        message="An unexpected error occurred",
        times=100,
    )
    with pytest.raises(SourceError) as raised:
        run_connector(SalesforceConnector, salesforce.settings(objects=["contacts"], max_retries=2))
    message = str(raised.value)
    assert "kept failing after 2 retries" in message
    assert "UNKNOWN_EXCEPTION: An unexpected error occurred" in message
    assert salesforce.state.calls("/query/01g") == 3


def test_a_malformed_query_is_not_retried(salesforce: LocalSalesforce) -> None:
    salesforce.state.fail(
        "/query", status=400, code="MALFORMED_QUERY", message="unexpected token: 'FORM'", times=1
    )
    with pytest.raises(SourceError, match="MALFORMED_QUERY: unexpected token"):
        run_connector(SalesforceConnector, salesforce.settings(objects=["contacts"]))
    assert salesforce.state.calls("/query") == 1
