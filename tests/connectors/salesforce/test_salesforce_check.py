"""check: logs in, reports the org, its API usage and what it can read; refuses what it cannot."""

from __future__ import annotations

import pytest

from mpconnect import RunContext, SourceError
from mpconnect_salesforce import SalesforceConnector

from .conftest import LocalSalesforce

pytestmark = pytest.mark.timeout(60)


def _check(salesforce: LocalSalesforce, **settings: object) -> str:
    connector = SalesforceConnector(SalesforceConnector.Settings(**salesforce.settings(**settings)))
    try:
        return connector.check(RunContext(source="crm", dataset_id="CRM"))
    finally:
        connector.close()


def test_check_reports_org_usage_and_readable_objects(salesforce: LocalSalesforce) -> None:
    salesforce.state.api_limit = 15000
    report = _check(
        salesforce,
        events=[
            {
                "object": "Demo_Request__c",
                "event": "Demo Requested",
                "distinct_id_field": "Contact__c",
                "properties": ["Product__c"],
            }
        ],
    )
    assert report.startswith(f"Salesforce org {salesforce.org.org_id} (Acme Test Org); ")
    assert f"API usage {salesforce.state.api_used}/15000 today" in report
    assert "Contact (60), Lead (40), OpportunityContactRole (20), Opportunity (30)" in report
    assert "Task (30), Demo_Request__c (20)" in report
    assert salesforce.state.calls("/query/01g") == 0, "check reads no records"


def test_check_says_which_object_this_user_cannot_read(salesforce: LocalSalesforce) -> None:
    salesforce.state.hidden_objects.add("Task")
    with pytest.raises(
        SourceError,
        match=r"settings\.objects: 'tasks' reads Task, which this "
        "Salesforce user cannot query",
    ):
        _check(salesforce)


def test_check_fails_on_bad_credentials(salesforce: LocalSalesforce) -> None:
    with pytest.raises(SourceError, match="INVALID_LOGIN"):
        _check(salesforce, security_token="WRONG")
