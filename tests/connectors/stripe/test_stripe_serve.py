"""``mpconnect serve stripe``: the local Stripe API as a user starts it, and what it prints.

The settings it prints are pasted as they are (the TOML into a config file, the ``export``
lines into the environment) and a run must load exactly the account the server holds.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from mpconnect.testing import run_cli, serve_in_background
from mpconnect_stripe.localserver.api import TEST_KEY
from mpconnect_stripe.localserver.generate import generate

pytestmark = pytest.mark.timeout(120)


def test_the_printed_settings_load_the_served_account(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve_in_background(
        "stripe",
        "--port",
        "0",
        "--customers",
        "40",
        "--seed",
        "3",
        env={**os.environ, "MPCONNECT_HOME": str(home)},
    ) as served:
        settings = tomllib.loads(served.toml)
        config = tmp_path / "mpconnect.toml"
        config.write_text(served.toml + "\n")
        ran = run_cli("--config", config, "run", "billing", home=home, env=served.environment)
        shown = run_cli(
            "--config", config, "inspect", "STRIPE", "--json", home=home, env=served.environment
        )

    source = settings["sources"]["billing"]
    assert source["connector"] == "stripe" and source["dataset_id"] == "STRIPE"
    assert source["settings"]["api_key"] == "${STRIPE_API_KEY}"  # a reference, never the key
    assert source["settings"]["api_base"].startswith("http://127.0.0.1:")
    assert served.environment == {"STRIPE_API_KEY": TEST_KEY}
    world = generate(3, 40)
    assert served.lines[0] == (
        f"serving a local Stripe API on {source['settings']['api_base']}: "
        + ", ".join(f"{len(objects)} {name}" for name, objects in world.lists().items())
    )
    assert ran.exit_code == 0, ran.output
    assert "billing: succeeded" in ran.stdout
    loaded = json.loads(shown.stdout)
    expected = Counter(e.name for e in world.expected)  # unattributed ones too
    assert loaded["events_by_name"] == dict(expected)
    assert loaded["people_total"] == len(world.customers)


def test_customers_sizes_the_seeded_account(tmp_path: Path) -> None:
    env = {**os.environ, "MPCONNECT_HOME": str(tmp_path / "home")}
    with serve_in_background("stripe", "--port", "0", "--customers", "5", env=env) as small:
        first_small = small.lines[0]
    with serve_in_background("stripe", "--port", "0", "--customers", "80", env=env) as large:
        first_large = large.lines[0]

    assert f"{len(generate(1, 5).customers)} customers" in first_small
    assert f"{len(generate(1, 80).customers)} customers" in first_large


def test_the_default_port_is_the_one_the_readme_shows() -> None:
    from mpconnect_stripe.localserver import StripeLocalServer

    assert StripeLocalServer.default_port == 12111
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert 'api_base = "http://127.0.0.1:12111"' in readme
