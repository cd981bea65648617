"""``mpconnect run`` of a Stripe source, into the embedded store and the local datasets server."""

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
from mpconnect_stripe.localserver.api import TEST_KEY
from mpconnect_stripe.localserver.generate import generate

pytestmark = pytest.mark.timeout(120)

SOURCE = """
[sources.billing]
connector = "stripe"
dataset_id = "STRIPE"

[sources.billing.settings]
api_key = "${{STRIPE_API_KEY}}"
api_base = "{api_base}"
identity = "user_id"
max_requests_per_second = 200
"""


@pytest.fixture(scope="module")
def world():
    return generate(seed=5, customers=150)


def expected(world, *, unattributed: bool = True) -> tuple[Counter, int]:
    """Events by name the run must load, and how many objects go to quarantine.

    :param unattributed: whether the sink takes events tied to no user (the datasets
        sink does not: they are quarantined).
    """
    events = Counter(e.name for e in world.expected if unattributed or e.customer or e.email)
    quarantined = {
        e.object_id for e in world.expected if not (unattributed or e.customer or e.email)
    }
    return events, len(quarantined)


def run_and_inspect(
    config: Path, home: Path, *inspect_args: str, env: dict[str, str] | None = None
) -> tuple[str, dict]:
    env = {"STRIPE_API_KEY": TEST_KEY, **(env or {})}
    ran = run_cli("--config", config, "run", "billing", home=home, env=env)
    assert ran.exit_code == 0, ran.output
    shown = run_cli(
        "--config", config, "inspect", "STRIPE", "--json", *inspect_args, home=home, env=env
    )
    assert shown.exit_code == 0, shown.output
    return ran.stdout, json.loads(shown.stdout)


def test_run_into_the_embedded_store(stripe_api, world, tmp_path):
    api = stripe_api(world)
    config = tmp_path / "mpconnect.toml"
    config.write_text(SOURCE.format(api_base=api.url))
    events, quarantined = expected(world)

    output, loaded = run_and_inspect(config, tmp_path / "home")

    assert loaded["dataset_id"] == "STRIPE"
    assert loaded["events_by_name"] == dict(events)
    assert loaded["events_total"] == sum(events.values())
    assert loaded["people_total"] == len(world.customers)
    assert f"quarantined {quarantined}," in output
    assert TEST_KEY not in output


def test_run_into_the_local_datasets_server(stripe_api, world, tmp_path):
    api = stripe_api(world)
    events, _ = expected(world, unattributed=False)
    with local_datasets_server(tmp_path / "datasets", datasets=["STRIPE"]) as server:
        config = tmp_path / "mpconnect.toml"
        config.write_text(
            f"""
[mixpanel]
sink = "datasets"
api_url = "{server.url}"
ca_bundle = "{server.ca_path}"
project_token = "{TEST_PROJECT_TOKEN}"
secret = "${{MIXPANEL_SECRET}}"
"""
            + SOURCE.format(api_base=api.url)
        )
        output, loaded = run_and_inspect(
            config,
            tmp_path / "home",
            "--store",
            str(server.store.path),
            env={"MIXPANEL_SECRET": TEST_PROJECT_SECRET},
        )
    assert "billing: succeeded" in output
    assert loaded["events_by_name"] == dict(events)
    assert loaded["events_total"] == sum(events.values())
    assert loaded["people_total"] == len(world.customers)


def test_a_key_written_in_clear_is_refused(tmp_path):
    config = tmp_path / "mpconnect.toml"
    config.write_text(
        SOURCE.replace("${{STRIPE_API_KEY}}", TEST_KEY).format(api_base="http://127.0.0.1:9")
    )
    ran = run_cli("--config", config, "run", "billing", home=tmp_path / "home")
    assert ran.exit_code != 0
    assert "sources.billing.settings.api_key: secrets must not be written in clear" in ran.output
    assert TEST_KEY not in ran.output
