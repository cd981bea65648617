"""The Stripe source's settings: defaults, clear errors, and secrets kept out of sight."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from mpconnect import ConfigError
from mpconnect.config import connector_settings, parse_config
from mpconnect_stripe import StripeConnector, StripeSettings
from mpconnect_stripe.localserver.api import TEST_KEY

pytestmark = pytest.mark.timeout(30)


def test_defaults():
    settings = StripeSettings(api_key=TEST_KEY)
    assert settings.objects == [
        "customers",
        "charges",
        "refunds",
        "invoices",
        "subscriptions",
        "disputes",
    ]
    assert settings.identity == "customer"
    assert settings.api_base is None
    assert settings.start_date is None and settings.start_timestamp is None
    assert settings.max_requests_per_second is None
    assert settings.request_rate == 22.5  # 90 % of Stripe's 25 requests/s in test mode
    assert settings.max_retries == 8
    assert settings.api_version == "2024-06-20"
    assert settings.mode == "test"


def test_key_never_shown_in_repr_or_errors():
    settings = StripeSettings(api_key=TEST_KEY, max_retries=3)
    connector = StripeConnector(settings)
    assert TEST_KEY not in repr(settings) and TEST_KEY not in str(settings)
    assert TEST_KEY not in repr(connector)
    with pytest.raises(ValidationError) as info:
        StripeSettings(api_key=TEST_KEY, max_retries=-1)
    assert TEST_KEY not in str(info.value)


def test_publishable_key_is_refused_with_the_fix():
    key = "pk_test_51MpcLocalPublishable000"
    with pytest.raises(ValidationError) as info:
        StripeSettings(api_key=key)
    assert "publishable key (pk_...) cannot read data" in str(info.value)
    assert key not in str(info.value)


def test_other_keys_are_refused():
    with pytest.raises(ValidationError, match=r"secret key \(sk_\.\.\.\) or restricted key"):
        StripeSettings(api_key="whsec_not_an_api_key")


def test_unknown_stream_names_the_valid_ones():
    with pytest.raises(ValidationError) as info:
        StripeSettings(api_key=TEST_KEY, objects=["customers", "payouts"])
    message = str(info.value)
    assert "objects.1" in message
    assert "'customers', 'charges', 'refunds', 'invoices', 'subscriptions' or 'disputes'" in message


def test_objects_are_deduplicated_in_reading_order():
    settings = StripeSettings(api_key=TEST_KEY, objects=["disputes", "customers", "disputes"])
    assert settings.objects == ["customers", "disputes"]


def test_empty_objects_is_an_error():
    with pytest.raises(ValidationError, match="objects"):
        StripeSettings(api_key=TEST_KEY, objects=[])


@pytest.mark.parametrize("value", [" user_id", "metadata[user_id]", ""])
def test_identity_must_be_a_plain_key(value):
    with pytest.raises(ValidationError, match="identity"):
        StripeSettings(api_key=TEST_KEY, identity=value)


def test_api_base_needs_a_scheme_and_loses_its_slash():
    assert StripeSettings(api_key=TEST_KEY, api_base="http://127.0.0.1:1/").api_base == (
        "http://127.0.0.1:1"
    )
    with pytest.raises(ValidationError, match="api_base"):
        StripeSettings(api_key=TEST_KEY, api_base="127.0.0.1:12111")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01", 1_709_251_200),
        (date(2024, 3, 1), 1_709_251_200),
        (datetime(2024, 3, 1, 1, 0, tzinfo=UTC), 1_709_254_800),
        ("2024-03-01T00:00:00+01:00", 1_709_247_600),
    ],
)
def test_start_date_forms(value, expected):
    assert StripeSettings(api_key=TEST_KEY, start_date=value).start_timestamp == expected


def test_api_version_must_look_like_one():
    assert StripeSettings(api_key=TEST_KEY, api_version="2025-03-31.basil").api_version
    with pytest.raises(ValidationError, match="api_version"):
        StripeSettings(api_key=TEST_KEY, api_version="latest")


def test_rate_must_be_positive():
    with pytest.raises(ValidationError, match="max_requests_per_second"):
        StripeSettings(api_key=TEST_KEY, max_requests_per_second=0)


def test_live_and_restricted_keys_tell_their_mode():
    assert StripeSettings(api_key="sk_live_abc").mode == "live"
    assert StripeSettings(api_key="rk_live_abc").mode == "live"
    assert StripeSettings(api_key="rk_test_abc").mode == "test"


def test_configuration_file_errors_name_the_key(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", TEST_KEY)
    path = Path("mpconnect.toml")
    raw = {
        "sources": {
            "billing": {
                "connector": "stripe",
                "dataset_id": "STRIPE",
                "settings": {"api_key": "${STRIPE_API_KEY}", "object": ["charges"]},
            }
        }
    }
    config = parse_config(raw, path)
    with pytest.raises(ConfigError) as info:
        connector_settings(config, config.source("billing"), StripeSettings)
    assert "sources.billing.settings.object: unknown key" in str(info.value)
    assert TEST_KEY not in str(info.value)
