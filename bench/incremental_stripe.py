"""Benchmark incremental Stripe runs against full ones (the Stripe part of issue 16).

The local Stripe API runs in its own process (``--serve`` mode of this script) over a
generated account of about ``--objects`` objects, with a network latency per request.
This process runs the connector as the engine would, keeping its state and a stand-in
for the engine's source-object cache (record hashes by object):

1. a first, full run;
2. the server changes ``--changed`` of the objects (new charges and customers, refunds,
   customer updates, subscription changes and cancellations, customer deletions), each
   change recording its Stripe events;
3. the second run, incremental, and then a full run of the same account.

Printed for the second run, incremental against full: source requests, records read (the
records the connector yielded), records sent (new or changed against the cache: what an
incremental run sends to the ingestion sink; a full run sends them all), wall time, and
the connector's peak memory (tracemalloc; the cache stand-in excluded).

Goal: at least 20x fewer source requests and records sent; at least 5x faster; memory
flat. Run: ``python bench/incremental_stripe.py [--objects 100000] [--changed 0.01]``
(a few minutes; about 1 GB of memory for the server process at 100,000 objects).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mpconnect import RunContext
from mpconnect_stripe import StripeConnector, StripeSettings

OBJECTS_PER_CUSTOMER = 9.5  # what the generator makes on average with default options


@dataclass
class Run:
    """One run's figures."""

    full: bool
    requests: int
    read: int
    sent: int
    seconds: float
    peak_mb: float


