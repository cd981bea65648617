"""Configuration: where the file is found, ``${VAR}`` references, every error naming the
file, the key and the fix, and secrets never shown in output, errors, repr() or files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field, SecretStr

import mpconnect
from mpconnect.config import connector_settings, load_config, require_connector
from mpconnect.errors import ConfigError
from mpconnect.plugins import load_plugins

SECRET = "sk_live_51HyperSecretValue0000"


class VaultSettings(mpconnect.ConnectorSettings):
    """Settings with a secret, as a real connector has."""

    api_key: SecretStr
    region: Literal["eu", "us"] = "eu"
    page_size: int = Field(default=100, ge=1)


class VaultConnector(mpconnect.Connector):
    """A connector that needs an API key."""

    name = "vault"
    Settings = VaultSettings
    settings: VaultSettings

    def check(self, ctx: mpconnect.RunContext) -> str:
        """Describe the settings, as connectors do."""
        ctx.log.info("checking with %r", self.settings)
        return f"reachable with {self.settings}"

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        """One event, logging its settings."""
        ctx.log.info("reading with %r", self.settings)
        yield mpconnect.Event(
            name="Opened", distinct_id="acct-0001", time=1_700_000_000, object_id="vault-1"
        )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        """One profile."""
        yield mpconnect.Profile(distinct_id="acct-0001", set={"region": self.settings.region})


class VaultPlugin:
    @mpconnect.hookimpl
    def register_connectors(self, register: Any) -> None:
        """Register the vault connector."""
        register(VaultConnector)


def error_of(path: Path | str | None = None) -> str:
    """The ConfigError message loading ``path`` raises."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# -- where the file is found ------------------------------------------------------------


def _named(write_config: Any, source: str, name: str) -> Path:
    return write_config(
        f"""
        [sources.{source}]
        connector = "demo"
        dataset_id = "{source.upper()}"
    """,
        name=name,
    )


def test_config_option_beats_environment_beats_working_directory(
    write_config: Any, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    explicit = _named(write_config, "explicit", "explicit.toml")
    from_env = _named(write_config, "fromenv", "env.toml")
    local = Path.cwd() / "mpconnect.toml"
    local.write_text('[sources.local]\nconnector = "demo"\ndataset_id = "LOCAL"\n')

    def sources(*args: str) -> set[str]:
        result = cli(*args, "sources", "list", "--json")
        assert result.exit_code == 0, result.output
        return {row["name"] for row in json.loads(result.stdout)}

    assert sources() == {"local", "demo"}
    monkeypatch.setenv("MPCONNECT_CONFIG", str(from_env))
    assert sources() == {"fromenv", "demo"}
    assert sources("--config", str(explicit)) == {"explicit", "demo"}


def test_without_any_file_only_the_builtin_demo_source_exists() -> None:
    config = load_config()

    assert config.path is None
    assert list(config.sources) == ["demo"]
    assert config.sources["demo"].connector == "demo"
    assert config.mixpanel.sink == "embedded"


def test_a_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, cli: Any) -> None:
    result = cli("--config", "nowhere.toml", "sources", "list")
    monkeypatch.setenv("MPCONNECT_CONFIG", "/nonexistent/mp.toml")

    assert result.exit_code == 1
    assert result.stderr == (
        "mpconnect: error: nowhere.toml: configuration file does not exist (given with --config)\n"
    )
    assert error_of() == (
        "/nonexistent/mp.toml: configuration file does not exist (from $MPCONNECT_CONFIG)"
    )


def test_invalid_toml_names_the_file(write_config: Any) -> None:
    path = write_config("[sources.demo\nconnector = 1\n")

    assert error_of(path).startswith(f"{path}: not valid TOML: ")


# -- ${VAR} -----------------------------------------------------------------------------


