"""How the demo's data is cut into blocks, so that it is the same however it is partitioned.

Reviews are drawn in blocks of :data:`BLOCK`, each from its own random generator. When
there are at least as many reviewers as blocks, each block *owns* a range of reviewers:
its reviews (base, updated or new) are written by them only, so a partition (a range of
whole blocks) holds its reviewers' profiles together with every review their figures sum.
"""

from __future__ import annotations

import random

#: Reviews generated from one random seed.
BLOCK = 10_000
#: Events from which the demo is read in :data:`DEFAULT_PARTITIONS` partitions by default.
PARTITION_FROM = 100_000
DEFAULT_PARTITIONS = 8


def block_rng(seed: int, kind: str, block: int) -> random.Random:
    """The random generator of one block of reviews (``kind`` ``events``) or of the
    reviewers one block owns (``people``); block 0 draws as the demo always has."""
    if block == 0:
        return random.Random(seed if kind == "events" else seed + 1)
    return random.Random(f"demo:{seed}:{kind}:{block}")


class Blocks:
    """The blocks of ``events`` reviews by ``reviewers`` reviewers."""

    def __init__(self, events: int, reviewers: int) -> None:
        self.events = events
        self.reviewers = reviewers
        #: Blocks of base reviews.
        self.count = max(1, -(-events // BLOCK))
        #: Blocks owning a range of reviewers (1: every review may be by any reviewer).
        self.owners = self.count if reviewers >= self.count else 1

    def owner(self, index: int) -> int:
        """The block whose reviewers write review ``index`` (new reviews: the last)."""
        return min(index // BLOCK, self.owners - 1)

    def reviewer_range(self, owner: int) -> range:
        """The reviewers owned by block ``owner``."""
        owners, reviewers = self.owners, self.reviewers
        return range(reviewers * owner // owners, reviewers * (owner + 1) // owners)

    def part(self, part: int, parts: int) -> range:
        """Blocks of partition ``part`` of ``parts`` (ranges of whole owner blocks)."""
        if parts <= 1:
            return range(self.count)
        return range(self.owners * part // parts, self.owners * (part + 1) // parts)

    def events_of(self, blocks: range) -> range:
        """Indices of the base reviews in ``blocks``."""
        return range(min(self.events, blocks.start * BLOCK), min(self.events, blocks.stop * BLOCK))
