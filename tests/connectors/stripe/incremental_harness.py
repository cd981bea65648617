"""A stand-in for the engine's source-object cache, to test the connector's incremental
runs on their own: records kept by ``(stream, object_id)``, an object's records replaced
as a whole by a run that yields any of them, removed by ``ctx.deleted``, and the state
kept only when the run completes."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import orjson

from mpconnect import Event, Profile, RunContext
from mpconnect_stripe.connector import StripeConnector
from mpconnect_stripe.settings import StripeSettings

Key = tuple[str, str]


@dataclasses.dataclass
class Outcome:
    """One run: whether it read everything and why, what it yielded, its requests."""

    full: bool
    reasons: list[str]
    yielded: int
    deleted: int
    requests: int


class CachedSource:
    """One source's committed state and cached records, run after run.

    :param settings: the connector's settings.
    :param state_dir: the source's state directory (kept between runs).
    """

    def __init__(self, settings: dict[str, Any], state_dir: Path) -> None:
        self.settings = StripeSettings(**settings)
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = {}
        self.cache: dict[Key, list[Event | Profile]] = {}

    def run(self, *, full_refresh: bool | None = None) -> Outcome:
        """Run the connector once (full on the first run) and commit what it read."""
        full = not self.state if full_refresh is None else full_refresh
        pending: dict[Key, list[Event | Profile]] = {}
        deleted: set[Key] = set()
        reasons: list[str] = []

        def forget(stream: str, object_id: str) -> None:
            deleted.add((stream, object_id))
            pending.pop((stream, object_id), None)

        ctx = RunContext(
            source="billing",
            dataset_id="STRIPE",
            log=logging.getLogger("test.stripe"),
            state_dir=self.state_dir,
            state=copy.deepcopy(self.state),
            full_refresh=full,
            deleted=forget,
            read_everything=reasons.append,
        )
        connector = StripeConnector(self.settings)
        try:
            records: list[Event | Profile] = [*connector.events(ctx), *connector.people(ctx)]
        finally:
            connector.close()
        for record in records:
            assert record.stream and record.object_id, record
            pending.setdefault((record.stream, record.object_id), []).append(record)
        if full or reasons:
            self.cache = pending
        else:
            self.cache = {k: v for k, v in self.cache.items() if k not in deleted}
            self.cache.update(pending)
        self.state = ctx.state
        return Outcome(
            full or bool(reasons), reasons, len(records), len(deleted), connector.requests
        )

    def snapshot(self) -> list[bytes]:
        """Every cached record, as sorted JSON lines: what a version would hold."""
        return sorted(
            orjson.dumps(
                {"kind": type(record).__name__, **dataclasses.asdict(record)},
                option=orjson.OPT_SORT_KEYS,
            )
            for records in self.cache.values()
            for record in records
        )


def full_snapshot(settings: dict[str, Any], state_dir: Path) -> list[bytes]:
    """What a full read of the account publishes now."""
    source = CachedSource(settings, state_dir)
    source.run(full_refresh=True)
    return source.snapshot()