def test_references_are_read_from_the_environment(
    write_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_DATASET", "BILLING2024")
    path = write_config("""
        [sources.billing]
        connector = "demo"
        dataset_id = "${BILLING_DATASET}"
        schedule = "0 * * * *"
    """)

    config = load_config(path)

    assert config.sources["billing"].dataset_id == "BILLING2024"
    assert config.is_reference("sources.billing.dataset_id")
    assert not config.is_reference("sources.billing.schedule")


def test_references_fall_back_to_the_secrets_file(
    write_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config('VAULT_KEY = "from-file"\n', name="secrets.toml")
    path = write_config("""
        secrets_file = "secrets.toml"

        [sources.v]
        connector = "vault"
        dataset_id = "V"

        [sources.v.settings]
        api_key = "${VAULT_KEY}"
    """)

    config = load_config(path)
    monkeypatch.setenv("VAULT_KEY", "from-env")
    overridden = load_config(path)

    assert config.sources["v"].settings["api_key"] == "from-file"
    assert overridden.sources["v"].settings["api_key"] == "from-env"


def test_a_missing_variable_names_file_key_and_fix(write_config: Any) -> None:
    path = write_config("""
        [sources.v]
        connector = "vault"
        dataset_id = "V"

        [sources.v.settings]
        api_key = "${VAULT_KEY_NOT_SET}"
    """)
    config = load_config(path)  # other sources stay usable; this one fails when used
    with pytest.raises(ConfigError) as info:
        connector_settings(config, config.sources["v"], VaultSettings)

    assert str(info.value) == (
        f"{path}: sources.v.settings.api_key: environment variable VAULT_KEY_NOT_SET is not "
        "set; export VAULT_KEY_NOT_SET=... or define it in the secrets_file"
    )


def test_a_missing_secrets_file_names_the_key(write_config: Any) -> None:
    path = write_config('secrets_file = "absent.toml"\n')

    assert error_of(path) == (
        f"{path}: secrets_file: {path.parent / 'absent.toml'} does not exist; create it or "
        "remove the key"
    )


# -- unknown keys, bad types, missing keys ------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('colour = "blue"\n', "colour"),
        ('path = "/etc"\n', "path"),
        ("[engine]\nconcurency = 4\n", "engine.concurency"),
        ("[scheduler]\nmax_paralel = 2\n", "scheduler.max_paralel"),
        ('[sources.s]\nconnector = "demo"\ndataset_id = "S"\nkeep = 3\n', "sources.s.keep"),
        ('[sources.s]\nname = "x"\nconnector = "demo"\ndataset_id = "S"\n', "sources.s.name"),
    ],
)
def test_an_unknown_key_names_file_key_and_fix(write_config: Any, toml: str, key: str) -> None:
    path = write_config(toml)

    message = error_of(path)

    assert message.startswith(f"{path}: {key}: unknown key; remove it or check its spelling")


def test_an_unknown_connector_setting_names_file_key_and_fix(write_config: Any, cli: Any) -> None:
    path = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"

        [sources.demo.settings]
        event = 10
    """)

    result = cli("--config", path, "run", "demo")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"mpconnect: error: {path}: sources.demo.settings.event: unknown key; remove it or "
        "check its spelling"
    )


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[sources.s]\nconnector = "demo"\ndataset_id = "S"\nkeep_versions = "two"\n',
            "sources.s.keep_versions: Input should be a valid integer",
        ),
        (
            '[sources.s]\nconnector = "demo"\ndataset_id = "S"\nkeep_versions = 9\n',
            "sources.s.keep_versions: Input should be less than or equal to 5 (got 9)",
        ),
        (
            '[sources.s]\nconnector = "demo"\ndataset_id = "my-data"\n',
            "sources.s.dataset_id: must be 1 to 255 letters and digits",
        ),
        (
            '[sources.s]\nconnector = "demo"\ndataset_id = 7\n',
            "sources.s.dataset_id: Input should be a valid string (got 7)",
        ),
        (
            "[engine]\nconcurrency = 0\n",
            "engine.concurrency: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            '[scheduler]\ncatch_up = "always"\n',
            "scheduler.catch_up: Input should be 'once' or 'skip'",
        ),
        ('[mixpanel]\ntimeout = "soon"\n', "mixpanel.timeout: Input should be a valid number"),
        ('sources = "demo"\n', "sources: must be a table of [sources.NAME] tables"),
        ("[sources]\ns = 1\n", "sources.s: must be a table ([sources.s])"),
    ],
)
def test_a_bad_value_names_file_and_key(write_config: Any, toml: str, expected: str) -> None:
    path = write_config(toml)

    assert error_of(path).startswith(f"{path}: {expected}")


@pytest.mark.parametrize(
    ("missing", "present"),
    [("connector", "dataset_id = 'S'"), ("dataset_id", "connector = 'demo'")],
)
def test_a_missing_required_key_names_it(write_config: Any, missing: str, present: str) -> None:
    path = write_config(f"[sources.s]\n{present}\n")

    assert error_of(path) == f"{path}: sources.s.{missing}: required key is missing; add it"


def test_a_bad_connector_setting_type_names_the_key(write_config: Any) -> None:
    path = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"

        [sources.demo.settings]
        events = -5
    """)
    config = load_config(path)
    entry = load_plugins().connector("demo")

    with pytest.raises(ConfigError) as info:
        connector_settings(config, config.sources["demo"], entry.cls.Settings)

    assert str(info.value) == (
        f"{path}: sources.demo.settings.events: Input should be greater than or equal to 0 (got -5)"
    )


