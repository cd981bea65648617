"""``mpconnect serve``: a group of local servers, with the old spelling still working.

``mpconnect serve mixpanel`` and ``mpconnect serve --dataset DEMO ...`` (options right
after ``serve``, as before there were several servers) both start the local Mixpanel
server; its printed ``[mixpanel]`` table, pasted as is, loads a source into it.
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import pytest

import mpconnect
from mpconnect.emulator.background import LocalServer, ServedSource, ServeOptions
from mpconnect.testing import run_cli, serve_in_background

pytestmark = pytest.mark.timeout(120)


def served_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MPCONNECT_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize("spelling", [[], ["mixpanel"]], ids=["old", "new"])
def test_both_spellings_start_the_mixpanel_server_and_its_settings_work(
    tmp_path: Path, spelling: list[str]
) -> None:
    args = [
        "--port",
        "0",
        "--dataset",
        "DEMO",
        "--live-delay",
        "0",
        "--store",
        str(tmp_path / "served.sqlite3"),
    ]
    # serve_in_background runs `mpconnect serve NAME ARGS`; the old spelling has no NAME.
    name, *rest = [*spelling, *args]
    with serve_in_background(name, *rest, env=served_env(tmp_path)) as served:
        table = tomllib.loads(served.toml)["mixpanel"]
        config = tmp_path / "mpconnect.toml"
        config.write_text(served.toml + "\n")
        ran = run_cli(
            "--config", config, "run", "demo", home=tmp_path / "home", env=served.environment
        )
        listed = run_cli(
            "--config",
            config,
            "versions",
            "list",
            "DEMO",
            home=tmp_path / "home",
            env=served.environment,
        )

    assert served.lines[0].startswith("serving the Datasets API on https://127.0.0.1:")
    assert table["sink"] == "datasets" and table["secret"] == "${MIXPANEL_SECRET}"
    assert Path(table["ca_bundle"]).is_file()
    assert set(served.environment) == {"MIXPANEL_SECRET"}
    assert ran.exit_code == 0, ran.output
    assert "demo: succeeded" in ran.stdout
    header, row = listed.stdout.splitlines()[:2]
    assert dict(zip(header.split(), row.split(), strict=False))["LIVE"] == "yes"


def test_a_secret_given_to_the_server_is_not_printed(tmp_path: Path) -> None:
    env = {**served_env(tmp_path), "MPCONNECT_SERVE_PROJECT_SECRET": "given-s3cret"}
    with serve_in_background("mixpanel", "--port", "0", env=env) as served:
        printed = "\n".join(served.lines)

    assert "given-s3cret" not in printed
    assert "export MIXPANEL_SECRET=...   # the project secret this server was given" in printed


def test_serve_help_lists_every_registered_server(cli: Any) -> None:
    result = cli("serve", "--help")

    assert result.exit_code == 0
    commands = result.stdout.split("Commands:", 1)[1]
    for name in ("mixpanel", "salesforce", "stripe"):
        assert f"  {name} " in commands


def test_an_unknown_server_names_the_installed_ones(cli: Any) -> None:
    result = cli("serve", "zendesk")

    assert result.exit_code == 2
    assert "no local server 'zendesk'; installed: mixpanel, salesforce, stripe" in result.output


def test_a_port_in_use_is_one_clear_line(cli: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "stripe", "--port", str(port), "--customers", "1")

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"mpconnect: error: mpconnect serve stripe: cannot listen on 127.0.0.1:{port}: "
        "address already in use; choose another --port (0 picks a free one)"
    )
    assert "Traceback" not in result.output


class _NeedsAModule(LocalServer):
    name: ClassVar[str] = "needy"
    connector: ClassVar[str] = "needy"
    requires: ClassVar[tuple[str, ...]] = ("mpconnect_test_no_such_module",)
    install_hint: ClassVar[str | None] = 'pip install "mpconnect-needy[server]"'

    def start(self, options: ServeOptions) -> ServedSource:
        raise AssertionError("never started without its requirements")


class _NeedyPlugin:
    @mpconnect.hookimpl
    def register_local_servers(self, register: Any) -> None:
        register(_NeedsAModule)


def test_a_server_whose_requirements_are_missing_says_how_to_install_them() -> None:
    result = run_cli("serve", "needy", "--port", "0", plugins=[_NeedyPlugin()])

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "mpconnect: error: mpconnect serve needy needs "
        "mpconnect_test_no_such_module: "
        'pip install "mpconnect-needy[server]"'
    )
