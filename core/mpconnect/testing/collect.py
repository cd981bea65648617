"""The kit's fastest level: a connector's records validated as the engine validates them
(:func:`run_connector`), and plugin objects for one test."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mpconnect import hookimpl
from mpconnect.connector import Connector, RunContext
from mpconnect.errors import PluginError, RecordError
from mpconnect.records import Event, Profile

if TYPE_CHECKING:
    from mpconnect.plugins import Plugins


@dataclass
class QuarantinedRecord:
    """A record (or source object) that could not be sent, and why.

    :param what: which record or object, such as ``"activity a_12"``.
    :param reason: why, naming the field when one is at fault.
    :param data: the object or record, as the quarantine file keeps it.
    :param field: the dotted path of the offending field, when known.
    """

    what: str
    reason: str
    data: Any = None
    field: str | None = None


class _Records:
    """Lookups shared by :class:`Collected` and :class:`LoadedVersion`."""

    events: list[dict[str, Any]]
    people: list[dict[str, Any]]

    def events_named(self, name: str) -> list[dict[str, Any]]:
        """Return the events called ``name``."""
        return [event for event in self.events if event["event"] == name]

    def profile(self, distinct_id: str) -> dict[str, Any]:
        """Merge the ``$set`` of every people record of ``distinct_id`` into one dict.

        :raises KeyError: when no profile has that id.
        """
        merged: dict[str, Any] = {}
        found = False
        for record in self.people:
            if record["$distinct_id"] == distinct_id:
                found = True
                merged.update(record.get("$set", {}))
        if not found:
            raise KeyError(distinct_id)
        return merged

    @property
    def events_by_name(self) -> dict[str, int]:
        """How many events of each name, sorted by name."""
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event["event"]] = counts.get(event["event"], 0) + 1
        return dict(sorted(counts.items()))

    @property
    def profiles(self) -> set[str]:
        """The distinct ids that have a people record."""
        return {record["$distinct_id"] for record in self.people}


@dataclass
class Collected(_Records):
    """What one run of a connector produced, as Mixpanel records (with the token)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)


def run_connector(
    connector: type[Connector],
    settings: dict[str, Any] | None = None,
    *,
    token: str = "test-token",
    source: str = "test",
    dataset_id: str = "TEST",
    state_dir: Path | None = None,
) -> Collected:
    """Run ``connector`` with ``settings`` and collect its validated records.

    Events are read to exhaustion first, then people, as the engine does. A record that
    fails validation, or holds a value JSON cannot encode (an integer beyond 64 bits), is
    collected in ``quarantined`` with its reason, as the engine would write it to the
    quarantine file.

    :raises PluginError: when ``events()`` yields something other than an
        :class:`mpconnect.Event`, or ``people()`` other than an :class:`mpconnect.Profile`,
        with the engine's message.

    Example::

        collected = run_connector(AcmeConnector, {"api_key": "k", "base_url": api.url})
        assert len(collected.events_named("Email Opened")) == 3
    """
    collected = Collected()

    def quarantine(what: str, reason: str, data: Any = None) -> None:
        collected.quarantined.append(QuarantinedRecord(what, reason, data))

    instance = connector(connector.Settings(**(settings or {})))
    ctx = RunContext(
        source=source,
        dataset_id=dataset_id,
        log=logging.getLogger(f"mpconnect.source.{source}"),
        state_dir=state_dir,
        quarantine=quarantine,
    )
    name = connector.name
    try:
        for event in instance.events(ctx):
            _check_yielded(name, "events", event, Event)
            try:
                converted = [event.to_mixpanel(token)]
            except RecordError as exc:
                collected.quarantined.append(
                    QuarantinedRecord(event.describe(), str(exc), None, exc.field)
                )
                continue
            collected.events += _encodable("events", converted, collected.quarantined)
        for profile in instance.people(ctx):
            _check_yielded(name, "people", profile, Profile)
            try:
                converted = profile.to_mixpanel(token)
            except RecordError as exc:
                collected.quarantined.append(
                    QuarantinedRecord(profile.describe(), str(exc), None, exc.field)
                )
                continue
            collected.people += _encodable("people", converted, collected.quarantined)
    finally:
        instance.close()
    return collected


def _check_yielded(name: str, kind: str, record: object, expected: type) -> None:
    """Refuse what the engine refuses: a generator yielding the wrong type."""
    if not isinstance(record, expected):
        raise PluginError(
            f"connector {name!r} yielded {record!r} from {kind}(); "
            f"expected mpconnect.{expected.__name__}"
        )


def _encodable(
    kind: str, records: list[dict[str, Any]], quarantined: list[QuarantinedRecord]
) -> list[dict[str, Any]]:
    """The records orjson can write, as the engine's spool; the others are quarantined."""
    good = []
    for record in records:
        try:
            orjson.dumps(record)
        except TypeError as exc:
            quarantined.append(
                QuarantinedRecord(
                    _describe_converted(kind, record),
                    f"a value cannot be encoded as JSON: {exc}",
                    {"repr": repr(record)[:2000]},
                )
            )
        else:
            good.append(record)
    return good


def _describe_converted(kind: str, record: dict[str, Any]) -> str:
    """Name a converted record as the engine's quarantine does."""
    if kind == "events":
        properties = record.get("properties", {})
        return (
            f"event {record.get('event')!r} ($insert_id {properties.get('$insert_id')}, "
            f"distinct_id {properties.get('distinct_id')!r})"
        )
    return f"profile (distinct_id {record.get('$distinct_id')!r})"


# -- plugins for one test ------------------------------------------------------------------


class _ConnectorPlugin:
    """A plugin object that registers given connector classes."""

    def __init__(self, classes: Sequence[type[Connector]]) -> None:
        self.classes = tuple(classes)

    def __repr__(self) -> str:
        names = ", ".join(getattr(cls, "name", cls.__qualname__) for cls in self.classes)
        return f"<test plugin registering {names}>"

    @hookimpl
    def register_connectors(self, register: Callable[[type[Connector]], None]) -> None:
        """Register the connector classes."""
        for cls in self.classes:
            register(cls)


def connector_plugin(*classes: type[Connector]) -> object:
    """Return a plugin object registering ``classes``, to pass as ``plugins=[...]``.

    For a connector that is not installed through an entry point (yet)::

        embedded.cli("connectors", "list", plugins=[connector_plugin(AcmeConnector)])
    """
    return _ConnectorPlugin(classes)


def load_test_plugins(*plugins: object, entry_points: bool = True) -> Plugins:
    """Load mpconnect's plugins with ``plugins`` (objects or modules) registered too.

    Nothing is registered beyond the returned object: the next load starts afresh, so a
    plugin registered here lives for one test.

    :param entry_points: also load installed plugins (the ``mpconnect`` entry points,
        built-ins included); False loads ``plugins`` and the built-in sinks only.
    """
    from mpconnect.plugins import load_plugins

    extra: list[object] = list(plugins)
    if not entry_points:
        from mpconnect.sinks import builtin

        extra.insert(0, builtin)
    return load_plugins(extra, entry_points=entry_points)
