"""The ``[distributed]`` table: URLs checked with the key and the fix, passwords never
shown; commands that need it say how to add it; single-machine mode untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mpconnect.config import load_config
from mpconnect.errors import ConfigError
from mpconnect.redact import redact

TABLE = """
[distributed]
broker = "${MPCONNECT_BROKER_URL}"
database = "${MPCONNECT_DATABASE_URL}"
"""


def test_urls_are_read_and_their_passwords_never_shown(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPCONNECT_BROKER_URL", "rediss://:brokerpass9@redis.internal:6380/0")
    monkeypatch.setenv("MPCONNECT_DATABASE_URL", "postgresql://loader:dbpass77@pg:5432/mpc")
    config = load_config(write_config(TABLE))
    assert config.distributed is not None
    assert config.distributed.database.get_secret_value().endswith("@pg:5432/mpc")
    assert config.distributed.lease == 60
    shown = repr(config) + str(config.model_dump())
    assert "brokerpass9" not in shown and "dbpass77" not in shown
    said = redact("could not reach pg (password dbpass77) nor brokerpass9")
    assert "dbpass77" not in said and "brokerpass9" not in said


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "MPCONNECT_BROKER_URL",
            "amqp://guest:guestpw@rabbit//",
            "distributed.broker: must be a Redis URL",
        ),
        (
            "MPCONNECT_DATABASE_URL",
            "mysql://u:secretpw@db/x",
            "distributed.database: must be a PostgreSQL URL",
        ),
    ],
)
def test_a_url_of_the_wrong_kind_is_refused_naming_the_key_and_the_fix(
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv("MPCONNECT_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("MPCONNECT_DATABASE_URL", "postgresql://127.0.0.1/mpc")
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(write_config(TABLE))
    assert "export" in str(caught.value)
    assert "pw@" not in str(caught.value)


def test_an_unset_variable_is_named(write_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match=r"MPCONNECT_BROKER_URL \(distributed.broker\)"):
        load_config(write_config(TABLE))


def test_dispatch_without_the_table_says_how_to_add_it(cli, demo_config: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("--config", str(demo_config), "dispatch", "demo")
    assert result.exit_code == 1
    assert "distributed: this command needs a [distributed] table" in result.output
    assert "Traceback" not in result.output


def test_single_machine_runs_are_unchanged_without_the_table(cli, demo_config: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("--config", str(demo_config), "run", "demo", "--quiet").exit_code == 0
    listed = cli("--config", str(demo_config), "runs", "--json")
    assert '"status": "succeeded"' in listed.output
