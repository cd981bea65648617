"""Stripe's "let us know at support@stripe.com" advice is not shown for a server that is not
Stripe (``api_base`` on a loopback or other host); for Stripe itself it stays."""

from __future__ import annotations

import logging
import socket

import pytest
import stripe

from mpconnect import SourceError
from mpconnect.testing import run_connector
from mpconnect_stripe import StripeConnector
from mpconnect_stripe.boilerplate import is_stripe_host, without_stripe_support
from mpconnect_stripe.client import _describe_error
from mpconnect_stripe.localserver.api import TEST_KEY

pytestmark = pytest.mark.timeout(60)

STRIPE_NETWORK_MESSAGE = (
    "Unexpected error communicating with Stripe.  If this problem persists,\n"
    "let us know at support@stripe.com.\n\n(Network error: ConnectionError: refused)"
)


def closed_loopback_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_local_server_that_is_down_is_reported_without_stripe_support(caplog):
    base = f"http://127.0.0.1:{closed_loopback_port()}"
    settings = {
        "api_key": TEST_KEY,
        "api_base": base,
        "objects": ["charges"],
        "max_retries": 1,
        "max_requests_per_second": 500,
    }
    with (
        caplog.at_level(logging.WARNING, logger="mpconnect.source"),
        pytest.raises(SourceError) as failed,
    ):
        run_connector(StripeConnector, settings)

    message = str(failed.value)
    assert message.startswith(
        f"stripe: GET /v1/charges: cannot connect to {base} "
        "(connection refused); is the server running?"
    )
    assert "support@stripe.com" not in message
    assert caplog.messages and "support@stripe.com" not in " ".join(caplog.messages)


def test_stripe_itself_keeps_its_advice():
    error = stripe.APIConnectionError(STRIPE_NETWORK_MESSAGE)
    assert "let us know at support@stripe.com." in _describe_error(error)
    assert _describe_error(error, stripe_host=False) == (
        "Unexpected error communicating with Stripe. (Network error: ConnectionError: refused)"
    )


@pytest.mark.parametrize(
    ("api_base", "stripe_host"),
    [
        (None, True),
        ("https://api.stripe.com", True),
        ("https://files.stripe.com:443", True),
        ("http://127.0.0.1:12111", False),
        ("http://localhost:12111", False),
        ("https://stripe.com.proxy.example", False),
        ("https://stripe-mock.internal", False),
    ],
)
def test_which_servers_are_stripe(api_base, stripe_host):
    assert is_stripe_host(api_base) is stripe_host


def test_every_support_sentence_goes_and_the_rest_stays():
    text = (
        "Invalid API Key provided. See https://stripe.com/api for details, or email "
        "support@stripe.com if you have any questions. Request req_1."
    )
    assert without_stripe_support(text) == "Invalid API Key provided. Request req_1."
    assert without_stripe_support("No such charge: 'ch_1'") == "No such charge: 'ch_1'"
