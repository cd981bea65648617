"""Fixtures of the Stripe connector's tests: the local Stripe API and the accounts it serves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from stripe_examples import build_small_world

from mpconnect_stripe.localserver.api import StripeAPI
from mpconnect_stripe.localserver.world import World


@pytest.fixture
def stripe_api() -> Iterator[Callable[..., StripeAPI]]:
    """Start local Stripe APIs: ``stripe_api(world, rate_limit=..., latency=...)``."""
    started: list[StripeAPI] = []

    def start(world: World, **options: Any) -> StripeAPI:
        api = StripeAPI(world, **options).start()
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def small_world() -> SimpleNamespace:
    """The hand-made account of :func:`build_small_world`."""
    return build_small_world()
