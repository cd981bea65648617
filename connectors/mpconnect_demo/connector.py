"""Synthetic airline reviews and their reviewers.

With ``changes`` the demo source changes between runs, deterministically: each run moves
it one *generation* on, in which a share ``changes`` of the reviews is touched, a third
each new, updated (a new rating...) and deleted (see :mod:`mpconnect_demo.changes`). The
connector reads incrementally: its state is the generation it last read, and an
incremental run yields only the reviews changed since, the deletions, and the reviewers
whose aggregates (``reviews_written``, ``average_rating``) changed.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from datetime import datetime
from itertools import chain, islice
from typing import Any

from pydantic import Field

import mpconnect
from mpconnect_demo.blocks import BLOCK, DEFAULT_PARTITIONS, PARTITION_FROM, Blocks, block_rng
from mpconnect_demo.changes import History
from mpconnect_demo.reviewers import REVIEWERS, average, reviewer_profiles
from mpconnect_demo.reviews import (
    EPOCH_START,
    REVIEWS,
    SPAN_SECONDS,
    base_reviews,
    review_days,
    reviewers_and_ratings,
)
from mpconnect_demo.vocabulary import AIRLINES, CABIN_DRAWS


class DemoSettings(mpconnect.ConnectorSettings):
    """Settings of the ``demo`` connector."""

    events: int = Field(default=10_000, ge=0, description="how many Airline Review events")
    reviewers: int | None = Field(
        default=None, ge=1, description="how many reviewers (default: one per 10 events)"
    )
    seed: int = Field(default=42, description="random seed; same seed, same data")
    bad_records: int = Field(
        default=0, ge=0, description="extra events with an invalid time, to see quarantine work"
    )
    changes: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of the reviews that change (new, updated, deleted) between runs",
    )
    retention: int = Field(
        default=50,
        ge=1,
        description="generations the source keeps changes for: a state older than that "
        "makes the connector read everything",
    )
    generation: int | None = Field(
        default=None,
        ge=0,
        description="read the source as it is at this generation (default: one generation "
        "on per run when changes is set)",
    )
    partitions: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="partitions, read in parallel (default: 8 from 100,000 events, else 1)",
    )


class DemoConnector(mpconnect.Connector):
    """Deterministic synthetic airline reviews (events) by reviewers (people)."""

    name = "demo"
    description = "synthetic airline reviews, no account needed"
    Settings = DemoSettings
    incremental = True
    #: Pages of 100 objects "fetched" by all demo runs of this process (for benchmarks).
    pages = 0

    settings: DemoSettings

    def __init__(self, settings: DemoSettings) -> None:
        super().__init__(settings)
        self._figures: dict[int, tuple[list[int], list[int]]] = {}
        self._history: History | None = None
        self._changed: list[mpconnect.Event] = []
        self._full = True
        self._last = 0
        self._touched: list[int] = []

    @property
    def reviewer_count(self) -> int:
        """How many reviewer profiles the settings produce."""
        return self.settings.reviewers or max(1, self.settings.events // 10)

    @functools.cached_property
    def _blocks(self) -> Blocks:
        return Blocks(self.settings.events, self.reviewer_count)

    def check(self, ctx: mpconnect.RunContext) -> str:
        """Nothing to reach: describe what a run produces."""
        return (
            f"demo data: {self.settings.events} events, {self.reviewer_count} reviewers, "
            f"seed {self.settings.seed}"
        )

    def partitions(self, ctx: mpconnect.RunContext) -> list[mpconnect.Partition]:
        """Ranges of whole blocks of reviews, each with the reviewers the blocks own; one
        partition for an incremental read (it yields only the changes, whatever the
        partition)."""
        if ctx.partition is not None:
            return [ctx.partition]  # called again inside a partition: read only that one
        if not ctx.full_refresh:
            return [mpconnect.Partition("all")]
        wanted = self.settings.partitions
        if wanted is None:
            wanted = DEFAULT_PARTITIONS if self.settings.events >= PARTITION_FROM else 1
        parts = max(1, min(wanted, self._blocks.owners))
        if parts == 1:
            return [mpconnect.Partition("all")]
        return [
            mpconnect.Partition(f"{part + 1:03d}-of-{parts:03d}", {"part": part, "parts": parts})
            for part in range(parts)
        ]

    def _part(self, ctx: mpconnect.RunContext) -> range:
        """The blocks ``ctx.partition`` reads (all of them unpartitioned)."""
        spec = ctx.partition.spec if ctx.partition is not None else {}
        return self._blocks.part(int(spec.get("part", 0)), int(spec.get("parts", 1)))

    def _generation(self, ctx: mpconnect.RunContext) -> int:
        if self.settings.generation is not None:
            return self.settings.generation
        last = ctx.state.get("generation")
        if not isinstance(last, int):
            return 0
        return last + 1 if self.settings.changes > 0 else last

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        """Yield ``Airline Review`` events (all, or those changed since the generation
        in ``ctx.state``), then any deliberately bad ones (in the last partition)."""
        settings = self.settings
        generation = self._generation(ctx)
        history = self._history = History(
            settings.seed, settings.events, settings.changes, generation
        )
        last = ctx.state.get("generation")
        if not ctx.full_refresh:
            reason = _too_old(last, generation, settings.retention)
            if reason is None:
                self._full = False
                yield from self._changed_events(ctx, history, int(last or 0))
                return
            ctx.read_everything(reason)
        blocks = self._part(ctx)
        last_part = blocks.stop == self._blocks.count
        events, read = self._all_events(history, blocks, last_part)
        yield from events
        for index in range(settings.bad_records if last_part else 0):
            yield mpconnect.Event(
                name="Airline Review",
                distinct_id=f"reviewer-{index % self.reviewer_count}",
                time=datetime(2024, 1, 1),  # naive on purpose: quarantined
                object_id=f"bad-review-{index}",
                stream=REVIEWS,
            )
        type(self).pages += -(-read // 100)

    def _figures_of(self, owner: int) -> tuple[list[int], list[int]]:
        """Reviews read and ratings summed, per reviewer of block ``owner`` (by offset in
        the reviewers it owns)."""
        figures = self._figures.get(owner)
        if figures is None:
            span = len(self._blocks.reviewer_range(owner))
            figures = self._figures[owner] = ([0] * span, [0] * span)
        return figures

    def _count(self, event: mpconnect.Event, sign: int = 1) -> mpconnect.Event:
        """``event`` (a review), counted in its reviewer's figures (``sign`` -1: taken
        off them)."""
        owner = self._blocks.owner(int(str(event.object_id).removeprefix("review-")))
        counts, totals = self._figures_of(owner)
        reviewer = int(event.distinct_id.removeprefix("reviewer-"))
        offset = reviewer - self._blocks.reviewer_range(owner).start
        counts[offset] += sign
        totals[offset] += sign * event.properties["rating"]
        return event

    def _all_events(
        self, history: History, blocks: range, last_part: bool
    ) -> tuple[Iterator[mpconnect.Event], int]:
        """The base reviews of ``blocks`` as ``history`` left them, then (``last_part``)
        those born since, each counted in the figures as it is yielded; and how many."""
        indices = self._blocks.events_of(blocks)
        deleted, versions = history.deleted, history.versions
        changed: dict[int, list[int]] = {}
        for index in sorted({*deleted, *versions}):
            if index in indices:
                changed.setdefault(index // BLOCK, []).append(index)
        born = [index for index in history.born() if index not in deleted] if last_part else []
        count = len(indices) - sum(index in indices for index in deleted) + len(born)
        reviews = chain.from_iterable(
            self._block_reviews(block, indices, history, changed.get(block, []))
            for block in range(indices.start // BLOCK, -(-indices.stop // BLOCK))
        )
        new = (self._count(self._review(index, history.version(index))) for index in born)
        return chain(reviews, new), count

    def _block_reviews(
        self, block: int, indices: range, history: History, changed: list[int]
    ) -> Iterator[mpconnect.Event]:
        """The base reviews of ``block`` among ``indices``; those ``changed`` (sorted)
        as ``history`` left them."""
        geometry = self._blocks
        reviews = range(block * BLOCK, min(indices.stop, (block + 1) * BLOCK))
        owner = geometry.owner(reviews.start)
        rng = block_rng(self.settings.seed, "events", block)
        base = base_reviews(rng, reviews, geometry.reviewer_range(owner), *self._figures_of(owner))
        return self._with_changes(base, reviews.start, history, changed) if changed else base

    def _with_changes(
        self, base: Iterator[mpconnect.Event], start: int, history: History, changed: list[int]
    ) -> Iterator[mpconnect.Event]:
        """``base`` (reviews from ``start`` on) without the reviews deleted and with the
        updated ones as ``history`` left them, figures corrected."""
        position = start
        for index in changed:
            yield from islice(base, index - position)
            position = index + 1
            self._count(next(base), -1)  # drawn (and counted) as it was in the base
            if index not in history.deleted:
                yield self._count(self._review(index, history.versions[index]))
        yield from base

    def _changed_events(
        self, ctx: mpconnect.RunContext, history: History, last: int
    ) -> Iterator[mpconnect.Event]:
        read = 0
        self._last = last
        for index in history.deleted_since(last):
            self._touched.append(index)
            ctx.deleted(REVIEWS, f"review-{index}")
        for index in history.changed_since(last):
            self._touched.append(index)
            event = self._review(index, history.version(index))
            self._changed.append(event)
            read += 1
            yield event
        type(self).pages += -(-read // 100)

    def _review(self, index: int, version: int) -> mpconnect.Event:
        """Review ``index`` as generation ``version`` left it (new or updated)."""
        rng = random.Random(f"{self.settings.seed}:{index}:{version}")
        offset = rng.randrange(SPAN_SECONDS)
        rating = rng.randint(1, 10)
        owned = self._blocks.reviewer_range(self._blocks.owner(index))
        return mpconnect.Event(
            name="Airline Review",
            distinct_id=f"reviewer-{owned.start + rng.randrange(len(owned))}",
            time=EPOCH_START + offset,
            object_id=f"review-{index}",
            properties={
                "airline_name": rng.choice(AIRLINES),
                "rating": rating,
                "cabin_class": rng.choice(CABIN_DRAWS),
                "recommended": rating >= 7,
                "seat_comfort": rng.randint(1, 5),
                "value_for_money": rng.randint(1, 5),
                "review_date": review_days()[offset // 86400],
            },
            stream=REVIEWS,
        )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        """Yield one profile per reviewer, with figures over their reviews; on an
        incremental read, only the reviewers whose figures changed."""
        history = self._history
        if history is not None:
            ctx.state["generation"] = history.generation
        if self._full:
            yield from self._all_people(self._part(ctx))
            return
        deltas = self._figure_changes()
        for cached in ctx.unchanged(REVIEWERS):
            delta = deltas.get(cached.distinct_id)
            if not isinstance(cached, mpconnect.Profile) or not delta or delta == [0, 0]:
                continue
            figure = [
                int(cached.set.get("reviews_written", 0)) + delta[0],
                int(cached.set.get("ratings_total", 0)) + delta[1],
            ]
            fresh = _with_figures(dict(cached.set), figure)
            if fresh != cached.set:
                cached.set = fresh
                yield cached

    def _figure_changes(self) -> dict[str, list[int]]:
        """Per reviewer, the change in ``[reviews, ratings total]`` since the generation
        last read: the reviews touched since, as they were then, taken off; as they are
        now, added. (The demo knows its own history; a real connector would sum
        ``ctx.unchanged(stream)`` or keep the figures it needs.)"""
        settings = self.settings
        old = History(settings.seed, settings.events, settings.changes, self._last)
        alive_then = [
            index
            for index in self._touched
            if index < old.existing_after() and index not in old.deleted
        ]
        base = self._base_reviews([i for i in alive_then if old.version(i) == 0])
        deltas: dict[str, list[int]] = {}
        for index in alive_then:
            if index in base:
                distinct_id, rating = base[index]
            else:
                event = self._review(index, old.version(index))
                distinct_id, rating = event.distinct_id, event.properties["rating"]
            delta = deltas.setdefault(distinct_id, [0, 0])
            delta[0] -= 1
            delta[1] -= rating
        for event in self._changed:
            delta = deltas.setdefault(event.distinct_id, [0, 0])
            delta[0] += 1
            delta[1] += event.properties["rating"]
        return deltas

    def _base_reviews(self, indices: list[int]) -> dict[int, tuple[str, int]]:
        """``(reviewer, rating)`` of base reviews, drawn as :meth:`_all_events` draws them."""
        found: dict[int, tuple[str, int]] = {}
        geometry = self._blocks
        by_block: dict[int, set[int]] = {}
        for index in indices:
            by_block.setdefault(index // BLOCK, set()).add(index)
        for block, wanted in by_block.items():
            first = block * BLOCK
            owned = geometry.reviewer_range(geometry.owner(first))
            rng = block_rng(self.settings.seed, "events", block)
            drawn = reviewers_and_ratings(rng, max(wanted) + 1 - first, len(owned))
            for index in wanted:
                reviewer, rating = drawn[index - first]
                found[index] = (f"reviewer-{owned.start + reviewer}", rating)
        return found

    def _all_people(self, blocks: range) -> Iterator[mpconnect.Profile]:
        geometry = self._blocks
        for owner in blocks if geometry.owners > 1 else range(1):
            rng = block_rng(self.settings.seed, "people", owner)
            counts, totals = self._figures_of(owner)
            yield from reviewer_profiles(rng, geometry.reviewer_range(owner), counts, totals)


def _too_old(last: object, generation: int, retention: int) -> str | None:
    """Why the state cannot be continued from (None: it can)."""
    if not isinstance(last, int) or last > generation:
        return f"the state's generation {last!r} is not one this source had"
    if generation - last > retention:
        return (
            f"the state is at generation {last}, older than the {retention} generations "
            "the source keeps changes for"
        )
    return None


def _with_figures(properties: dict[str, Any], figure: list[int] | None) -> dict[str, Any]:
    """The profile's properties with its reviewer's ``reviews_written``,
    ``ratings_total`` and ``average_rating`` (none without reviews)."""
    count, total = figure or (0, 0)
    properties["reviews_written"] = count
    properties["ratings_total"] = total
    properties.pop("average_rating", None)
    if count:
        properties["average_rating"] = average(total, count)
    return properties
