"""The engine's side of the incremental contract, kept in memory, for the connector's tests.

:class:`Source` keeps what the engine keeps between runs of one source: the state the last
run left, and the source-object cache (records by ``(stream, object_id)``). Each run hands
the connector a :class:`mpconnect.RunContext` as the contract says, then applies what it
yielded and deleted to the cache, whose records are then the snapshot the run publishes.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from mpconnect import Event, Profile, RunContext, SourcePaused
from mpconnect_salesforce import SalesforceConnector

Key = tuple[str, str]


@dataclass
class Outcome:
    """What one run did: records yielded, objects deleted, why it read everything."""

    yielded: int = 0
    deleted: set[Key] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)
    full: bool = False
    paused: SourcePaused | None = None


@dataclass
class Source:
    """One configured source's state and source-object cache across runs."""

    settings: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    cache: dict[Key, list[Event | Profile]] = field(default_factory=dict)
    runs: int = 0

    def run(self, *, full_refresh: bool = False) -> Outcome:
        """One run: incremental unless it is the first or ``full_refresh``; a paused run
        keeps what it read and its state (as the engine does), and publishes nothing."""
        outcome = Outcome(full=full_refresh or self.runs == 0)
        state = copy.deepcopy(self.state)
        replaced: dict[Key, list[Event | Profile]] = {}

        def unchanged(stream: str) -> Iterator[Event | Profile]:
            if outcome.full:
                return
            for key, records in list(self.cache.items()):
                if key[0] == stream and key not in replaced and key not in outcome.deleted:
                    yield from records

        def deleted(stream: str, object_id: str) -> None:
            outcome.deleted.add((stream, object_id))
            replaced.pop((stream, object_id), None)

        def read_everything(reason: str) -> None:
            assert not replaced, "read_everything after records were yielded"
            outcome.reasons.append(reason)
            outcome.full = True

        ctx = RunContext(
            source="crm",
            dataset_id="CRM",
            state=state,
            full_refresh=outcome.full,
            deleted=deleted,
            unchanged=unchanged,
            read_everything=read_everything,
        )
        connector = SalesforceConnector(SalesforceConnector.Settings(**self.settings))
        try:
            records = itertools.chain(connector.events(ctx), _later(connector.people, ctx))
            for record in records:
                assert record.stream and record.object_id, f"{record} has no cache key"
                key = (record.stream, record.object_id)
                outcome.deleted.discard(key)
                replaced.setdefault(key, []).append(record)
                outcome.yielded += 1
        except SourcePaused as exc:
            outcome.paused = exc
        finally:
            connector.close()
        if outcome.full:
            self.cache = {}
        for key in outcome.deleted:
            self.cache.pop(key, None)
        self.cache.update(replaced)
        self.state = state
        self.runs += 1
        return outcome

    def snapshot(self) -> list[bytes]:
        """The records the cache publishes, as Mixpanel receives them, in a stable order."""
        out = []
        for records in self.cache.values():
            for record in records:
                sent = record.to_mixpanel("test-token")
                for one in sent if isinstance(sent, list) else [sent]:
                    out.append(orjson.dumps(one, option=orjson.OPT_SORT_KEYS))
        return sorted(out)


def _later(people: Any, ctx: RunContext) -> Iterator[Profile]:
    """``people(ctx)``, called only once the events are read, as the engine does."""
    yield from people(ctx)
