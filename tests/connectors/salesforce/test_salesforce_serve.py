"""``mpconnect serve salesforce``: the local Salesforce API as a user starts it.

It serves HTTPS with a certificate from a local CA (the connector speaks https only) and
prints the ``[sources.crm]`` table with ``ca_bundle``; pasted as printed, a run loads
exactly the events the seeded org stands for.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from mpconnect.testing import run_cli, serve_in_background
from mpconnect_salesforce.localserver import org_sizes
from mpconnect_salesforce.localserver.api import PASSWORD, SECURITY_TOKEN
from mpconnect_salesforce.localserver.org import Org

from .expected import all_events

pytestmark = pytest.mark.timeout(120)


def test_the_printed_settings_load_the_served_org(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve_in_background(
        "salesforce",
        "--port",
        "0",
        "--contacts",
        "24",
        "--seed",
        "5",
        "--dir",
        str(tmp_path / "sf"),
        env={**os.environ, "MPCONNECT_HOME": str(home)},
    ) as served:
        settings = tomllib.loads(served.toml)["sources"]["crm"]["settings"]
        config = tmp_path / "mpconnect.toml"
        config.write_text(served.toml + "\n")
        ran = run_cli("--config", config, "run", "crm", home=home, env=served.environment)
        shown = run_cli(
            "--config", config, "inspect", "SALESFORCE", "--json", home=home, env=served.environment
        )

    assert settings["login_url"].startswith("https://127.0.0.1:")
    assert settings["ca_bundle"] == str((tmp_path / "sf" / "ca.pem").resolve())
    assert settings["password"] == "${SF_PASSWORD}"
    assert settings["security_token"] == "${SF_TOKEN}"
    assert served.environment == {"SF_PASSWORD": PASSWORD, "SF_TOKEN": SECURITY_TOKEN}
    assert ran.exit_code == 0, ran.output
    assert "crm: succeeded" in ran.stdout
    org = Org(5, **org_sizes(24))
    expected = Counter(e["event"] for e in all_events(org).values())
    assert json.loads(shown.stdout)["events_by_name"] == dict(expected)
    assert served.lines[0].endswith(
        ": 4 accounts, 24 contacts, 16 leads, 12 opportunities, 10 cases, 20 tasks"
    )


def test_sixty_contacts_is_the_default_org() -> None:
    assert org_sizes(60) == {
        "accounts": 12,
        "contacts": 60,
        "leads": 40,
        "opportunities": 30,
        "cases": 25,
        "tasks": 50,
        "demo_requests": 20,
        "members": 15,
    }
    assert Org(7, **org_sizes(60)).sizes == Org(7).sizes