# -- unknown connector and source ----------------------------------------------------------


def test_an_unknown_connector_names_file_key_and_fix(write_config: Any) -> None:
    path = write_config("""
        [sources.billing]
        connector = "stripee"
        dataset_id = "BILLING"
    """)
    config = load_config(path)
    plugins = load_plugins()

    with pytest.raises(ConfigError) as info:
        require_connector(config, config.sources["billing"], plugins.connectors)

    assert str(info.value).startswith(
        f"{path}: sources.billing.connector: no connector 'stripee' is installed; use one of: "
    )
    assert "demo" in str(info.value)
    assert str(info.value).endswith(
        "(mpconnect connectors list), or install the plugin that provides it"
    )
    require_connector(config, config.sources["demo"], plugins.connectors)


def test_running_an_unknown_connector_fails_in_one_line(write_config: Any, cli: Any) -> None:
    path = write_config("""
        [sources.billing]
        connector = "stripee"
        dataset_id = "BILLING"
    """)

    result = cli("--config", path, "run", "billing")

    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if "error" in line]
    assert line.startswith("mpconnect: error: ")
    assert "'stripee'" in line
    assert "Traceback" not in result.output


def test_an_unknown_source_names_the_file_and_the_fix(demo_config: Path, cli: Any) -> None:
    result = cli("--config", demo_config, "run", "billing")

    assert result.exit_code == 1
    assert result.stderr == (
        f"mpconnect: error: {demo_config}: no source 'billing'; configured sources: demo "
        "(add a [sources.billing] table)\n"
    )


# -- secrets ----------------------------------------------------------------------------------


def test_a_secret_written_in_clear_is_refused_without_echoing_it(
    write_config: Any, cli: Any
) -> None:
    mixpanel = write_config(f'[mixpanel]\nsecret = "{SECRET}"\n', name="mixpanel.toml")
    setting = write_config(f"""
        [sources.v]
        connector = "vault"
        dataset_id = "V"

        [sources.v.settings]
        api_key = "{SECRET}"
    """)

    mixpanel_error = error_of(mixpanel)
    result = cli("--config", setting, "run", "v", plugins=[VaultPlugin()])

    assert mixpanel_error == (
        f"{mixpanel}: mixpanel.secret: secrets must not be written in clear; write "
        'secret = "${MIXPANEL_SECRET}" and export MIXPANEL_SECRET'
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"mpconnect: error: {setting}: sources.v.settings.api_key: secrets must not be written "
        'in clear; write api_key = "${V_API_KEY}" and export V_API_KEY'
    )
    assert SECRET not in mixpanel_error + result.output


@pytest.fixture
def vault_config(write_config: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source whose API key, and a sink setting, come from the environment."""
    monkeypatch.setenv("VAULT_KEY", SECRET)
    monkeypatch.setenv("MIXPANEL_SECRET", SECRET)
    return write_config("""
        [mixpanel]
        sink = "embedded"
        secret = "${MIXPANEL_SECRET}"
        service_account_secret = "${VAULT_KEY}"

        [sources.v]
        connector = "vault"
        dataset_id = "VAULT"

        [sources.v.settings]
        api_key = "${VAULT_KEY}"
    """)


def test_secrets_are_absent_from_repr(vault_config: Path) -> None:
    config = load_config(vault_config)
    settings = connector_settings(config, config.sources["v"], VaultSettings)

    shown = " ".join(
        [
            repr(config),
            str(config),
            repr(config.mixpanel),
            repr(config.sources),
            repr(settings),
            str(settings),
            repr(VaultConnector(settings)),
        ]
    )

    assert SECRET not in shown
    assert "VAULT" in shown  # the configuration itself is shown
    assert settings.api_key.get_secret_value() == SECRET
    assert config.mixpanel.model_extra == {"service_account_secret": SECRET}


def test_secrets_are_absent_from_cli_output_logs_and_files(
    vault_config: Path, cli: Any, mpconnect_home: Path
) -> None:
    plugins = [VaultPlugin()]
    # the embedded sink refuses keys it does not read, such as service_account_secret
    vault_config.write_text(
        vault_config.read_text().replace('service_account_secret = "${VAULT_KEY}"', "")
    )
    config = ["--config", vault_config]

    outputs = [
        cli(*config, "-v", "run", "v", plugins=plugins),
        cli(*config, "--log-format", "json", "-v", "run", "v", plugins=plugins),
        cli(*config, "-v", "check", "v", plugins=plugins),
        cli(*config, "sources", "list", "--json", plugins=plugins),
        cli(*config, "runs", "--json", plugins=plugins),
        cli(*config, "versions", "list", "VAULT", plugins=plugins),
        cli(*config, "inspect", "VAULT", "--json", plugins=plugins),
    ]

    for result in outputs:
        assert result.exit_code == 0, result.output
        assert SECRET not in result.stdout + result.stderr
    assert "reading with VaultSettings(api_key=SecretStr('**********')" in outputs[0].stderr
    assert "v: ok: reachable with api_key=SecretStr('**********')" in outputs[2].stdout
    files = [p for p in mpconnect_home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("ledger.sqlite3") for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            'page_size = "${VAULT_KEY}"',
            "sources.v.settings.page_size: Input should be a valid integer",
        ),
        ('region = "${VAULT_KEY}"', "sources.v.settings.region: Input should be 'eu' or 'us'"),
    ],
)
def test_secrets_are_absent_from_errors(
    write_config: Any, monkeypatch: pytest.MonkeyPatch, cli: Any, setting: str, expected: str
) -> None:
    monkeypatch.setenv("VAULT_KEY", SECRET)
    path = write_config(f"""
        [sources.v]
        connector = "vault"
        dataset_id = "V"

        [sources.v.settings]
        api_key = "${{VAULT_KEY}}"
        {setting}
    """)

    result = cli("--config", path, "run", "v", plugins=[VaultPlugin()])

    assert result.exit_code == 1
    assert expected in result.stderr
    assert SECRET not in result.output


def test_home_holds_the_store_the_ledger_and_quarantine_files(
    write_config: Any, cli: Any, mpconnect_home: Path
) -> None:
    path = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        max_quarantined = 1

        [sources.demo.settings]
        events = 20
        bad_records = 1
    """)

    result = cli("--config", path, "run", "demo")

    assert result.exit_code == 0, result.output
    assert (mpconnect_home / "embedded.sqlite3").is_file()
    assert (mpconnect_home / "ledger.sqlite3").is_file()
    [quarantine] = (mpconnect_home / "quarantine" / "demo").glob("*.jsonl")
    assert str(quarantine) in result.stdout


