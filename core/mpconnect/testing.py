"""Helpers for testing connectors and plugins (public API for plugin authors).

``run_connector`` runs a connector's generators with given settings and returns what a
run would send, validated exactly as the engine validates it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpconnect.connector import Connector, RunContext
from mpconnect.errors import RecordError

__all__ = ["Collected", "QuarantinedRecord", "run_connector"]


@dataclass
class QuarantinedRecord:
    """A record (or source object) that could not be sent, and why."""

    what: str
    reason: str
    data: Any = None


@dataclass
class Collected:
    """What one run of a connector produced, as Mixpanel records (with the token)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)

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
    fails validation is collected in ``quarantined`` with its reason, as the engine would
    write it to the quarantine file.
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
    try:
        for event in instance.events(ctx):
            try:
                collected.events.append(event.to_mixpanel(token))
            except RecordError as exc:
                quarantine(event.describe(), str(exc), None)
        for profile in instance.people(ctx):
            try:
                collected.people.extend(profile.to_mixpanel(token))
            except RecordError as exc:
                quarantine(profile.describe(), str(exc), None)
    finally:
        instance.close()
    return collected
