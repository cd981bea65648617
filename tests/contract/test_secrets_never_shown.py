"""A connector whose errors carry its API key (and other credentials): the key appears in
no output of any command, no log line (text or JSON), and no file under $MPCONNECT_HOME.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from mpconnect.connector import Connector, ConnectorSettings, RunContext
from mpconnect.errors import RunFailed
from mpconnect.records import Event, Profile
from mpconnect.testing import connector_plugin, run_source

#: Credentials that are not configured, so only their shapes can give them away.
STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dcLeaky"
BASIC = "Basic c3ZjLXVzZXI6aHVudGVyMi1wYXNzd29yZA=="  # svc-user:hunter2-password
URL_PASSWORD = "pa55-w0rd-in-url"
QUERY_TOKEN = "tok-in-query-7d1e9a"
BEARER = "eyJhbGciOiJIUzI1NiJ9.leaky.sig"


class LeakySettings(ConnectorSettings):
    api_key: SecretStr
    base_url: str = "https://api.leaky.example/v1"


class LeakyConnector(Connector):
    """Fails the way careless client libraries do: credentials in the message."""

    name = "leaky"
    description = "raises with its credentials in the message"
    Settings: ClassVar[type[LeakySettings]] = LeakySettings  # type: ignore[misc]

    def _failure(self) -> RuntimeError:
        key = self.settings.api_key.get_secret_value()  # type: ignore[attr-defined]
        return RuntimeError(
            f"401 from GET {self.settings.base_url}/items: invalid key {key} "  # type: ignore[attr-defined]
            f"(also tried {STRIPE_KEY}); request headers {{'Authorization': '{BASIC}', "
            f"'X-Session': 'Bearer {BEARER}'}}; fallback "
            f"postgres://svc:{URL_PASSWORD}@db.leaky.example/app?token={QUERY_TOKEN}"
        )

    def check(self, ctx: RunContext) -> str:
        raise self._failure()

    def events(self, ctx: RunContext) -> Iterator[Event]:
        key = self.settings.api_key.get_secret_value()  # type: ignore[attr-defined]
        ctx.log.warning("retrying with api_key=%s and %s", key, STRIPE_KEY)
        yield Event(
            "Signed Up", "user-1", 1_700_000_000.0, object_id="evt-1", properties={"plan": "pro"}
        )
        raise self._failure()

    def people(self, ctx: RunContext) -> Iterator[Profile]:
        return iter(())


@pytest.fixture
def api_key() -> str:
    """A fresh key with no recognisable shape: only the configuration says it is secret."""
    return f"LEAKY{secrets.token_hex(12)}"


@pytest.fixture
def leaky(
    cli: Callable[..., Any], write_config: Callable[..., Path], api_key: str
) -> Callable[..., Any]:
    """Run ``mpconnect`` with the leaky source configured and its key in the environment."""
    config = write_config("""
        [sources.leaky]
        connector = "leaky"
        dataset_id = "LEAKY"

        [sources.leaky.settings]
        api_key = "${LEAKY_API_KEY}"
    """)
    plugin = connector_plugin(LeakyConnector)

    def invoke(*args: str) -> Any:
        return cli("--config", config, *args, plugins=[plugin], env={"LEAKY_API_KEY": api_key})

    return invoke


def _leaked(text: str | bytes, api_key: str) -> list[str]:
    """Which of the credentials appear in ``text``."""
    raw = text if isinstance(text, bytes) else text.encode()
    found = []
    for value in (api_key, STRIPE_KEY, BASIC.split()[1], URL_PASSWORD, QUERY_TOKEN, BEARER):
        if value.encode() in raw:
            found.append(value)
    return found


def test_a_failing_run_shows_no_credential_anywhere(
    leaky: Callable[..., Any], api_key: str, mpconnect_home: Path
) -> None:
    runs = [
        leaky("run", "leaky"),
        leaky("-v", "run", "leaky"),
        leaky("--log-format", "json", "-v", "run", "leaky"),
    ]
    debug = leaky("--debug", "check", "leaky")

    for result in (*runs, debug):
        assert result.exit_code == 1
        assert "invalid key *** (also tried ***)" in result.stderr
        assert "headers {'Authorization': '***', 'X-Session': '***'}" in result.stderr
        assert "postgres://svc:***@db.leaky.example/app?token=***" in result.stderr
        assert _leaked(result.stdout + result.stderr, api_key) == []
    assert "api_key=***" in runs[1].stderr  # the connector's own log line, redacted
    json_lines = [json.loads(line) for line in runs[2].stderr.splitlines() if line.startswith("{")]
    assert any("api_key=***" in line["message"] for line in json_lines)
    assert "Traceback" in debug.stderr and "RuntimeError" in debug.stderr


def test_listings_and_check_show_no_credential(
    leaky: Callable[..., Any], api_key: str, mpconnect_home: Path
) -> None:
    leaky("run", "leaky")

    listed = [leaky("runs", "--json"), leaky("runs"), leaky("sources", "list", "--json")]
    check = leaky("check", "leaky")

    assert [r.exit_code for r in listed] == [0, 0, 0]
    runs_json = json.loads(listed[0].stdout)
    assert runs_json[0]["status"] == "failed"
    assert "invalid key ***" in runs_json[0]["error"]
    sources = {row["name"]: row for row in json.loads(listed[2].stdout)}
    assert "invalid key ***" in sources["leaky"]["last_error"]
    assert check.exit_code == 1
    assert "leaky: check failed: RuntimeError: 401 from GET" in check.stderr
    for result in (*listed, check):
        assert _leaked(result.stdout + result.stderr, api_key) == []


def test_no_file_under_the_home_holds_a_credential(
    leaky: Callable[..., Any], api_key: str, mpconnect_home: Path
) -> None:
    leaky("run", "leaky")
    leaky("check", "leaky")
    leaky("run", "leaky")

    files = [path for path in mpconnect_home.rglob("*") if path.is_file()]
    assert any(path.name.startswith("ledger.sqlite3") for path in files)
    for path in files:
        assert _leaked(path.read_bytes(), api_key) == [], path


def test_the_python_api_raises_without_the_credential(api_key: str, tmp_path: Path) -> None:
    with pytest.raises(RunFailed) as failed:
        run_source(LeakyConnector, {"api_key": api_key}, home=tmp_path / "home")

    assert "invalid key *** (also tried ***)" in str(failed.value)
    assert _leaked(str(failed.value), api_key) == []
