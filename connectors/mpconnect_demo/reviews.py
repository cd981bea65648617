"""The base reviews of one block, as the demo has always drawn them.

Review ``i`` of a block takes draws ``7 i .. 7 i + 6`` of the block's generator: its
time, rating, reviewer, airline, cabin class, seat comfort and value for money, each
``options[int(random() * len(options))]``. The loop that turns them into events is the
demo's hottest code (``python bench/per_record.py``, first line), so it keeps to local
names and the cheapest operations that give the same values.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from math import floor

import mpconnect
from mpconnect_demo.vocabulary import AIRLINES, CABIN_DRAWS

EPOCH_START = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
SPAN_SECONDS = 2 * 365 * 86400
#: Random draws per review.
DRAWS = 7
#: The stream of reviews: the cache keys its objects by (stream, object id).
REVIEWS = "reviews"


def base_reviews(
    rng: random.Random, reviews: range, owned: range, counts: list[int], totals: list[int]
) -> Iterator[mpconnect.Event]:
    """The base reviews ``reviews`` (the first of a block onwards), drawn from the
    block's generator ``rng``, by the reviewers ``owned``. Each review is counted as it
    is yielded: ``counts`` and ``totals`` (indexed by offset in ``owned``) gain one
    review and its rating."""
    rand = rng.random
    names = [f"reviewer-{number}" for number in owned]
    days = review_days()
    # floor(x) is int(x) for x >= 0, and cheaper; float factors are cheaper than int
    # ones and give the same products.
    seconds, reviewers = float(SPAN_SECONDS), float(len(owned))
    airlines, n_airlines = AIRLINES, float(len(AIRLINES))
    cabins, n_cabins = CABIN_DRAWS, float(len(CABIN_DRAWS))
    epoch = EPOCH_START
    Event = mpconnect.Event
    new = object.__new__
    prefix, suffixes = _id_parts(reviews)
    for suffix in suffixes:
        offset = floor(rand() * seconds)
        rating = 1 + floor(rand() * 10.0)
        reviewer = floor(rand() * reviewers)
        counts[reviewer] += 1
        totals[reviewer] += rating
        # Setting an Event's fields directly costs half of calling Event(...) here.
        event = new(Event)
        event.name = "Airline Review"
        event.distinct_id = names[reviewer]
        event.time = epoch + offset
        event.object_id = prefix + suffix
        event.properties = {
            "airline_name": airlines[floor(rand() * n_airlines)],
            "rating": rating,
            "cabin_class": cabins[floor(rand() * n_cabins)],
            "recommended": rating >= 7,
            "seat_comfort": 1 + floor(rand() * 5.0),
            "value_for_money": 1 + floor(rand() * 5.0),
            "review_date": days[offset // 86400],
        }
        event.insert_id = None
        event.unattributed = False
        event.stream = REVIEWS
        yield event


def reviewers_and_ratings(rng: random.Random, count: int, owned: int) -> list[tuple[int, int]]:
    """``(reviewer offset, rating)`` of the first ``count`` base reviews of a block,
    drawn as :func:`base_reviews` draws them, by ``owned`` reviewers."""
    rand = rng.random
    reviewers = float(owned)
    found = []
    for _ in range(count):
        rand()  # the time
        rating = 1 + floor(rand() * 10.0)
        found.append((floor(rand() * reviewers), rating))
        rand(), rand(), rand(), rand()  # airline, cabin, seat comfort, value for money
    return found


def _id_parts(reviews: range) -> tuple[str, list[str]]:
    """``review-{index}`` of each of ``reviews`` as a prefix and suffixes to join to it,
    which costs less than formatting each number."""
    chunk, first = divmod(reviews.start, _CHUNK)
    if reviews and (reviews.stop - 1) // _CHUNK != chunk:
        raise ValueError(f"reviews {reviews} span more than one run of {_CHUNK:,}")
    prefix, suffixes = ("review-", _numbers()) if chunk == 0 else (f"review-{chunk}", _padded())
    return prefix, suffixes[first : first + len(reviews)]


#: Review ids are ``review-``, ``index // _CHUNK`` and the rest, zero-padded (blocks
#: of :data:`mpconnect_demo.blocks.BLOCK` reviews lie within one chunk).
_CHUNK = 10_000


@functools.cache
def _numbers() -> list[str]:
    """``"0" .. "9999"``."""
    return [str(number) for number in range(_CHUNK)]


@functools.cache
def _padded() -> list[str]:
    """``"0000" .. "9999"``."""
    return [f"{number:04d}" for number in range(_CHUNK)]


@functools.cache
def review_days() -> list[str]:
    """The ``review_date`` of each day of the demo's span (``2023-01-01`` ...)."""
    return [
        datetime.fromtimestamp(EPOCH_START + day * 86400, UTC).date().isoformat()
        for day in range(SPAN_SECONDS // 86400 + 1)
    ]
