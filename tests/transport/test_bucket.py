"""The shared token bucket: reservations, AIMD on 429, sharing across processes."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from mpconnect.transport.bucket import FileBackend, SharedBucket, bucket_key, shared_bucket


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, clock: Clock, rates: tuple[float, ...] = (100.0,)) -> SharedBucket:
    return SharedBucket("mixpanel-test", rates, FileBackend(tmp_path), clock=clock)


def test_a_burst_goes_at_once_then_requests_wait_their_turn(tmp_path: Path) -> None:
    clock = Clock()
    bucket = make(tmp_path, clock)
    assert bucket.take(100) == 0.0  # one second's worth, at once
    assert bucket.take(50) == pytest.approx(0.5)
    assert bucket.take(200) == pytest.approx(2.5)  # larger than the burst: waits, in debt
    clock.now += 2.5
    assert bucket.take(0) == 0.0


def test_every_dimension_limits(tmp_path: Path) -> None:
    clock = Clock()
    bucket = make(tmp_path, clock, rates=(100.0, 1000.0))
    assert bucket.take(10, 1000) == 0.0
    assert bucket.take(10, 2000) == pytest.approx(2.0)  # bytes, not events, are short


def test_a_429_halves_the_rate_once_and_it_recovers_additively(tmp_path: Path) -> None:
    clock = Clock()
    bucket = make(tmp_path, clock)
    bucket.throttled()
    bucket.throttled()  # refused together: one cut, not two
    assert bucket.current_rates() == [pytest.approx(50.0)]
    clock.now += 5  # the cooldown is over: a later 429 cuts again
    bucket.throttled()
    assert bucket.current_rates() == [pytest.approx(30.0)]  # (0.5 + 5 x 0.02) x 0.5
    clock.now += 4
    assert bucket.current_rates() == [pytest.approx(38.0)]  # + 0.02 of the ceiling per second
    clock.now += 6
    # but only up to 70 % of the rate refused (60 x 0.7 = 42), a ceiling that itself
    # creeps up by 0.1 % of the configured one a second
    assert bucket.current_rates() == [pytest.approx(43.0)]
    clock.now += 1000
    assert bucket.current_rates() == [pytest.approx(100.0)]  # never above the configured
    assert bucket.snapshot()["refused"] == 3


def test_retry_after_holds_every_taker(tmp_path: Path) -> None:
    clock = Clock()
    bucket = make(tmp_path, clock)
    bucket.throttled(retry_after=7)
    other_run = make(tmp_path, clock)
    assert other_run.take(1) >= 7.0


def test_the_key_never_holds_the_secret(tmp_path: Path) -> None:
    bucket = shared_bucket("mixpanel", "tok_very_secret", [10.0], home=tmp_path)
    bucket.take(1)
    assert "tok_very_secret" not in bucket.key
    for path in tmp_path.rglob("*"):
        assert "tok_very_secret" not in path.name
        if path.is_file():
            assert b"tok_very_secret" not in path.read_bytes()
    assert bucket_key("stripe", "a") != bucket_key("stripe", "b")


def _spend(directory: str, rate: float, count: int, out: multiprocessing.Queue) -> None:
    bucket = SharedBucket("stripe-shared", [rate], FileBackend(Path(directory)))
    sent = []
    for _ in range(count):
        wait = bucket.take(1)
        if wait > 0:
            time.sleep(wait)
        sent.append(time.time())
    out.put(sent)


def test_two_processes_share_one_budget(tmp_path: Path) -> None:
    """Two processes each sending 30 requests through one 40/s bucket: together they
    take as long as 60 requests at 40/s, not 30 (each would if it had its own)."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_spend, args=(str(tmp_path), 40.0, 30, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    sends = sorted(out.get(timeout=60) + out.get(timeout=60))
    for proc in procs:
        proc.join(timeout=30)
    assert len(sends) == 60
    # 60 requests with a burst of 40 at 40/s: the last cannot go before 0.5 s after the
    # first. Reservations are what is checked: each request reserved a token in the file.
    state = SharedBucket("stripe-shared", [40.0], FileBackend(tmp_path)).snapshot()
    assert state["taken"] == [60.0]  # no reservation of either process was lost
    assert sends[-1] - sends[0] >= (60 - 40) / 40.0 - 0.05
