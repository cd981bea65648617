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
from mpconnect.errors import PluginError
from mpconnect.records import Event, Profile

__all__ = ["Connector", "ConnectorSettings", "Partition", "RunContext"]


class ConnectorSettings(BaseModel):
    """Base of every connector's settings model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Partition:
    """One independent part of a source, read by its own call of ``events``/``people``.

    :param key: stable and unique within the source, such as ``"charges:2024-01"``; it
        names the partition in logs, the ledger and the run page.
    :param spec: what the connector needs to read it (JSON-serialisable: it travels to
        other processes and machines), such as ``{"stream": "charges", "created_gte": 0}``.
    """

    key: str
    spec: dict[str, Any] = field(default_factory=dict)


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

    Incremental runs (connectors with ``incremental = True``; see ``docs/plugins.md``):

    :param state: the source's state as the last successful run left it (cursors; any
        JSON-serialisable values), ``{}`` on a first run. Change it in place as the run
        reads; the engine stores it only once the run's data is safe (version live,
        batches acknowledged, store committed), so a failed run leaves the old state.
    :param full_refresh: True when this run must read everything: the first run, a
        ``sync = "full"`` source, ``mpconnect run --full-refresh``, a missing or damaged
        cache. The records of a full read replace the whole source-object cache.
    :param deleted: call ``deleted(stream, object_id)`` when an incremental read learns
        that a source object is gone; its records leave the snapshot.
    :param unchanged: ``unchanged(stream)`` yields the cached records of that stream's
        objects that this run has not (yet) replaced or deleted: what a connector needs
        to recompute figures that aggregate over many objects (lifetime revenue, say)
        exactly as a full read would. Empty on a full read.
    :param read_everything: call ``read_everything(reason)`` before yielding anything when
        the connector decides on a full read itself (a cursor older than the source keeps
        changes, say); the reason is logged and shown in the run summary.
    :param partition: the partition this call reads (see :meth:`Connector.partitions`).
    """

    source: str
    dataset_id: str
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("mpconnect.source"))
    state_dir: Path | None = None
    quarantine: Callable[[str, str, Any], None] = field(default=lambda what, reason, data: None)
    extra: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    count_retry: Callable[..., None] = field(default=lambda *_: None)
    state: dict[str, Any] = field(default_factory=dict)
    full_refresh: bool = True
    deleted: Callable[[str, str], None] = field(default=lambda stream, object_id: None)
    unchanged: Callable[[str], Iterator[Event | Profile]] = field(default=lambda stream: iter(()))
    read_everything: Callable[[str], None] = field(default=lambda reason: None)
    partition: Partition | None = None

    def setting_key(self, name: str) -> str:
        """The configuration key of one of this source's settings, for messages:
        ``sources.billing.settings.api_base``."""
        return f"sources.{self.source}.settings.{name}"


_MISSING = object()


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
    #: True when the connector can read only what changed since ``ctx.state``'s cursors
    #: (``sync = "incremental"``, the default for such connectors).
    incremental: ClassVar[bool] = False

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

    def partitions(self, ctx: RunContext) -> list[Partition]:
        """Split the source into independent partitions, read in parallel (by a process
        pool, or by Celery workers in distributed mode) into one version.

        Each partition's ``events``/``people`` calls get it as ``ctx.partition`` and must
        yield only that partition's records; together the partitions yield exactly the
        records of one unpartitioned read. The default is one partition: the whole source.
        """
        return [Partition("all")]

    @classmethod
    def merge_states(cls, states: list[tuple[Partition, dict[str, Any]]]) -> dict[str, Any]:
        """Combine the states the partitions of one full read left into the source's state.

        An incremental source's full read (its first run, ``--full-refresh``...) is read
        partition by partition, each with its own copy of ``ctx.state``; once every
        partition is done the engine calls this with each partition and the state it
        left, in plan order, and stores what it returns (only once the run's data is
        safe). The result must let the next incremental run miss nothing: where
        partitions keep cursors of the same stream, keep the earliest.

        The default accepts only states that are all equal (a cursor taken before the
        read, say) and returns that one.

        :raises PluginError: when the states differ: implement this method to combine them.
        """
        first_partition, first = states[0]
        for partition, state in states[1:]:
            if state != first:
                keys = sorted(
                    str(key)
                    for key in set(first) | set(state)
                    if first.get(key, _MISSING) != state.get(key, _MISSING)
                )
                raise PluginError(
                    f"connector {cls.name!r}: the partitions of a full read left different "
                    f"states ({first_partition.key!r} and {partition.key!r} differ in "
                    f"{', '.join(map(repr, keys))}); the connector must implement "
                    "merge_states(states) to combine them (see docs/plugins.md), or return "
                    "one partition from partitions() on a full read"
                )
        return dict(first)

    def close(self) -> None:
        """Release connections; called once after the run, whatever its outcome."""
