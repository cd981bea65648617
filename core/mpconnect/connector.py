"""The connector contract: what a source plugin subclasses.

A connector declares its ``name``, a pydantic ``Settings`` model (secrets as
``SecretStr``), and generators :meth:`Connector.events` and :meth:`Connector.people`.
The engine calls ``events(ctx)`` to exhaustion, then ``people(ctx)``, on one instance, so
a connector may gather per-person figures while reading events and emit them on the
profiles (memory bounded by the number of people, never by the number of events).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mpconnect.connector_ref import missing_modules
from mpconnect.records import Event, Profile

__all__ = ["Connector", "ConnectorSettings", "RunContext"]


class ConnectorSettings(BaseModel):
    """Base of every connector's settings model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class RunContext:
    """What a connector is given for one run of one source.

    :param source: the configured source's name, such as ``"billing"``.
    :param dataset_id: the Mixpanel dataset the run loads.
    :param log: a logger for the connector's messages (never log secrets).
    :param state_dir: a directory the connector may keep files in between runs.
    :param quarantine: call ``quarantine(what, reason, data)`` for a source object that
        cannot become a record (for example a charge with no customer and no email);
        it is written to the run's quarantine file and counted, never dropped silently.
    :param stop: set when the run is asked to stop (SIGTERM, Ctrl-C, the scheduler's stop,
        ``engine.max_run_time``): a connector's own waits should end when it is set.
        Retry waits of :mod:`mpconnect.transport` in the thread
        that calls ``events``/``people`` end by themselves; pass ``stop`` to them from
        other threads.
    :param count_retry: call it once for each request the connector retries, so the run's
        ``retries`` (``mpconnect runs``) counts the source's retries with the sink's
        (:class:`mpconnect.transport.http.JsonHttpClient` takes it as ``on_retry``).
    """

    source: str
    dataset_id: str
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("mpconnect.source"))
    state_dir: Path | None = None
    quarantine: Callable[[str, str, Any], None] = field(default=lambda what, reason, data: None)
    extra: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    count_retry: Callable[..., None] = field(default=lambda *_: None)

    def setting_key(self, name: str) -> str:
        """The configuration key of one of this source's settings, for messages:
        ``sources.billing.settings.api_base``."""
        return f"sources.{self.source}.settings.{name}"


class Connector(ABC):
    """Base class of every source connector.

    Subclasses set :attr:`name` and :attr:`Settings`, and implement :meth:`events` and
    :meth:`people` (and usually :meth:`check`). ``requires`` lists import names the
    connector needs; when one is missing the connector is listed as unavailable with
    ``install_hint`` as the fix.
    """

    #: The connector's name in configuration files (``connector = "stripe"``).
    name: ClassVar[str]
    #: One line saying what the connector reads.
    description: ClassVar[str] = ""
    #: The pydantic model of the connector's ``[sources.X.settings]`` table.
    Settings: ClassVar[type[BaseModel]] = ConnectorSettings
    #: Import names that must be importable for the connector to run.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The command that installs what ``requires`` names.
    install_hint: ClassVar[str | None] = None
    #: The connector's version (default: its distribution's). An unfinished version
    #: spooled by another version of the connector is never resumed.
    version: ClassVar[str | None] = None

    def __init__(self, settings: BaseModel) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """Return the import names in ``requires`` that cannot be imported."""
        return missing_modules(cls.requires)

    def check(self, ctx: RunContext) -> str:
        """Verify the credentials and reachability cheaply; return a one-line description.

        :raises mpconnect.errors.SourceError: with one clear line when the source refuses.
        """
        return "no check implemented"

    @abstractmethod
    def events(self, ctx: RunContext) -> Iterator[Event]:
        """Yield the source's events, one at a time, fetching pages lazily."""

    @abstractmethod
    def people(self, ctx: RunContext) -> Iterator[Profile]:
        """Yield the source's people profiles, one at a time."""

    def close(self) -> None:
        """Release connections; called once after the run, whatever its outcome."""
