"""The shared bucket through a real Redis (``redis-server`` on a free loopback port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpconnect.transport.bucket import SharedBucket, shared_bucket

pytest.importorskip("redis", reason="pip install redis (the distributed extra) to run these")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_two_clients_of_one_redis_share_the_budget_and_its_cuts(redis_url: str) -> None:
    first = shared_bucket("mixpanel", "project-token", [100.0], redis_url=redis_url)
    second = shared_bucket("mixpanel", "project-token", [100.0], redis_url=redis_url)
    assert first.take(100) == 0.0
    assert second.take(50) > 0.4  # the first took the burst
    second.throttled(retry_after=3)
    assert first.current_rates()[0] < 51.0
    assert first.take(1) >= 2.5


def test_concurrent_takes_are_all_counted(redis_url: str) -> None:
    import threading

    bucket = shared_bucket("stripe", "sk_test_x", [10.0], redis_url=redis_url)
    threads = [
        threading.Thread(target=lambda: [bucket.take(1) for _ in range(25)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bucket.snapshot()["taken"] == [100.0]  # no transaction lost another's take
    assert isinstance(bucket, SharedBucket)
