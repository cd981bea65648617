"""The ``[sources.NAME.settings]`` table of a Salesforce source.

Authentication is chosen by which keys are given, first match wins:

==============================  ===================================================
keys                            flow
==============================  ===================================================
``instance_url`` + ``session_id``  an existing session (cannot be renewed when it expires)
``username`` + ``consumer_key``    OAuth 2.0 JWT bearer flow
+ ``private_key_file`` (or
``private_key``)
``username`` + ``password``        SOAP login (``security_token`` appended when given)
``consumer_key`` +                 OAuth 2.0 client credentials (needs a My Domain
``consumer_secret``                ``domain`` or ``login_url``)
==============================  ===================================================
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from mpconnect import ConnectorSettings

__all__ = [
    "STANDARD_OBJECTS",
    "AuthMode",
    "EventMapping",
    "PeopleMapping",
    "SalesforceSettings",
]

StandardObject = Literal["contacts", "leads", "opportunities", "cases", "tasks"]
STANDARD_OBJECTS: tuple[StandardObject, ...] = (
    "contacts",
    "leads",
    "opportunities",
    "cases",
    "tasks",
)
AuthMode = Literal["session", "jwt", "password", "client_credentials"]

_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")


def _api_name(value: str) -> str:
    if not _API_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a Salesforce API name (letters, digits and '_', "
            "such as 'Demo_Request__c')"
        )
    return value


class _Mapping(BaseModel):
    """What event and people mappings share: the object, its fields and a filter."""

    model_config = ConfigDict(extra="forbid")

    object: str
    properties: list[str] | dict[str, str] = Field(default_factory=list)
    fields: Literal["all"] | None = None
    where: str | None = None

    @field_validator("object")
    @classmethod
    def _object_is_api_name(cls, value: str) -> str:
        return _api_name(value)

    @field_validator("properties")
    @classmethod
    def _properties_are_api_names(
        cls, value: list[str] | dict[str, str]
    ) -> list[str] | dict[str, str]:
        for name in value:
            _api_name(name)
        return value

    @model_validator(mode="after")
    def _properties_or_all(self) -> _Mapping:
        if self.fields == "all" and self.properties:
            raise ValueError('give either properties = [...] or fields = "all", not both')
        return self

    def property_names(self) -> dict[str, str]:
        """Map each listed field to the property it becomes (its own name unless renamed)."""
        if isinstance(self.properties, dict):
            return dict(self.properties)
        return {name: name for name in self.properties}


class EventMapping(_Mapping):
    """One ``[[sources.NAME.settings.events]]`` table: an object whose rows become events.

    :param object: the object's API name, such as ``Demo_Request__c``.
    :param event: the event name, such as ``"Demo Requested"``.
    :param time_field: the date or datetime field that is the event's time.
    :param distinct_id_field: the field naming whose event it is; a lookup to Contact or
        Lead follows the source's ``identity`` setting.
    :param properties: fields sent as properties (a list, or a table renaming them).
    :param fields: ``"all"`` to send every field ``describe`` lists.
    :param where: a SOQL condition rows must meet, such as ``"Status__c != 'Spam'"``.
    """

    event: str = Field(min_length=1)
    time_field: str = "CreatedDate"
    distinct_id_field: str

    @field_validator("time_field", "distinct_id_field")
    @classmethod
    def _field_is_api_name(cls, value: str) -> str:
        return _api_name(value)


class PeopleMapping(_Mapping):
    """One ``[[sources.NAME.settings.people]]`` table: an object whose rows become profiles.

    :param distinct_id_field: the field naming whose profile it is (default the row's Id);
        a lookup to Contact or Lead follows the source's ``identity`` setting.
    """

    distinct_id_field: str = "Id"

    @field_validator("distinct_id_field")
    @classmethod
    def _field_is_api_name(cls, value: str) -> str:
        return _api_name(value)


class SalesforceSettings(ConnectorSettings):
    """Settings of a ``salesforce`` source (see the module docstring for authentication)."""

    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    domain: str = "login"
    login_url: str | None = None
    instance_url: str | None = None
    session_id: SecretStr | None = None
    consumer_key: str | None = None
    consumer_secret: SecretStr | None = None
    private_key_file: Path | None = None
    private_key: SecretStr | None = None
    api_version: str = "59.0"

    identity: Literal["id", "email"] = "id"
    objects: list[StandardObject] = Field(default_factory=lambda: list(STANDARD_OBJECTS))
    events: list[EventMapping] = Field(default_factory=list)
    people: list[PeopleMapping] = Field(default_factory=list)

    use_bulk: Literal["auto"] | bool = "auto"
    bulk_threshold: int = Field(default=50_000, ge=0)
    bulk_page_size: int = Field(default=50_000, ge=1)
    rest_batch_size: int = Field(default=2000, ge=1, le=2000)
    bulk_poll_interval: float = Field(default=2.0, gt=0)
    bulk_timeout: float = Field(default=7200.0, gt=0)
    max_api_share: float = Field(default=0.5, gt=0, le=1)
    #: How far before its cursor an incremental read starts, for transactions that
    #: committed after the last run with an earlier ``SystemModstamp``.
    overlap_minutes: float = Field(default=5.0, ge=0, le=1440)
    #: A partitioned full read (``sync = "full"``) cuts Cases, Tasks and each ``events``
    #: mapping into this many ``Id`` ranges (see :mod:`mpconnect_salesforce.partitioning`).
    partitions_per_object: int = Field(default=4, ge=1, le=1000)

    ca_bundle: Path | None = None
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    retry_wait: float = Field(default=1.0, ge=0)

    @field_validator("domain")
    @classmethod
    def _domain_is_host_part(cls, value: str) -> str:
        if not _DOMAIN.match(value) or value.endswith("."):
            raise ValueError(
                "must be 'login', 'test' or your My Domain without '.salesforce.com' "
                "(such as 'acme.my'); give a full URL as login_url instead"
            )
        return value

    @field_validator("login_url", "instance_url")
    @classmethod
    def _https_base_url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError(
                "must be an https:// URL with no path, such as https://acme.my.salesforce.com"
            )
        return value.rstrip("/") if value else value

    @field_validator("api_version")
    @classmethod
    def _version_shape(cls, value: str) -> str:
        if not re.match(r"^[0-9]{2,3}\.0$", value):
            raise ValueError("must look like '59.0' (no leading 'v')")
        return value

    @field_validator("objects")
    @classmethod
    def _no_repeats(cls, value: list[StandardObject]) -> list[StandardObject]:
        if len(set(value)) != len(value):
            raise ValueError("lists an object twice")
        return value

    @field_validator("ca_bundle", "private_key_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"file {value} does not exist")
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _has_credentials(self) -> SalesforceSettings:
        self.auth_mode()
        return self

    def auth_mode(self) -> AuthMode:
        """Which authentication flow the given keys select.

        :raises ValueError: when no flow has all its keys.
        """
        if self.session_id is not None or self.instance_url is not None:
            if self.session_id is None or self.instance_url is None:
                raise ValueError("instance_url and session_id go together; give both")
            return "session"
        has_key = self.private_key_file is not None or self.private_key is not None
        if self.username and self.consumer_key and has_key:
            return "jwt"
        if self.username and self.password is not None:
            return "password"
        if self.consumer_key and self.consumer_secret is not None and not self.username:
            if self.login_url is None and self.domain in ("login", "test"):
                raise ValueError(
                    "the client credentials flow needs your My Domain: set domain "
                    "(such as 'acme.my') or login_url"
                )
            return "client_credentials"
        raise ValueError(
            "no complete credentials: give username + password (+ security_token), "
            "or username + consumer_key + private_key_file (JWT bearer), "
            "or consumer_key + consumer_secret (client credentials), "
            "or instance_url + session_id"
        )

    def base_login_url(self) -> str:
        """Where logins go: ``login_url``, else ``https://{domain}.salesforce.com``."""
        return self.login_url or f"https://{self.domain}.salesforce.com"
