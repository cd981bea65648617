"""The hooks of mpconnect. Each docstring is the hook's documentation.

A plugin implements hooks with ``@mpconnect.hookimpl`` and is found through the
``mpconnect`` entry-point group. Implementations may accept fewer arguments than the
spec names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mpconnect.connector import Connector
    from mpconnect.engine.summary import RunSummary
    from mpconnect.records import Event, Profile
    from mpconnect.served import LocalServer
    from mpconnect.sink import Sink

hookspec = pluggy.HookspecMarker("mpconnect")


@hookspec
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register source connectors.

    :param register: call ``register(ConnectorClass)`` once per connector class, or
        ``register(mpconnect.ConnectorRef("acme", "acme_plugin.connector:AcmeConnector",
        description=...))`` so that the class (its pydantic settings, its client library)
        is imported only when a command uses it.

    Example::

        @mpconnect.hookimpl
        def register_connectors(register):
            register(AcmeConnector)
    """


@hookspec
def register_sinks(register: Callable[[type[Sink]], None]) -> None:
    """Register sinks: destinations the engine loads dataset versions into.

    :param register: call ``register(SinkClass)`` once per sink class.

    Example::

        @mpconnect.hookimpl
        def register_sinks(register):
            register(WarehouseSink)
    """


@hookspec
def register_local_servers(register: Callable[[type[LocalServer]], None]) -> None:
    """Register local stand-ins for source APIs, started by ``mpconnect serve NAME``.

    :param register: call ``register(LocalServerClass)`` once per
        :class:`mpconnect.emulator.background.LocalServer` subclass; its ``name`` is the
        ``mpconnect serve`` subcommand.

    Example::

        @mpconnect.hookimpl
        def register_local_servers(register):
            register(AcmeLocalServer)
    """


@hookspec
def transform_record(record: Event | Profile, source: str) -> None:
    """Change a record before it is validated; called for every record of every source.

    Modify ``record`` in place; raise :class:`mpconnect.RecordError` to send it to the
    run's quarantine file instead.

    :param record: the event or profile a connector yielded.
    :param source: the configured source's name.

    Example::

        @mpconnect.hookimpl
        def transform_record(record, source):
            if isinstance(record, mpconnect.Event):
                record.properties["source"] = source
    """


@hookspec
def version_created(source: str, dataset_id: str, version_id: str, sink: str) -> None:
    """Observe: a run created (or resumed) a dataset version.

    :param source: the configured source's name.
    :param dataset_id: the dataset.
    :param version_id: the new version's id.
    :param sink: the sink's name (``embedded``, ``datasets``, ...).

    Example::

        @mpconnect.hookimpl
        def version_created(source, version_id):
            print(f"{source}: loading version {version_id}")
    """


@hookspec
def version_published(source: str, dataset_id: str, version_id: str, summary: RunSummary) -> None:
    """Observe: every batch of a version was acknowledged and the version made readable.

    :param source: the configured source's name.
    :param dataset_id: the dataset.
    :param version_id: the published version.
    :param summary: the run's counts so far.

    Example::

        @mpconnect.hookimpl
        def version_published(source, summary):
            print(f"{source}: {summary.imported} records published")
    """


@hookspec
def version_live(source: str, dataset_id: str, version_id: str) -> None:
    """Observe: a published version became live (queryable in Mixpanel).

    :param source: the configured source's name.
    :param dataset_id: the dataset.
    :param version_id: the live version.

    Example::

        @mpconnect.hookimpl
        def version_live(source, version_id):
            notify_team(f"{source} version {version_id} is live")
    """


@hookspec
def run_failed(source: str, dataset_id: str, version_id: str | None, error: BaseException) -> None:
    """Observe: a run stopped with an error; its version, if any, was not published.

    :param source: the configured source's name.
    :param dataset_id: the dataset.
    :param version_id: the version being loaded, or None if none was created.
    :param error: the exception that stopped the run.

    Example::

        @mpconnect.hookimpl
        def run_failed(source, error):
            page_on_call(f"{source} failed: {error}")
    """
