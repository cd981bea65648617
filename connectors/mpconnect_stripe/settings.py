"""The ``[sources.NAME.settings]`` table of a Stripe source."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from mpconnect import ConnectorSettings

StreamName = Literal["customers", "charges", "refunds", "invoices", "subscriptions", "disputes"]
#: Every stream, in the order they are started.
ALL_STREAMS: tuple[StreamName, ...] = (
    "customers",
    "charges",
    "refunds",
    "invoices",
    "subscriptions",
    "disputes",
)
KEY_PREFIXES = ("sk_", "rk_")
#: The Stripe API version requested unless ``api_version`` says otherwise: the last one
#: whose charges name their ``invoice`` (2025-03-31 moved that link to invoice payments).
DEFAULT_API_VERSION = "2024-06-20"
#: Stripe's documented request limits per account, live and test mode, per second.
STRIPE_LIVE_LIMIT = 100.0
STRIPE_TEST_LIMIT = 25.0
#: The share of Stripe's limit used by default.
STRIPE_SHARE = 0.9


class StripeSettings(ConnectorSettings):
    """Settings of the ``stripe`` connector.

    :param api_key: a secret (``sk_...``) or restricted (``rk_...``) key; write it in the
        configuration as ``"${STRIPE_API_KEY}"``.
    :param api_base: another Stripe-compatible server (tests, mocks, proxies).
    :param api_version: the ``Stripe-Version`` to request; pinned so that an upgrade of
        the ``stripe`` library does not change the shape of what is read.
    :param objects: the streams to read; people come with ``customers``.
    :param identity: ``customer`` (the Stripe customer id is the distinct_id) or a key
        of the customer's metadata, such as ``user_id``, falling back to the customer id.
    :param unattributed: what becomes of charges, refunds and disputes with neither a
        customer nor an email: ``import`` (the default) sends their events tied to no user
        (``distinct_id`` ``""``: counted in revenue, left out of per-user reports);
        ``skip`` leaves them out, counted in the log.
    :param start_date: read only objects created on or after it (a date is midnight UTC).
    :param max_requests_per_second: every stream, partition and run reading this account
        at once stay under this rate together (default: 90 % of Stripe's limit, 100
        requests/s in live mode and 25 in test mode: 90 or 22.5).
    :param partitions_per_stream: a partitioned full read (``sync = "full"``) splits each
        stream that no profile needs (refunds, invoices, disputes; every stream without
        ``customers``) into this many ``created`` ranges.
    :param max_retries: retries of one request on 429, 5xx and dropped connections.
    """

    # A rejected key must not be echoed in the validation error.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    api_key: SecretStr
    api_base: str | None = None
    api_version: str = Field(default=DEFAULT_API_VERSION, pattern=r"^\d{4}-\d{2}-\d{2}(\.\w+)?$")
    objects: list[StreamName] = Field(default_factory=lambda: list(ALL_STREAMS), min_length=1)
    identity: str = Field(default="customer", min_length=1, max_length=40)
    unattributed: Literal["import", "skip"] = "import"
    start_date: datetime | date | None = None
    max_requests_per_second: float | None = Field(default=None, gt=0, le=10_000)
    max_retries: int = Field(default=8, ge=0, le=100)
    partitions_per_stream: int = Field(default=4, ge=1, le=1000)

    @property
    def request_rate(self) -> float:
        """The requests per second every reader of this account shares: the configured
        ``max_requests_per_second``, else 90 % of Stripe's limit for the key's mode."""
        if self.max_requests_per_second is not None:
            return self.max_requests_per_second
        live = "_live_" in self.api_key.get_secret_value()[:8]
        return STRIPE_SHARE * (STRIPE_LIVE_LIMIT if live else STRIPE_TEST_LIMIT)

    @field_validator("api_key")
    @classmethod
    def _key_is_secret_or_restricted(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        if key.startswith("pk_"):
            raise ValueError(
                "a publishable key (pk_...) cannot read data; give a secret key (sk_...) "
                "or a restricted key (rk_...)"
            )
        if not key.startswith(KEY_PREFIXES):
            raise ValueError("must be a Stripe secret key (sk_...) or restricted key (rk_...)")
        return SecretStr(key)

    @field_validator("api_base")
    @classmethod
    def _base_is_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL, such as http://127.0.0.1:12111")
        return value.rstrip("/")

    @field_validator("objects")
    @classmethod
    def _objects_once_each(cls, value: list[StreamName]) -> list[StreamName]:
        return [name for name in ALL_STREAMS if name in value]

    @field_validator("identity")
    @classmethod
    def _identity_is_a_key(cls, value: str) -> str:
        if value != value.strip() or "[" in value or "]" in value:
            raise ValueError(
                "must be 'customer' or a customer metadata key such as 'user_id' "
                "(no surrounding spaces or brackets)"
            )
        return value

    @property
    def start_timestamp(self) -> int | None:
        """``start_date`` as epoch seconds (a naive datetime is taken as UTC)."""
        value = self.start_date
        if value is None:
            return None
        if not isinstance(value, datetime):
            value = datetime.combine(value, time.min)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())

    @property
    def mode(self) -> str:
        """``live`` or ``test``, from the key's prefix."""
        return "live" if "_live_" in self.api_key.get_secret_value() else "test"
