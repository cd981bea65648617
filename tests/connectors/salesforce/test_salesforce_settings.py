"""Settings validation, configuration-file secrets, and registration through the plugin API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from mpconnect import ConfigError
from mpconnect.config import connector_settings, parse_config
from mpconnect.plugins import load_plugins
from mpconnect_salesforce import SalesforceConnector
from mpconnect_salesforce.settings import SalesforceSettings

pytestmark = pytest.mark.timeout(60)

SESSION = {"session_id": "00Dx!secret", "instance_url": "https://acme.my.salesforce.com"}


def test_defaults_read_every_standard_object_by_id() -> None:
    settings = SalesforceSettings(**SESSION)
    assert settings.objects == ["contacts", "leads", "opportunities", "cases", "tasks"]
    assert (settings.identity, settings.use_bulk, settings.max_api_share) == ("id", "auto", 0.5)
    assert settings.auth_mode() == "session"
    assert settings.base_login_url() == "https://login.salesforce.com"
    assert SalesforceSettings(**SESSION, domain="test").base_login_url() == (
        "https://test.salesforce.com"
    )


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({}, "no complete credentials"),
        ({"session_id": "x"}, "instance_url and session_id go together"),
        ({"username": "a@b.c"}, "no complete credentials"),
        ({"consumer_key": "k", "consumer_secret": "s"}, "needs your My Domain"),
        ({**SESSION, "domain": "https://acme.my.salesforce.com"}, "give a full URL as login_url"),
        ({**SESSION, "login_url": "http://127.0.0.1:8443"}, "must be an https:// URL"),
        ({**SESSION, "api_version": "v59.0"}, "no leading 'v'"),
        ({**SESSION, "objects": ["contacts", "contacts"]}, "lists an object twice"),
        ({**SESSION, "objects": ["accounts"]}, "contacts"),
        ({**SESSION, "max_api_share": 1.5}, "less than or equal to 1"),
        ({**SESSION, "use_bulk": "sometimes"}, "use_bulk"),
        (
            {
                **SESSION,
                "events": [{"object": "Demo Request", "event": "x", "distinct_id_field": "Id"}],
            },
            "not a Salesforce API name",
        ),
        ({**SESSION, "private_key_file": "/nonexistent/key.pem"}, "does not exist"),
        ({**SESSION, "pasword": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(values: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        SalesforceSettings(**values)


def test_the_auth_flow_follows_the_keys_given(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    assert SalesforceSettings(username="u", password="p").auth_mode() == "password"
    assert (
        SalesforceSettings(username="u", consumer_key="k", private_key_file=str(key)).auth_mode()
        == "jwt"
    )
    assert (
        SalesforceSettings(consumer_key="k", consumer_secret="s", domain="acme.my").auth_mode()
        == "client_credentials"
    )


def test_a_secret_written_in_clear_in_the_configuration_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_TOKEN", "from-env")
    raw = {
        "sources": {
            "crm": {
                "connector": "salesforce",
                "dataset_id": "CRM",
                "settings": {
                    "username": "ada@acme.test",
                    "password": "in-clear",
                    "security_token": "${SF_TOKEN}",
                },
            }
        }
    }
    config = parse_config(raw, tmp_path / "mpconnect.toml")
    with pytest.raises(
        ConfigError,
        match=r"sources\.crm\.settings\.password: secrets must not "
        r"be written in clear",
    ) as raised:
        connector_settings(config, config.sources["crm"], SalesforceSettings)
    assert "in-clear" not in str(raised.value)


def test_mappings_load_from_toml_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mpconnect.toml"
    path.write_text("""
[sources.crm]
connector = "salesforce"
dataset_id = "CRM"
[sources.crm.settings]
username = "ada@acme.test"
password = "${SF_PASSWORD}"
[[sources.crm.settings.events]]
object = "Demo_Request__c"
event = "Demo Requested"
time_field = "CreatedDate"
distinct_id_field = "Contact__c"
properties = ["Product__c", "Region__c"]
where = "Status__c != 'Spam'"
[[sources.crm.settings.people]]
object = "Member__c"
distinct_id_field = "Contact__c"
fields = "all"
""")
    monkeypatch.setenv("SF_PASSWORD", "from-env")
    from mpconnect.config import load_config

    config = load_config(path)
    settings = connector_settings(config, config.sources["crm"], SalesforceSettings)
    assert isinstance(settings, SalesforceSettings)
    assert settings.password is not None and settings.password.get_secret_value() == "from-env"
    assert settings.events[0].where == "Status__c != 'Spam'"
    assert settings.people[0].fields == "all"
    assert "from-env" not in repr(settings)


def test_the_connector_is_registered_through_the_plugin_entry_point() -> None:
    plugins = load_plugins()
    entry = plugins.connector("salesforce")
    assert entry.cls is SalesforceConnector
    assert entry.provider.plugin == "salesforce"


def test_without_simple_salesforce_the_connector_is_listed_as_unavailable() -> None:
    code = (
        "import sys\n"
        "sys.modules['simple_salesforce'] = None\n"
        "from mpconnect.plugins import load_plugins\n"
        "entry = load_plugins().connectors['salesforce']\n"
        "assert 'simple_salesforce' not in [m for m in sys.modules if sys.modules[m]]\n"
        "print(entry.available, entry.unavailable_reason)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == (
        'False needs simple_salesforce: pip install "mpconnect[salesforce]"'
    )
