"""A server that cannot be reached fails within a few quick retries, with one message
that names the key to fix and asks whether the server is running; ``check`` retries at
most once; the connector's retries count in ``mpconnect runs`` like the sink's.

The servers: a closed loopback port (connection refused) and a host under the reserved
``.invalid`` top-level domain (never resolves, never reaches the internet).
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

INVALID_HOST = "mpconnect-test.invalid"
#: How every retry is printed, by every connector and sink.
RETRY_LINE = re.compile(r" WARNING .+; retry \d+ of \d+ in \d+\.\d s$")


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def retry_lines(result: Any) -> list[str]:
    """The retry lines the command printed."""
    return [line for line in result.stderr.splitlines() if "; retry " in line]


def stripe_config(api_base: str) -> str:
    return f"""
        [mixpanel]
        sink = "embedded"
        [sources.billing]
        connector = "stripe"
        dataset_id = "BILLING"
        [sources.billing.settings]
        api_key = "${{STRIPE_KEY}}"
        api_base = "{api_base}"
        """


def salesforce_config(instance_url: str) -> str:
    return f"""
        [mixpanel]
        sink = "embedded"
        [sources.crm]
        connector = "salesforce"
        dataset_id = "CRM"
        [sources.crm.settings]
        instance_url = "{instance_url}"
        session_id = "${{SF_SESSION}}"
        """


def sink_config(sink: str, api_url: str) -> str:
    return f"""
        [mixpanel]
        sink = "{sink}"
        api_url = "{api_url}"
        allow_http_loopback = true
        project_token = "tok"
        secret = "${{MIXPANEL_SECRET}}"
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.demo.settings]
        events = 10
        """


ENV = {"STRIPE_KEY": "sk_test_abc", "SF_SESSION": "00Dx!session", "MIXPANEL_SECRET": "s3"}


@pytest.fixture
def run_cli(
    cli: Any,
    write_config: Callable[..., Path],
    mpconnect_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Callable[..., Any]:
    """``run_cli(config_text, *args)``: the command's result, retry lines in ``caplog``."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)

    def run(text: str, *args: str) -> Any:
        config = write_config(text)
        return cli("--config", config, *args)

    return run


@pytest.mark.parametrize("command", ["run", "check"])
def test_stripe_at_a_closed_port_fails_after_few_retries_naming_api_base(
    run_cli: Any, closed_port: int, caplog: pytest.LogCaptureFixture, command: str
) -> None:
    result = run_cli(stripe_config(f"http://127.0.0.1:{closed_port}"), command, "billing")

    assert result.exit_code == 1
    assert "connection refused" in result.stderr
    assert "is the server running?" in result.stderr
    assert "sources.billing.settings.api_base" in result.stderr
    assert "Traceback" not in result.output
    assert all(RETRY_LINE.search(line) for line in retry_lines(result))
    # six streams read at once share one small budget; check retries at most once
    assert 1 <= len(retry_lines(result)) <= (2 if command == "run" else 1)


@pytest.mark.parametrize("command", ["run", "check"])
def test_salesforce_at_a_closed_port_fails_after_few_retries_naming_instance_url(
    run_cli: Any, closed_port: int, caplog: pytest.LogCaptureFixture, command: str
) -> None:
    result = run_cli(salesforce_config(f"https://127.0.0.1:{closed_port}"), command, "crm")

    assert result.exit_code == 1
    assert "connection refused" in result.stderr
    assert "sources.crm.settings.instance_url" in result.stderr
    assert all(RETRY_LINE.search(line) for line in retry_lines(result))
    assert 1 <= len(retry_lines(result)) <= (2 if command == "run" else 1)


def test_stripe_host_that_does_not_resolve_names_the_host_and_the_key(
    run_cli: Any, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_cli(stripe_config(f"http://{INVALID_HOST}"), "check", "billing")

    assert result.exit_code == 1
    assert f"the name {INVALID_HOST} does not resolve" in result.stderr
    assert "sources.billing.settings.api_base" in result.stderr
    assert len(retry_lines(result)) <= 1


@pytest.mark.parametrize("sink", ["datasets", "ingestion"])
def test_a_sink_at_a_closed_port_fails_after_few_retries_naming_api_url(
    run_cli: Any, closed_port: int, caplog: pytest.LogCaptureFixture, sink: str
) -> None:
    result = run_cli(sink_config(sink, f"http://127.0.0.1:{closed_port}"), "run", "demo")

    assert result.exit_code == 1
    assert "connection refused" in result.stderr
    assert "is the server running? Check that mixpanel.api_url is its address" in result.stderr
    lines = retry_lines(result)
    assert 1 <= len(lines) <= 2
    assert all(RETRY_LINE.search(line) and " of 2 in " in line for line in lines)


def test_a_sink_host_that_does_not_resolve_names_it(
    run_cli: Any, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_cli(sink_config("datasets", f"https://{INVALID_HOST}:8443"), "run", "demo")

    assert result.exit_code == 1
    assert f"the name {INVALID_HOST} does not resolve" in result.stderr
    assert "mixpanel.api_url" in result.stderr
    assert len(retry_lines(result)) <= 2


def test_the_connectors_retries_are_counted_in_runs(
    run_cli: Any, closed_port: int, cli: Any, write_config: Callable[..., Path]
) -> None:
    text = stripe_config(f"http://127.0.0.1:{closed_port}")
    run_cli(text, "run", "billing")

    listed = cli("--config", write_config(text), "runs", "--json")

    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["status"] == "failed"
    assert row["retries"] == 2


def test_a_5xx_keeps_the_long_budget_while_a_refusal_gets_two_quick_retries() -> None:
    from mpconnect.errors import RetryableApiError
    from mpconnect.transport.retry import call_with_retries, mark_unreachable

    def failing(make: Callable[[], Exception]) -> list[float]:
        waits: list[float] = []

        def call() -> None:
            raise make()

        with pytest.raises(RetryableApiError):
            call_with_retries(call, max_retries=8, sleep=waits.append)
        return waits

    assert len(failing(lambda: RetryableApiError(503, "busy"))) == 8
    refused = failing(
        lambda: mark_unreachable(RetryableApiError(0, "refused"), "connection refused")
    )
    assert len(refused) == 2 and max(refused) <= 1.0


def test_the_plain_http_refusal_names_the_file_and_the_key(
    run_cli: Any, write_config: Callable[..., Path]
) -> None:
    text = sink_config("datasets", "http://192.0.2.1:8080").replace(
        "allow_http_loopback = true\n", ""
    )
    result = run_cli(text, "run", "demo")

    assert result.exit_code == 1
    assert f"{write_config(text)}: mixpanel.api_url: refusing http://192.0.2.1:8080" in (
        result.stderr
    )
