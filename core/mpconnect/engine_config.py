"""The ``[engine]`` table of the configuration file: how runs read and upload."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["EngineConfig"]


class EngineConfig(BaseModel):
    """The ``[engine]`` table: how runs upload."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(default=4, ge=1, le=64)
    max_retries: int = Field(default=8, ge=0, le=100)
    retry_initial_wait: float = Field(default=0.5, gt=0, le=60)
    retry_max_wait: float = Field(default=60.0, gt=0, le=600)
    live_timeout: float = Field(default=900.0, gt=0)
    #: Seconds after which a run stops and fails cleanly; the next run resumes it.
    max_run_time: float = Field(default=14400.0, gt=0)
    #: Bytes of JSON per batch; default: the sink's own limit, else 4 MiB (5.6 MiB as the
    #: Datasets API's base64). A sink's own limit is never exceeded.
    max_batch_bytes: int | None = Field(default=None, ge=64 * 1024, le=64 * 1024 * 1024)
    #: Processes reading a partitioned source's partitions at once (1: in the run's own
    #: process); default: the number of cores.
    processes: int | None = Field(default=None, ge=1, le=256)
    #: The Mixpanel project's import rate limit, in events and bytes of JSON per minute
    #: (Mixpanel documents 2 GB a minute, about 30,000 events a second), and the share of
    #: it that every run loading the project at once uses together.
    project_events_per_minute: int = Field(default=1_800_000, ge=60, le=10**9)
    project_bytes_per_minute: int = Field(default=2_000_000_000, ge=64 * 1024, le=10**13)
    project_rate_share: float = Field(default=0.9, gt=0, le=1)
    #: False: take nothing from the project's budget (a benchmark into a null sink).
    project_rate_limit: bool = True
    #: Share the rate limits across machines through this Redis (default: this machine).
    rate_limit_redis_url: str | None = Field(default=None, repr=False)  # may hold a password

    @field_validator("rate_limit_redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise ValueError(
                "must be a Redis URL such as redis://localhost:6379/0 (or rediss:// for TLS)"
            )
        return value