def test_a_mixpanel_key_the_sink_does_not_read_is_named(write_config: Any, cli: Any) -> None:
    path = write_config("""
        [mixpanel]
        projet_token = "tok"
    """)
    result = cli("--config", path, "run", "demo")
    assert result.exit_code == 1
    assert (
        f"{path}: mixpanel.projet_token: unknown key for the 'embedded' sink; check its "
        "spelling (keys: api_url, ca_bundle, project_token, secret, sink, store, timeout)"
        in result.stderr
    )


@pytest.mark.parametrize("name", ["eu/billing", "../escape", ".hidden"])
def test_a_source_name_that_is_not_a_plain_name_is_refused(
    write_config: Any, cli: Any, name: str
) -> None:
    path = write_config(f"""
        [sources."{name}"]
        connector = "demo"
        dataset_id = "A"
    """)
    result = cli("--config", path, "run", name)
    assert result.exit_code == 1
    assert f"{path}: sources.{name}: a source's name names its files and lock" in result.stderr


def test_a_table_given_as_a_value_is_named(write_config: Any, cli: Any) -> None:
    path = write_config("mixpanel = 5\n")
    result = cli("--config", path, "run", "demo")
    assert result.exit_code == 1
    assert f"{path}: mixpanel: must be a table" in result.stderr


def test_two_sources_loading_one_dataset_are_refused_naming_both(
    write_config: Any, cli: Any
) -> None:
    path = write_config("""
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.fast]
        connector = "demo"
        dataset_id = "DEMO"
    """)
    result = cli("--config", path, "run", "fast")
    assert result.exit_code == 1
    assert (
        f"{path}: sources.fast.dataset_id: 'DEMO' is also the dataset of source 'demo'"
        in result.stderr
    )


def test_a_variable_missing_for_one_source_does_not_stop_the_others(
    write_config: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    path = write_config("""
        [sources.vault]
        connector = "demo"
        dataset_id = "VAULT"
        [sources.vault.settings]
        seed = "${NOT_SET_KEY}"

        [sources.small]
        connector = "demo"
        dataset_id = "SMALL"
        [sources.small.settings]
        events = 20
    """)
    listed = cli("--config", path, "sources", "list")  # lists both, names vault's problem
    assert listed.exit_code == 1 and "small" in listed.stdout
    assert "NOT_SET_KEY is not set" in listed.stderr
    assert cli("--config", path, "run", "small").exit_code == 0
    failed = cli("--config", path, "run", "vault")
    assert failed.exit_code == 1
    assert (
        f"{path}: sources.vault.settings.seed: environment variable NOT_SET_KEY is not set"
        in failed.stderr
    )
