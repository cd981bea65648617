"""``mpconnect run`` of a Salesforce source into the embedded store and the datasets server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mpconnect.testing import (
    TEST_PROJECT_SECRET,
    TEST_PROJECT_TOKEN,
    local_datasets_server,
    run_cli,
)
from mpconnect_salesforce.localserver.api import PASSWORD, SECURITY_TOKEN
from mpconnect_salesforce.localserver.org import Org

from .conftest import LocalSalesforce
from .expected import all_events, opportunity_totals, primary_contacts

pytestmark = pytest.mark.timeout(120)

SOURCE = """
[sources.crm]
connector = "salesforce"
dataset_id = "CRM"
max_quarantined = "unlimited"   # the fake org's orphan rows are about 6% of it

[sources.crm.settings]
username = "ada@acme.test"
password = "${{SF_PASSWORD}}"
security_token = "${{SF_TOKEN}}"
login_url = "{url}"
ca_bundle = "{ca}"
identity = "email"
retry_wait = 0.01
bulk_poll_interval = 0.01
bulk_threshold = 50

[[sources.crm.settings.events]]
object = "Demo_Request__c"
event = "Demo Requested"
time_field = "CreatedDate"
distinct_id_field = "Contact__c"
properties = ["Product__c", "Region__c"]
where = "Status__c != 'Spam'"
"""
ENV = {"SF_PASSWORD": PASSWORD, "SF_TOKEN": SECURITY_TOKEN}


def expected(org: Org) -> tuple[dict[str, int], int, int]:
    """Events by name, people records, and rows quarantined, counted from the org."""
    events = Counter(e["event"] for e in all_events(org, "email").values())
    demos = [r for r in org["Demo_Request__c"] if r["Status__c"] != "Spam"]
    events["Demo Requested"] = sum(1 for r in demos if r["Contact__c"])
    people = org.sizes["Contact"] + sum(1 for lead in org["Lead"] if not lead["IsConverted"])
    people += len(opportunity_totals(org, "email"))
    orphans = {
        o["Id"]
        for o in org["Opportunity"]
        if not o["AccountId"] and o["Id"] not in primary_contacts(org)
    }
    quarantined = (
        len(orphans)
        + sum(1 for h in org["OpportunityHistory"] if h["OpportunityId"] in orphans)
        + sum(1 for c in org["Case"] if not c["ContactId"] and not c["AccountId"])
        + sum(1 for t in org["Task"] if t["IsClosed"] and not t["WhoId"])
        + sum(1 for r in demos if not r["Contact__c"])
    )
    return dict(events), people, quarantined


def _config(tmp_path: Path, salesforce: LocalSalesforce, head: str = "") -> Path:
    path = tmp_path / "mpconnect.toml"
    path.write_text(head + SOURCE.format(url=salesforce.url, ca=salesforce.ca_path))
    return path


def _run_and_inspect(
    config: Path, home: Path, *inspect_args: str, env: dict[str, str] | None = None
) -> tuple[str, dict]:
    env = {**ENV, **(env or {})}
    ran = run_cli("--config", config, "run", "crm", home=home, env=env)
    assert ran.exit_code == 0, ran.output
    shown = run_cli(
        "--config", config, "inspect", "CRM", "--json", *inspect_args, home=home, env=env
    )
    assert shown.exit_code == 0, shown.output
    return ran.output, json.loads(shown.stdout)


def test_run_into_the_embedded_store(salesforce: LocalSalesforce, tmp_path: Path) -> None:
    events, people, quarantined = expected(salesforce.org)
    output, loaded = _run_and_inspect(_config(tmp_path, salesforce), tmp_path / "home")
    assert loaded["dataset_id"] == "CRM"
    assert loaded["events_by_name"] == events
    assert loaded["events_total"] == sum(events.values())
    owners = opportunity_totals(salesforce.org, "email")
    accounts = sum(1 for owner in owners if owner.startswith("account:"))
    assert loaded["people_total"] == people
    assert loaded["profiles"] == people - len(owners) + accounts, "one profile per person"
    assert f"quarantined {quarantined}," in output
    assert salesforce.state.jobs, "Contact (60 > bulk_threshold) went over Bulk 2.0"
    assert PASSWORD not in output and SECURITY_TOKEN not in output


def test_run_into_the_local_datasets_server(salesforce: LocalSalesforce, tmp_path: Path) -> None:
    events, people, _ = expected(salesforce.org)
    with local_datasets_server(tmp_path / "datasets", datasets=["CRM"]) as server:
        head = f"""
[mixpanel]
sink = "datasets"
api_url = "{server.url}"
ca_bundle = "{server.ca_path}"
project_token = "{TEST_PROJECT_TOKEN}"
secret = "${{MIXPANEL_SECRET}}"
"""
        output, loaded = _run_and_inspect(
            _config(tmp_path, salesforce, head),
            tmp_path / "home",
            "--store",
            str(server.store.path),
            env={"MIXPANEL_SECRET": TEST_PROJECT_SECRET},
        )
    assert "crm: succeeded" in output
    assert loaded["events_by_name"] == events
    assert loaded["events_total"] == sum(events.values())
    assert loaded["people_total"] == people


def test_check_reports_the_org(salesforce: LocalSalesforce, tmp_path: Path) -> None:
    checked = run_cli(
        "--config", _config(tmp_path, salesforce), "check", "crm", home=tmp_path / "home", env=ENV
    )
    assert checked.exit_code == 0, checked.output
    assert f"Salesforce org {salesforce.org.org_id} (Acme Test Org)" in checked.output
    assert "Demo_Request__c (" in checked.output


def test_a_bad_field_in_a_mapping_fails_the_run_naming_it(
    salesforce: LocalSalesforce, tmp_path: Path
) -> None:
    config = _config(tmp_path, salesforce)
    config.write_text(config.read_text().replace('"Region__c"]', '"Regoin__c"]'))
    ran = run_cli("--config", config, "run", "crm", home=tmp_path / "home", env=ENV)
    assert ran.exit_code != 0
    assert (
        "sources.crm.settings.events[0].properties: Demo_Request__c has no field "
        "'Regoin__c'; did you mean Region__c?"
    ) in ran.output