class Source:
    """The connector's state and the cache stand-in: one hash per record, by object, in a
    SQLite file (as the engine keeps it: outside the connector's memory)."""

    def __init__(self, settings: StripeSettings, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.state: dict[str, Any] = {}
        state_dir.mkdir(parents=True)
        self.db = sqlite3.connect(state_dir.with_suffix(".cache.sqlite3"))
        for table in ("cache", "pending"):
            self.db.execute(
                f"CREATE TABLE {table} (stream TEXT, object_id TEXT, seq INTEGER, hash BLOB,"
                " PRIMARY KEY (stream, object_id, seq))"
            )
        self.db.execute("CREATE TABLE deleted (stream TEXT, object_id TEXT)")

    def run(self, *, full: bool) -> Run:
        """Run once; count the records whose content is new to the cache."""
        db = self.db
        db.execute("DELETE FROM pending")
        db.execute("DELETE FROM deleted")
        reasons: list[str] = []
        seqs: dict[tuple[str, str], int] = {}
        ctx = RunContext(
            source="bench",
            dataset_id="BENCH",
            log=logging.getLogger("bench"),
            state_dir=self.state_dir,
            state=json.loads(json.dumps(self.state)),
            full_refresh=full,
            deleted=lambda stream, object_id: db.execute(
                "INSERT INTO deleted VALUES (?, ?)", (stream, object_id)
            ),
            read_everything=reasons.append,
        )
        connector = StripeConnector(self.settings)
        tracemalloc.start()
        started = time.perf_counter()
        read = 0
        for record in _iterate(connector, ctx):
            read += 1
            key = (record.stream or "", record.object_id or "")
            seq = seqs[key] = seqs.get(key, -1) + 1
            digest = hashlib.blake2b(orjson.dumps(record.to_mixpanel("t"))).digest()
            db.execute("INSERT INTO pending VALUES (?, ?, ?, ?)", (*key, seq, digest))
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        connector.close()
        full = full or bool(reasons)
        if full:
            sent = read
            db.execute("DELETE FROM cache")
        else:
            (sent,) = db.execute(
                "SELECT count(*) FROM pending p WHERE NOT EXISTS (SELECT 1 FROM cache c WHERE"
                " c.stream = p.stream AND c.object_id = p.object_id AND c.seq = p.seq"
                " AND c.hash = p.hash)"
            ).fetchone()
            db.execute(
                "DELETE FROM cache WHERE (stream, object_id) IN"
                " (SELECT stream, object_id FROM pending UNION SELECT stream, object_id"
                " FROM deleted)"
            )
        db.execute("INSERT INTO cache SELECT * FROM pending")
        db.commit()
        self.state = ctx.state
        return Run(full, connector.requests, read, sent, seconds, peak / 1e6)


def _iterate(connector: StripeConnector, ctx: RunContext) -> Any:
    yield from connector.events(ctx)
    yield from connector.people(ctx)


class Server:
    """This script in ``--serve`` mode: the local Stripe API, changed on request."""

    def __init__(self, customers: int, latency: float) -> None:
        args = [sys.executable, __file__, "--serve", str(customers), "--latency", str(latency)]
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url, self.key, objects = self.process.stdout.readline().split()
        self.objects = int(objects)

    def change(self, count: int) -> str:
        """Make ``count`` changes; return what was changed."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def requests(self) -> int:
        """Requests served so far."""
        with urllib.request.urlopen(f"{self.url}/_local/stats", timeout=10) as answer:
            return int(json.load(answer)["requests"])

    def close(self) -> None:
        """Stop the server process."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(60)


def serve(customers: int, latency: float) -> None:
    """``--serve``: generate, serve, and make changes as stdin asks (one count a line)."""
    from mpconnect_stripe.localserver.api import TEST_KEY, StripeAPI
    from mpconnect_stripe.localserver.generate import generate

    world = generate(7, customers)
    world.record_events()
    api = StripeAPI(world, latency=latency).start()
    objects = sum(len(objects) for objects in world.lists().values())
    print(api.url, TEST_KEY, objects, flush=True)
    rng = random.Random(7)
    for line in sys.stdin:
        done: dict[str, int] = {}
        for _ in range(int(line)):
            kind = _change(world, rng)
            done[kind] = done.get(kind, 0) + 1
        print(", ".join(f"{n} {kind}" for kind, n in sorted(done.items())), flush=True)
    api.stop()


def _change(world: Any, rng: random.Random) -> str:
    """One random change of the kinds an account sees every day."""
    now = world.now()
    people = list(world.customers.values())
    roll = rng.random()
    customer = rng.choice(people)
    if roll < 0.40:
        world.add_charge(customer, rng.randrange(500, 20_000), now)
        return "new charges"
    if roll < 0.55:
        charges = [c for c in world.charges.values() if c["status"] == "succeeded"]
        charge = rng.choice(charges)
        if charge["amount_refunded"] < charge["amount"]:
            world.add_refund(charge, charge["amount"] - charge["amount_refunded"], now)
            return "refunds"
    if roll < 0.70:
        world.update_customer(customer, name=f"{customer['name']} Jr.")
        return "customer updates"
    if roll < 0.80:
        world.add_customer(now, email=f"new{len(world.order)}@example.com", name="New")
        return "new customers"
    if roll < 0.95:
        live = [s for s in world.subscriptions.values() if s["status"] == "active"]
        subscription = rng.choice(live)
        if rng.random() < 0.5:
            world.change_quantity(subscription, subscription["items"]["data"][0]["quantity"] + 1)
            return "subscription changes"
        world.cancel_subscription(subscription, now)
        return "subscription cancellations"
    world.delete_customer(customer)
    return "customer deletions"


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of objects changed")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--rate", type=float, default=100.0, help="max_requests_per_second")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.latency)
        return

    server = Server(int(args.objects / OBJECTS_PER_CUSTOMER), args.latency)
    try:
        settings = StripeSettings(
            api_key=server.key, api_base=server.url, max_requests_per_second=args.rate
        )
        with tempfile.TemporaryDirectory() as tmp:
            source = Source(settings, Path(tmp) / "state")
            first = source.run(full=True)
            changes = int(server.objects * args.changed)
            print(f"account: {server.objects} objects; latency {args.latency * 1000:.0f} ms")
            print(f"first run (full): {first.read} records, {first.seconds:.1f} s")
            print(f"changes: {server.change(changes)}")
            incremental = source.run(full=False)
            full = Source(settings, Path(tmp) / "full").run(full=True)
    finally:
        server.close()
    assert not incremental.full, "the second run was not incremental"
    print(f"\nsecond run:       {'incremental':>12} {'full':>12} {'ratio':>8}")
    for label, a, b in (
        ("source requests", incremental.requests, full.requests),
        ("records read", incremental.read, full.read),
        ("records sent", incremental.sent, full.sent),
    ):
        print(f"{label:<17} {a:>12} {b:>12} {b / max(a, 1):>7.1f}x")
    print(
        f"{'wall time (s)':<17} {incremental.seconds:>12.2f} {full.seconds:>12.2f} "
        f"{full.seconds / incremental.seconds:>7.1f}x"
    )
    print(f"{'peak memory (MB)':<17} {incremental.peak_mb:>12.1f} {full.peak_mb:>12.1f}")


if __name__ == "__main__":
    main()
