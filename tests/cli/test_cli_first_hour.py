"""Issue 14, a new user's first hour: global options anywhere, configuration checked where
it is used, listings that list, the ``quarantine`` command, log prefixes, a fast start."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mpconnect
from mpconnect.cli.global_options import hoist_global_options

# -- global options before and after the subcommand ------------------------------------------


def test_config_after_the_subcommand_is_the_global_option(
    write_config: Callable[..., Path], cli: Any
) -> None:
    path = write_config(
        """
        [sources.tiny]
        connector = "demo"
        dataset_id = "TINY"
        [sources.tiny.settings]
        events = 20
    """,
        name="f.toml",
    )
    result = cli("run", "tiny", "--config", path)
    assert result.exit_code == 0, result.stderr
    assert "tiny: succeeded" in result.stdout


def test_home_quiet_and_log_format_after_the_subcommand(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "elsewhere"
    monkeypatch.setenv("MPCONNECT_HOME", str(tmp_path / "default-home"))  # restored after
    ran = cli("run", "demo", "--home", home, "--quiet")
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout == ""  # --quiet: no summary
    assert (home / "ledger.sqlite3").exists()
    listed = cli("runs", "--json", "--home", home, "--log-format", "json")
    assert [row["source"] for row in json.loads(listed.stdout)] == ["demo"]


def test_a_value_after_double_dash_is_not_a_global_option() -> None:
    assert hoist_global_options(["run", "x", "--", "--config", "f"]) == [
        "run",
        "x",
        "--",
        "--config",
        "f",
    ]
    assert hoist_global_options(["run", "x", "--config=f.toml", "-v"]) == [
        "--config=f.toml",
        "-v",
        "run",
        "x",
    ]


# -- configuration checked where it is used --------------------------------------------------


@pytest.fixture
def token_from_env(write_config: Callable[..., Path]) -> Path:
    return write_config("""
        [mixpanel]
        sink = "embedded"
        project_token = "${MIXPANEL_PROJECT_TOKEN}"
        [sources.tiny]
        connector = "demo"
        dataset_id = "TINY"
        [sources.tiny.settings]
        events = 20
    """)


@pytest.mark.parametrize("args", [["run", "demo"], ["sources", "list"], ["runs"]])
def test_an_unset_token_the_embedded_sink_does_not_use_stops_nothing(
    token_from_env: Path, cli: Any, args: list[str]
) -> None:
    result = cli("--config", token_from_env, *args)
    assert result.exit_code == 0, result.stderr
    assert "MIXPANEL_PROJECT_TOKEN" not in result.stderr


def test_inspect_works_with_an_unset_token(token_from_env: Path, cli: Any) -> None:
    assert cli("--config", token_from_env, "run", "tiny").exit_code == 0
    shown = cli("--config", token_from_env, "inspect", "TINY")
    assert shown.exit_code == 0, shown.stderr
    assert "events: 20" in shown.stdout


def test_a_sink_that_needs_them_names_every_unset_variable(
    write_config: Callable[..., Path], cli: Any
) -> None:
    path = write_config("""
        [mixpanel]
        sink = "datasets"
        project_token = "${MIXPANEL_PROJECT_TOKEN}"
        secret = "${MIXPANEL_SECRET}"
    """)
    result = cli("--config", path, "run", "demo")
    assert result.exit_code == 1
    assert (
        f"mpconnect: error: {path}: 2 environment variables are not set: "
        "MIXPANEL_PROJECT_TOKEN (mixpanel.project_token), MIXPANEL_SECRET "
        "(mixpanel.secret); export them or define them in the secrets_file" in result.stderr
    )


def test_sources_list_shows_what_check_would_refuse(
    write_config: Callable[..., Path], cli: Any
) -> None:
    path = write_config("""
        [sources.billing]
        connector = "stripe"
        dataset_id = "STRIPE"
        [sources.billing.settings]
        api_key = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
        [sources.crm]
        connector = "zendesk"
        dataset_id = "ZD"
        [sources.nightly]
        connector = "demo"
        dataset_id = "NIGHTLY"
        schedule = "61 * * * *"
        [sources.ok]
        connector = "demo"
        dataset_id = "OK"
    """)
    result = cli("--config", path, "sources", "list")
    assert result.exit_code == 1
    assert "sources.billing.settings.api_key: secrets must not be written in clear" in (
        result.stderr
    )
    assert "sk_test_4eC39HqLyjWDarjtT1zdp7dc" not in result.stderr + result.stdout
    assert "sources.crm.connector: no connector 'zendesk' is installed" in result.stderr
    assert "sources.nightly.schedule: '61 * * * *' is not a valid cron expression" in (
        result.stderr
    )
    listed = json.loads(cli("--config", path, "sources", "list", "--json").stdout)
    assert {row["name"]: len(row["problems"]) for row in listed} == {
        "billing": 1,
        "crm": 1,
        "nightly": 1,
        "ok": 0,
        "demo": 0,
    }


# -- listings that list ------------------------------------------------------------------------


def test_versions_list_refuses_a_malformed_dataset_id(cli: Any) -> None:
    result = cli("versions", "list", "not-a-dataset!")
    assert result.exit_code == 2
    assert "'not-a-dataset!' is not a dataset id: it must be 1 to 255 letters and digits" in (
        result.stderr
    )
    assert "has no versions" not in result.stdout


def test_bare_sources_and_connectors_list_them(cli: Any) -> None:
    connectors = cli("connectors")
    assert connectors.exit_code == 0
    assert connectors.stdout.splitlines()[0].split() == [
        "NAME",
        "PROVIDED",
        "BY",
        "STATUS",
        "SYNC",
        "DESCRIPTION",
    ]
    assert "synthetic airline reviews" in connectors.stdout
    sources = cli("sources")
    assert sources.exit_code == 0
    assert sources.stdout.splitlines()[1].split()[:3] == ["demo", "demo", "DEMO"]


# -- log lines start with the source's name --------------------------------------------------


class _ChattyConnector(mpconnect.Connector):
    name = "chatty"
    description = "logs without saying which source it reads"

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        ctx.log.info("read %d widgets", 3)
        yield from ()

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        ctx.log.warning("chatty: no people here")
        yield from ()


class _ChattyPlugin:
    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(_ChattyConnector)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_connectors_log_lines_start_with_the_source_name(
    write_config: Callable[..., Path], cli: Any, log_format: str
) -> None:
    path = write_config("""
        [sources.shop]
        connector = "chatty"
        dataset_id = "SHOP"
    """)
    result = cli(
        "--config", path, "run", "shop", "--log-format", log_format, plugins=[_ChattyPlugin()]
    )
    assert result.exit_code == 0, result.stderr
    assert "shop: read 3 widgets" in result.stderr
    assert "shop: chatty: no people here" in result.stderr


# -- mpconnect quarantine ----------------------------------------------------------------------


def test_quarantine_shows_reasons_counts_and_redacted_samples(
    write_config: Callable[..., Path], cli: Any, mpconnect_home: Path
) -> None:
    path = write_config("""
        [sources.reviews]
        connector = "demo"
        dataset_id = "REVIEWS"
        max_quarantined = "unlimited"
        [sources.reviews.settings]
        events = 30
        bad_records = 3
    """)
    assert cli("--config", path, "run", "reviews").exit_code == 0
    run_id = json.loads(cli("runs", "--json").stdout)[0]["run_id"]
    quarantine_file = mpconnect_home / "quarantine" / "reviews" / f"{run_id}.jsonl"
    with quarantine_file.open("a") as handle:  # a record carrying a credential
        handle.write(
            json.dumps(
                {
                    "time": 0,
                    "source": "reviews",
                    "what": "event 'Login'",
                    "field": "distinct_id",
                    "reason": "field 'distinct_id': 'N/A' is a placeholder id Mixpanel rejects",
                    "record": {
                        "properties": {
                            "api_key": "hunter2-is-secret",
                            "note": "paid with sk_live_51Habcdefghijklmnop",
                        }
                    },
                }
            )
            + "\n"
        )
    shown = cli("--config", path, "quarantine", "reviews")
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"reviews: run {run_id}: 4 records quarantined ({quarantine_file})"
    assert lines[1].split()[0] == "3" and "has no time zone" in lines[1]
    assert "hunter2-is-secret" not in shown.stdout
    assert "sk_live_51Habcdefghijklmnop" not in shown.stdout
    report = json.loads(cli("quarantine", "reviews", "--run", run_id, "--json").stdout)
    assert [(r["count"], r["fields"]) for r in report["reasons"]] == [
        (3, ["time"]),
        (1, ["distinct_id"]),
    ]
    secret_sample = report["reasons"][1]["samples"][0]["record"]["properties"]
    assert secret_sample["api_key"] == "***"


def test_quarantine_of_an_unknown_run_is_an_error(cli: Any) -> None:
    assert cli("run", "demo", "-q").exit_code == 0
    result = cli("quarantine", "demo", "--run", "nope")
    assert result.exit_code == 1
    assert (
        "mpconnect: error: source 'demo' has no run 'nope'; "
        "`mpconnect runs --source demo` lists its runs"
    ) in result.stderr


# -- start-up: light commands import no heavy module ------------------------------------------

HEAVY = ("pydantic", "requests", "stripe", "simple_salesforce", "aiohttp", "rich", "copier")
_PROBE = """
import sys
from mpconnect.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = %r
print("IMPORTED=" + ",".join(m for m in heavy if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("args", [["--help"], ["runs"], ["connectors", "list"]])
def test_light_commands_import_no_heavy_module(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE % (HEAVY,), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "IMPORTED=\n" in done.stderr, done.stderr
    if args == ["connectors", "list"]:
        assert "stripe" in done.stdout and "available" in done.stdout


def test_the_public_api_still_offers_every_name() -> None:
    for name in mpconnect.__all__:
        assert getattr(mpconnect, name) is not None
    from mpconnect_stripe import StripeConnector

    assert StripeConnector.name == "stripe"


@pytest.mark.parametrize("package", ["mpconnect_demo", "mpconnect_stripe", "mpconnect_salesforce"])
def test_a_built_in_reference_agrees_with_its_class(package: str) -> None:
    import importlib

    ref = importlib.import_module(package).CONNECTOR
    cls = ref.load()
    assert (cls.name, cls.description, cls.requires, cls.install_hint) == (
        ref.name,
        ref.description,
        ref.requires,
        ref.install_hint,
    )
