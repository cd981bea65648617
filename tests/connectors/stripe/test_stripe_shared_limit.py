"""Runs reading one Stripe account at once share its request budget.

Stripe allows 25 requests/s per account in test mode (100 in live mode); the local server
answers 429 past that. Two runs read the same account at once, each with every stream in
parallel: by default they use 90 % of the limit together, so the server refuses none.
What is checked is what the server counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from mpconnect.testing import Collected, run_connector
from mpconnect_stripe import StripeConnector
from mpconnect_stripe.localserver.api import TEST_KEY
from mpconnect_stripe.localserver.generate import generate

pytestmark = pytest.mark.timeout(180)
STRIPE_TEST_MODE_LIMIT = 25.0


def test_two_runs_share_the_accounts_budget_without_a_429(
    stripe_api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPCONNECT_HOME", str(tmp_path / "home"))
    world = generate(seed=5, customers=600)
    api = stripe_api(world, latency=0.01)
    api.set_rate_limit(STRIPE_TEST_MODE_LIMIT, burst=STRIPE_TEST_MODE_LIMIT)
    settings = {"api_key": TEST_KEY, "api_base": api.url}  # the default: 90 % of 25/s
    results: list[Collected] = []

    def read() -> None:
        results.append(run_connector(StripeConnector, settings))

    runs = [threading.Thread(target=read) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(results) == 2
    for collected in results:
        assert Counter(e["event"] for e in collected.events) == Counter(
            e.name for e in world.expected
        )
    assert api.stats.throttled == 0
    served = sorted(api.stats.served_at)
    rate = (len(served) - 1) / (served[-1] - served[0])
    share = rate / STRIPE_TEST_MODE_LIMIT
    assert 0.85 <= share <= 1.0, f"{len(served)} requests at {rate:.1f}/s ({share:.0%})"
