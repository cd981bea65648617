"""The demo's faster ways of drawing and building records give what the plain ways do:
``Random.choice`` / ``randrange`` draws, and events and profiles as their classes'
constructors make them."""

from __future__ import annotations

import dataclasses
import random

import pytest

import mpconnect
from mpconnect.connector import RunContext
from mpconnect_demo import DemoConnector
from mpconnect_demo.reviewers import below
from mpconnect_demo.reviews import SPAN_SECONDS


@pytest.mark.parametrize("size", [*range(1, 41), 1000, SPAN_SECONDS])
def test_below_draws_what_choice_and_randrange_draw(size: int) -> None:
    ours, theirs, ranged = random.Random(size), random.Random(size), random.Random(size)
    options = range(size)

    drawn = [below(ours.getrandbits, size) for _ in range(200)]

    assert drawn == [theirs.choice(options) for _ in range(200)]
    assert drawn == [ranged.randrange(size) for _ in range(200)]
    assert ours.random() == theirs.random() == ranged.random()  # left in the same state


def test_events_and_profiles_are_what_their_constructors_make() -> None:
    connector = DemoConnector(DemoConnector.Settings(events=50, changes=0.1, generation=2))
    ctx = RunContext(source="demo", dataset_id="DEMO")
    records: list[mpconnect.Event | mpconnect.Profile] = [
        *connector.events(ctx),
        *connector.people(ctx),
    ]
    assert {type(record) for record in records} == {mpconnect.Event, mpconnect.Profile}

    for record in records:
        # every field is set (reading one that is not raises AttributeError)
        values = {field.name: getattr(record, field.name) for field in dataclasses.fields(record)}
        assert type(record)(**values) == record
