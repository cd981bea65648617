"""The daily API quota: never use more than max_api_share of it; stop on REQUEST_LIMIT_EXCEEDED."""

from __future__ import annotations

import pytest

from mpconnect.testing import run_connector
from mpconnect_salesforce import SalesforceConnector
from mpconnect_salesforce.errors import QuotaExceeded

from .conftest import LocalSalesforce

pytestmark = pytest.mark.timeout(60)


def test_a_run_whose_estimate_does_not_fit_stops_before_reading(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.api_limit = 100
    with pytest.raises(QuotaExceeded) as raised:
        run_connector(SalesforceConnector, salesforce.settings(rest_batch_size=1))
    message = str(raised.value)
    assert "not starting" in message
    assert "max_api_share = 0.5 of the org's daily quota of 100 allows 50" in message
    assert "Contact: 60 over REST" in message
    assert salesforce.state.calls("/query/01g") == 0
    assert salesforce.state.api_used == 7, "only the seven counts were spent"


def test_the_guard_stops_mid_run_before_passing_the_share(salesforce: LocalSalesforce) -> None:
    salesforce.state.api_limit = 100
    salesforce.state.page_size = 3  # more pages than the plan's estimate expects
    with pytest.raises(QuotaExceeded) as raised:
        run_connector(SalesforceConnector, salesforce.settings())
    assert "stopping before Salesforce API call 51" in str(raised.value)
    assert "max_api_share = 0.5 of the org's daily API quota of 100 requests (50 calls)" in str(
        raised.value
    )
    assert salesforce.state.api_used == 50


def test_a_larger_share_lets_the_same_run_finish(salesforce: LocalSalesforce) -> None:
    salesforce.state.api_limit = 400
    salesforce.state.page_size = 3
    collected = run_connector(SalesforceConnector, salesforce.settings(max_api_share=0.9))
    assert len(collected.events_named("Contact Created")) == 60
    assert salesforce.state.api_used <= 360


def test_a_run_that_does_not_fit_in_what_the_org_has_left_does_not_start(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.api_limit = 1000
    salesforce.state.api_used = 900
    with pytest.raises(QuotaExceeded, match="the org has only 93 of its 1000 daily requests left"):
        run_connector(
            SalesforceConnector, salesforce.settings(max_api_share=1.0, rest_batch_size=1)
        )


def test_request_limit_exceeded_stops_at_once_with_a_clear_message(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.api_limit = 1000
    salesforce.state.api_used = 995
    with pytest.raises(QuotaExceeded) as raised:
        run_connector(SalesforceConnector, salesforce.settings(max_api_share=1.0))
    message = str(raised.value)
    assert "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded." in message
    assert "API request limit is used up" in message
    assert salesforce.state.api_used == 1001, "no retry after the refusal"
