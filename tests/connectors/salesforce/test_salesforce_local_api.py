"""The local Salesforce API itself: Salesforce's answers and error shapes, and a consistent org."""

from __future__ import annotations

import email.utils

import pytest
import requests

from mpconnect_salesforce.localserver.org import Org, make_id

from .conftest import LocalSalesforce

pytestmark = pytest.mark.timeout(60)


def _get(
    salesforce: LocalSalesforce, path: str, token: str | None = None, **params: str
) -> requests.Response:
    token = token or salesforce.state.issue("test")
    return requests.get(
        f"{salesforce.url}/services/data/v59.0/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        verify=str(salesforce.ca_path),
        timeout=10,
    )


def test_ids_carry_salesforce_checksums() -> None:
    assert make_id("003", 42) == "003000000000042AAA"
    assert len({make_id("003", i) for i in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("soql", "code", "words"),
    [
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "unexpected token"),
        ("SELECT Id FORM Contact", "MALFORMED_QUERY", "unexpected token: 'FORM'"),
        ("SELECT Id FROM Contacts", "INVALID_TYPE", "sObject type 'Contacts' is not supported"),
        (
            "SELECT Emial FROM Contact",
            "INVALID_FIELD",
            "No such column 'Emial' on entity 'Contact'",
        ),
        ("SELECT Acount.Name FROM Contact", "INVALID_FIELD", "relationship 'Acount'"),
        ("SELECT Id FROM Task WHERE IsClosed = 'true'", "INVALID_FIELD", "must be of type boolean"),
    ],
)
def test_refused_queries_answer_salesforce_error_shapes(
    salesforce: LocalSalesforce, soql: str, code: str, words: str
) -> None:
    answer = _get(salesforce, "query/", q=soql)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == code and words in error["message"]


def test_a_bad_session_and_the_limit_answer_as_salesforce_does(
    salesforce: LocalSalesforce,
) -> None:
    answer = _get(salesforce, "query/", token="00D!nope", q="SELECT COUNT() FROM Contact")
    assert (answer.status_code, answer.json()) == (
        401,
        [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
    )
    salesforce.state.api_limit = 1
    ok = _get(salesforce, "query/", q="SELECT COUNT() FROM Contact")
    assert ok.headers["Sforce-Limit-Info"] == "api-usage=1/1"
    refused = _get(salesforce, "query/", q="SELECT COUNT() FROM Contact")
    assert refused.status_code == 403
    assert refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_query_answers_nest_parents_and_page_with_next_records_url(
    salesforce: LocalSalesforce,
) -> None:
    salesforce.state.page_size = 25
    token = salesforce.state.issue("test")
    first = _get(salesforce, "query/", token, q="SELECT Id, Account.Name FROM Contact").json()
    assert (first["totalSize"], first["done"], len(first["records"])) == (60, False, 25)
    record = first["records"][0]
    assert record["attributes"]["type"] == "Contact"
    assert set(record["Account"]) == {"attributes", "Name"}
    path = first["nextRecordsUrl"]
    assert path.startswith("/services/data/v59.0/query/01g") and path.endswith("-25")
    second = requests.get(
        salesforce.url + path,
        headers={"Authorization": f"Bearer {token}"},
        verify=str(salesforce.ca_path),
        timeout=10,
    ).json()
    assert len(second["records"]) == 25 and not second["done"]
    orphan = next(r for r in salesforce.org["Contact"] if not r["AccountId"])
    answer = _get(
        salesforce,
        "query/",
        token,
        q=f"SELECT Account.Name FROM Contact WHERE Id = '{orphan['Id']}'",
    ).json()
    assert answer["records"][0]["Account"] is None


def test_the_org_is_consistent_and_the_same_for_a_seed() -> None:
    org = Org(seed=3)
    assert Org(seed=3).rows("Task") == org.rows("Task")
    for lead in org["Lead"]:
        if lead["IsConverted"]:
            contact = org["Contact"].get(lead["ConvertedContactId"])
            assert contact is not None
            assert lead["ConvertedAccountId"] == contact["AccountId"]
            assert lead["ConvertedDate"] >= lead["CreatedDate"].date()
    converted = {lead["Id"] for lead in org["Lead"] if lead["IsConverted"]}
    assert not any(task["WhoId"] in converted for task in org["Task"])
    for opportunity in org["Opportunity"]:
        history = [h for h in org["OpportunityHistory"] if h["OpportunityId"] == opportunity["Id"]]
        assert history and history[-1]["StageName"] == opportunity["StageName"]
    for case in org["Case"]:
        contact = org["Contact"].get(case["ContactId"])
        if contact is not None:
            assert case["AccountId"] == contact["AccountId"]


def test_deleted_rows_are_seen_only_through_query_all(salesforce: LocalSalesforce) -> None:
    org = salesforce.org
    case = org.rows("Case")[0]["Id"]
    before = org.now()
    org.delete(case)
    soql = "SELECT Id, IsDeleted, SystemModstamp FROM Case WHERE IsDeleted = true"
    assert _get(salesforce, "query/", q=soql).json()["records"] == []
    [row] = _get(salesforce, "queryAll/", q=soql).json()["records"]
    assert row["Id"] == case and row["IsDeleted"] is True
    assert row["SystemModstamp"] >= before.strftime("%Y-%m-%dT%H:%M:%S")
    answer = _get(salesforce, "queryAll/", q="SELECT COUNT() FROM Case")
    assert answer.json()["totalSize"] == org.sizes["Case"]


def test_order_by_and_the_date_header_follow_the_org(salesforce: LocalSalesforce) -> None:
    org = salesforce.org
    newest = org.rows("Contact")[7]["Id"]
    org.update(newest, Title="CEO")
    org.advance(days=3)
    answer = _get(
        salesforce, "query/", q="SELECT Id FROM Contact ORDER BY SystemModstamp DESC, Id LIMIT 2"
    )
    assert answer.json()["records"][0]["Id"] == newest
    assert len(answer.json()["records"]) == 2
    served = email.utils.parsedate_to_datetime(answer.headers["Date"])
    assert abs((served - org.now()).total_seconds()) < 5


def test_bulk_query_all_jobs_and_no_order_by(salesforce: LocalSalesforce) -> None:
    token = salesforce.state.issue("test")
    url = f"{salesforce.url}/services/data/v59.0/jobs/query"
    headers = {"Authorization": f"Bearer {token}"}
    ordered = requests.post(
        url,
        json={"operation": "query", "query": "SELECT Id FROM Case ORDER BY Id"},
        headers=headers,
        verify=str(salesforce.ca_path),
        timeout=10,
    )
    assert ordered.status_code == 400 and "ORDER BY" in ordered.json()[0]["message"]
    job = requests.post(
        url,
        json={"operation": "queryAll", "query": "SELECT Id FROM Case WHERE IsDeleted = true"},
        headers=headers,
        verify=str(salesforce.ca_path),
        timeout=10,
    ).json()
    assert job["operation"] == "queryAll"
