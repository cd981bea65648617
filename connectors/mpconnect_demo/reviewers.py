"""The reviewers' profiles, as the demo has always drawn them.

Each reviewer takes, from the generator of the block that owns it, a first name, a last
name, a country, a frequent flyer tier and a creation time, drawn as ``Random.choice``
and ``Random.randrange`` draw them (:func:`below`), but without their two Python calls
per draw.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import mpconnect
from mpconnect_demo.reviews import EPOCH_START, SPAN_SECONDS
from mpconnect_demo.vocabulary import COUNTRIES, FIRST_NAMES, LAST_NAMES

#: The stream of reviewers (the cache keys its objects by stream and object id).
REVIEWERS = "reviewers"
TIERS = ("none", "silver", "gold", "platinum")


def below(getrandbits: Callable[[int], int], n: int) -> int:
    """A number in ``0 .. n - 1``, drawn as ``Random.choice`` of ``n`` items and
    ``Random.randrange(n)`` draw it: ``n.bit_length()`` random bits until they are
    below ``n``."""
    bits = n.bit_length()
    drawn = getrandbits(bits)
    while drawn >= n:
        drawn = getrandbits(bits)
    return drawn


def reviewer_profiles(
    rng: random.Random, reviewers: range, counts: list[int], totals: list[int]
) -> Iterator[mpconnect.Profile]:
    """The profiles of ``reviewers``, drawn from ``rng``, with each reviewer's
    ``reviews_written``, ``ratings_total`` and ``average_rating`` (none without
    reviews) from ``counts`` and ``totals`` (indexed by offset in ``reviewers``)."""
    getrandbits = rng.getrandbits
    firsts = [(first, first.lower()) for first in FIRST_NAMES]
    lasts, countries, tiers = LAST_NAMES, COUNTRIES, TIERS
    n_firsts, n_lasts, n_countries, n_tiers = len(firsts), len(lasts), len(countries), len(tiers)
    Profile = mpconnect.Profile
    fromtimestamp = datetime.fromtimestamp
    for index, count, total in zip(reviewers, counts, totals, strict=True):
        first, lower = firsts[below(getrandbits, n_firsts)]
        last = lasts[below(getrandbits, n_lasts)]
        distinct_id = f"reviewer-{index}"
        properties = {
            "$name": f"{first} {last}",
            "$first_name": first,
            "$last_name": last,
            "$email": f"{lower}.{index}@example.com",
            "country": countries[below(getrandbits, n_countries)],
            "frequent_flyer_tier": tiers[below(getrandbits, n_tiers)],
            "$created": fromtimestamp(EPOCH_START - below(getrandbits, SPAN_SECONDS), UTC),
            "reviews_written": count,
            "ratings_total": total,
        }
        if count:
            properties["average_rating"] = average(total, count)
        # Positional arguments (distinct_id, set, set_once, add, union, append, remove,
        # unset, object_id, stream): keywords cost twice as much here.
        yield Profile(distinct_id, properties, {}, {}, {}, {}, {}, [], distinct_id, REVIEWERS)


@functools.cache
def average(total: int, count: int) -> float:
    """A reviewer's ``average_rating`` (the same few pairs recur: cached)."""
    return round(total / count, 3)
