"""The ``datasets`` sink: `mpconnect run` and `versions list` against the local server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from datasets_support import API_SECRET, PROJECT_TOKEN

from mpconnect.config import parse_config
from mpconnect.errors import ConfigError
from mpconnect.sinks.datasets import DatasetsSink
from mpconnect.testing import run_connector
from mpconnect_demo import DemoConnector

pytestmark = pytest.mark.timeout(120)


def config_text(
    server,
    *,
    events: int = 2000,
    keep_versions: int = 2,
    api_url: str | None = None,
    extra: str = "",
) -> str:
    """A configuration whose demo source loads into ``server`` with the datasets sink."""
    return f"""
        [mixpanel]
        sink = "datasets"
        api_url = "{api_url or server.url}"
        project_token = "{PROJECT_TOKEN}"
        secret = "${{MIXPANEL_SECRET}}"
        ca_bundle = "{server.ca_path}"
        {extra}

        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        keep_versions = {keep_versions}

        [sources.demo.settings]
        events = {events}
        """


@pytest.fixture(autouse=True)
def mixpanel_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret the configurations reference, as a user exports it."""
    monkeypatch.setenv("MIXPANEL_SECRET", API_SECRET)


def test_run_demo_loads_exactly_what_the_connector_generates(
    datasets_server, cli, write_config
) -> None:
    config = write_config(config_text(datasets_server, events=2000))
    expected = run_connector(DemoConnector, {"events": 2000}, token=PROJECT_TOKEN)

    ran = cli("--config", config, "run", "demo")

    assert ran.exit_code == 0, ran.output
    [live] = [v for v in datasets_server.store.list_versions("DEMO") if v.is_live]
    contents = datasets_server.store.contents("DEMO", live.version_id)
    assert contents.events_total == len(expected.events) == 2000
    assert contents.events_by_name == dict(Counter(e["event"] for e in expected.events))
    assert contents.people_total == len(expected.people)
    assert contents.profiles == len({p["$distinct_id"] for p in expected.people})
    assert not live.writable and live.readable
    assert datasets_server.requests_to("/import-events") == 2
    assert API_SECRET not in ran.output


def test_seven_runs_leave_five_versions(datasets_server, cli, write_config) -> None:
    config = write_config(config_text(datasets_server, events=50, keep_versions=5))

    for _ in range(7):
        ran = cli("--config", config, "run", "demo", "--quiet")
        assert ran.exit_code == 0, ran.output

    versions = datasets_server.store.list_versions("DEMO")
    assert len(versions) == 5
    assert [v.is_live for v in versions] == [True, False, False, False, False]
    assert datasets_server.requests_to("/datasets/DEMO/versions", method="POST") == 7


def test_versions_list_reads_the_server(datasets_server, cli, write_config) -> None:
    config = write_config(config_text(datasets_server, events=20))
    cli("--config", config, "run", "demo", "--quiet")

    table = cli("--config", config, "versions", "list", "DEMO")
    as_json = cli("--config", config, "versions", "list", "DEMO", "--json")

    assert table.exit_code == 0, table.output
    [live] = datasets_server.store.list_versions("DEMO")
    assert live.version_id in table.output
    assert json.loads(as_json.stdout) == [live.to_api()]


def test_inspect_reads_the_servers_store(datasets_server, cli, write_config) -> None:
    config = write_config(config_text(datasets_server, events=30))
    cli("--config", config, "run", "demo", "--quiet")

    shown = cli(
        "--config", config, "inspect", "DEMO", "--store", datasets_server.store.path, "--json"
    )

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["events_total"] == 30


def test_an_http_api_url_is_refused_before_any_request(start_server, cli, write_config) -> None:
    server = start_server(http=True)
    config = write_config(config_text(server, api_url=server.http_url))

    ran = cli("--config", config, "run", "demo")

    assert ran.exit_code == 1
    assert (
        f"mixpanel.api_url: refusing {server.http_url}: plain http:// would send the "
        "secret in clear text"
    ) in ran.output
    assert server.request_counts() == {}


def test_an_unknown_dataset_says_how_to_create_it(start_server, cli, write_config) -> None:
    server = start_server(datasets=["OTHER"])
    config = write_config(config_text(server, events=10))

    ran = cli("--config", config, "run", "demo")

    assert ran.exit_code == 1
    assert "HTTP 404: dataset DEMO does not exist; the local server at" in ran.output
    assert "start it with --dataset DEMO" in ran.output


def test_a_wrong_secret_fails_the_run_with_the_server_text(
    datasets_server, cli, write_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXPANEL_SECRET", "not-the-secret")
    config = write_config(config_text(datasets_server, events=10))

    ran = cli("--config", config, "run", "demo")

    assert ran.exit_code == 1
    assert "HTTP 401" in ran.output and "invalid credentials" in ran.output
    assert "not-the-secret" not in ran.output


@pytest.mark.parametrize(
    "missing,message",
    [
        ("project_token", "mixpanel.project_token: the datasets sink needs the project token"),
        (
            "secret",
            "mixpanel.secret: the datasets sink needs the project secret or the dataset "
            'secret; add secret = "${MIXPANEL_SECRET}" to [mixpanel]',
        ),
    ],
)
def test_missing_credentials_are_a_config_error(tmp_path: Path, missing: str, message: str) -> None:
    table = {"sink": "datasets", "project_token": PROJECT_TOKEN, "secret": "${MIXPANEL_SECRET}"}
    del table[missing]
    config = parse_config({"mixpanel": table}, tmp_path / "mpconnect.toml")

    with pytest.raises(ConfigError) as refused:
        DatasetsSink(config.mixpanel, tmp_path)

    assert str(refused.value).startswith(message)


def test_the_sink_never_shows_its_secret(datasets_server, tmp_path: Path) -> None:
    table = {
        "sink": "datasets",
        "api_url": datasets_server.url,
        "project_token": PROJECT_TOKEN,
        "secret": "${MIXPANEL_SECRET}",
        "ca_bundle": str(datasets_server.ca_path),
    }
    sink = DatasetsSink(parse_config({"mixpanel": table}, tmp_path / "m.toml").mixpanel, tmp_path)

    shown = " ".join([repr(sink), sink.describe(), repr(sink.client)])

    assert API_SECRET not in shown
    assert sink.describe() == f"Datasets API at {datasets_server.url}"
    sink.close()


def test_allow_http_loopback_reaches_a_loopback_http_server(
    start_server, cli, write_config
) -> None:
    server = start_server(http=True)
    config = write_config(
        config_text(server, api_url=server.http_url, extra="allow_http_loopback = true")
    )

    ran = cli("--config", config, "versions", "list", "DEMO")

    assert ran.exit_code == 1
    assert "HTTP 403" in ran.output and "HTTPS is required" in ran.output
