"""How the demo source changes between generations, deterministically.

Generation 0 is the ``events`` base reviews. Each generation ``h`` after it touches
``k = round(events * changes)`` reviews (at least one when ``changes`` is set): a third
of them is updated, a third deleted (for good), the rest are new reviews. The reviews
touched are drawn from those that exist at the start of ``h``, with a random generator
seeded by ``(seed, h)``: the same settings give the same history everywhere. Memory holds
the touched reviews only, never the whole source.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


class History:
    """The demo source at ``generation``: which reviews are deleted, which have been
    updated (and in which generation), which are new."""

    def __init__(self, seed: int, base: int, changes: float, generation: int) -> None:
        self.seed = seed
        self.base = base
        self.generation = generation
        touched = round(base * changes) if changes else 0
        if changes and base:
            touched = max(touched, 1)
        self.updates = self.deletes = touched // 3
        self.new = touched - 2 * (touched // 3)
        #: The generation in which each review was last updated or born (base: absent).
        self.versions: dict[int, int] = {}
        #: Reviews deleted by ``generation``, with the generation that deleted them.
        self.deleted: dict[int, int] = {}
        for h in range(1, generation + 1):
            updated, deleted = self._touched(h)
            for index in self._born_in(h):
                self.versions[index] = h
            for index in updated:
                self.versions[index] = h
            for index in deleted:
                self.deleted.setdefault(index, h)

    def _existing(self, h: int) -> int:
        """Reviews ``0 .. N`` that exist (or existed) at the start of generation ``h``."""
        return self.base + (h - 1) * self.new

    def _born_in(self, h: int) -> range:
        start = self._existing(h)
        return range(start, start + self.new)

    def _touched(self, h: int) -> tuple[list[int], list[int]]:
        rng = random.Random(f"{self.seed}:generation:{h}")
        picked = rng.sample(range(self._existing(h)), min(self._existing(h), 2 * self.updates))
        return picked[: self.updates], picked[self.updates :]

    def existing_after(self) -> int:
        """Reviews ``0 .. N`` that exist (or existed) at the end of this generation."""
        return self._existing(self.generation + 1)

    def born(self) -> range:
        """Reviews added after generation 0, up to this generation."""
        return range(self.base, self._existing(self.generation + 1))

    def version(self, index: int) -> int:
        """The generation that last touched the review (0: as in the base)."""
        return self.versions.get(index, 0)

    def changed_since(self, last: int) -> Iterator[int]:
        """Reviews new or updated after generation ``last`` and not deleted, in order."""
        for index in sorted(self.versions):
            if self.versions[index] > last and index not in self.deleted:
                yield index

    def deleted_since(self, last: int) -> Iterator[int]:
        """Reviews deleted after generation ``last``."""
        for index in sorted(self.deleted):
            if self.deleted[index] > last:
                yield index
