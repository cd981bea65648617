"""The ``[distributed]`` table of the configuration file (see docs/distributed.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from mpconnect.redact import remember_secret

__all__ = ["DistributedConfig"]


class DistributedConfig(BaseModel):
    """The ``[distributed]`` table: run sources on Celery workers (``mpconnect worker``)
    with a Redis broker and a shared PostgreSQL database. Both URLs are secrets (their
    passwords): they are kept as ``SecretStr`` and never shown with their passwords."""

    model_config = ConfigDict(extra="forbid")

    broker: SecretStr
    database: SecretStr
    #: Seconds without a heartbeat after which a run's worker counts as lost and the run
    #: is sent again (it resumes); heartbeats come every sixth of it.
    lease: float = Field(default=60.0, ge=3, le=3600)

    @field_validator("broker")
    @classmethod
    def _broker_is_redis(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("redis://", "rediss://")):
            raise ValueError(
                "must be a Redis URL such as redis://HOST:6379/0 (rediss:// for TLS); "
                'write broker = "${MPCONNECT_BROKER_URL}" and export MPCONNECT_BROKER_URL'
            )
        _remember_url_password(url)
        return value

    @field_validator("database")
    @classmethod
    def _database_is_postgresql(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be a PostgreSQL URL such as postgresql://USER:PASSWORD@HOST:5432/DB; "
                'write database = "${MPCONNECT_DATABASE_URL}" and export MPCONNECT_DATABASE_URL'
            )
        _remember_url_password(url)
        return value


def _remember_url_password(url: str) -> None:
    """Record a URL's password (and the URL itself) as secrets: never shown again."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        remember_secret(password)
        remember_secret(unquote(password))
