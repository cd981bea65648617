"""Benchmark the Stripe connector's extraction against the local Stripe API.

For each rate limit N the local Stripe API (a separate process, answering 429 above N
requests/s, with a network latency) serves an account sized for about ``--seconds`` of
reading; the connector reads it with ``max_requests_per_second = N``. Printed per N:

- requests/s achieved over the whole run (start-up and people included), and as a
  fraction of N (target: at least 90 %), at a LAN-like and at a Stripe-like latency;
- 429s received (target: none: the run must not lean on retries);
- events/s produced (each validated as the engine validates it).

Then the connector's own ceiling (no rate limit, no latency), and its peak memory for
two accounts with the same customers but ten times the charges (memory should follow
customers, not charges).

Run: ``/work/venv/bin/python bench/stripe_extract.py [--rates 20 25 50 100] [--seconds 8]``
(about three minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from dataclasses import dataclass

from mpconnect import RunContext
from mpconnect_stripe import StripeConnector, StripeSettings

SERVER = ["-m", "mpconnect_stripe.localserver.api"]  # the server of `mpconnect serve stripe`
OBJECTS_PER_CUSTOMER = 9.5  # what the generator makes on average with default options


@dataclass
class Result:
    """One extraction: what was read, how long it took, what the server saw."""

    events: int
    people: int
    seconds: float
    served: int
    throttled: int
    peak_mb: float | None = None


class LocalStripe:
    """The local Stripe API in its own process (so it does not share our GIL)."""

    def __init__(
        self,
        customers: int,
        *,
        rate: float | None = None,
        latency: float = 0.0,
        charges: tuple[int, int] = (0, 3),
        seed: int = 1,
    ) -> None:
        args = [
            sys.executable,
            *SERVER,
            "--port",
            "0",
            "--until-eof",
            "--seed",
            str(seed),
            "--customers",
            str(customers),
            "--latency",
            str(latency),
            "--charges-per-customer",
            str(charges[0]),
            str(charges[1]),
        ]
        if rate:
            args += ["--rate", str(rate)]
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line:
            raise RuntimeError("the local Stripe API did not start")
        self.url = line[0]
        self.key = line[1].removeprefix("key=")
        self.counts = dict(part.split("=") for part in line[2:])

    def stats(self) -> dict:
        """The server's request counts."""
        with urllib.request.urlopen(f"{self.url}/_local/stats", timeout=10) as answer:
            return json.load(answer)

    def close(self) -> None:
        """Stop the server process."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)

    def __enter__(self) -> LocalStripe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def extract(server: LocalStripe, rate: float, *, trace_memory: bool = False) -> Result:
    """Read the whole account as a run would: events to the end, then people."""
    settings = StripeSettings(api_key=server.key, api_base=server.url, max_requests_per_second=rate)
    connector = StripeConnector(settings)
    ctx = RunContext(source="bench", dataset_id="BENCH")
    if trace_memory:
        tracemalloc.start()
    started = time.perf_counter()
    events = sum(1 for event in connector.events(ctx) if event.to_mixpanel("t"))
    people = sum(1 for profile in connector.people(ctx) if profile.to_mixpanel("t"))
    seconds = time.perf_counter() - started
    peak = None
    if trace_memory:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    stats = server.stats()
    return Result(
        events,
        people,
        seconds,
        stats["by_status"].get("200", 0),
        stats["by_status"].get("429", 0),
        peak,
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20, 25, 50, 100])
    parser.add_argument("--seconds", type=float, default=8.0, help="reading time per rate")
    parser.add_argument(
        "--latencies",
        type=float,
        nargs="+",
        default=[0.03, 0.3],
        help="server latencies (s); the first applies to every rate, the "
        "others to the first two rates",
    )
    args = parser.parse_args()

    print("local Stripe API in its own process, answering 429 above N requests/s")
    print(
        f"{'N':>5} {'latency':>7} {'objects':>8} {'requests':>8} {'req/s':>6} {'of N':>6} "
        f"{'429s':>4} {'events':>7} {'events/s':>8} {'seconds':>7}"
    )
    cases = [(rate, args.latencies[0]) for rate in args.rates]
    cases += [(rate, latency) for latency in args.latencies[1:] for rate in args.rates[:2]]
    for rate, latency in cases:
        customers = int(rate * args.seconds * 100 / OBJECTS_PER_CUSTOMER)
        with LocalStripe(customers, rate=rate, latency=latency) as server:
            objects = sum(int(n) for n in server.counts.values())
            result = extract(server, rate)
        achieved = result.served / result.seconds
        print(
            f"{rate:>5.0f} {latency * 1000:>5.0f}ms {objects:>8} {result.served:>8} "
            f"{achieved:>6.1f} {achieved / rate:>6.1%} {result.throttled:>4} "
            f"{result.events:>7} {result.events / result.seconds:>8.0f} {result.seconds:>7.2f}"
        )

    with LocalStripe(3000) as server:
        result = extract(server, 10_000)
    print(
        f"\nceiling (no limit, no latency): {result.served / result.seconds:.0f} requests/s, "
        f"{result.events / result.seconds:.0f} events/s, "
        f"{(result.events + result.people) / result.seconds:.0f} records/s "
        f"({result.events} events, {result.people} profiles in {result.seconds:.2f} s)"
    )

    print("\npeak memory of the connector (tracemalloc, no rate limit), 500 customers:")
    for charges in ((0, 3), (30, 60), (60, 120)):
        with LocalStripe(500, charges=charges) as server:
            result = extract(server, 10_000, trace_memory=True)
            print(
                f"  {server.counts['charges']:>6} charges, {result.events:>6} events: "
                f"peak {result.peak_mb:.1f} MB"
            )


if __name__ == "__main__":
    main()
