"""One large source in partitions on Celery workers: N demo events in P partitions into
a null HTTPS sink (nginx answering at once), on one worker process and on two.

    python bench/distributed_partitions.py --events 1000000 --partitions 8 --slots 1,2

Starts a real redis-server and PostgreSQL 15 (as tests/distributed does) and nginx,
then for each slot count starts one ``mpconnect worker --concurrency N`` and runs
``mpconnect dispatch demo --wait``. Prints events/s of the whole run, CPU seconds (user
+ system of the worker and its pool processes, read from /proc every 0.1 s) per million
events, and how many partitions each worker process read. The project's import budget
(``[engine] project_rate_limit``) is off: the null sink is no Mixpanel project, and the
budget (27,000 events/s by default) would otherwise be what is measured. Needs nginx.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "distributed"))
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(Path(__file__).parent))
from _util import null_server  # noqa: E402
from cluster import Cluster  # noqa: E402
from processes import _cpu_seconds, _descendants  # noqa: E402
from real_servers import PostgresServer, RedisServer  # noqa: E402


def _sources(url: str, ca: Path, events: int, partitions: int) -> str:
    return (
        '[mixpanel]\nsink = "datasets"\n'
        f'api_url = "{url}"\nproject_token = "benchtoken"\nsecret = "${{BENCH_SECRET}}"\n'
        f'ca_bundle = "{ca}"\n'
        # The project's import budget (27,000 events/s by default) would cap a null sink.
        "[engine]\nlive_timeout = 120\nproject_rate_limit = false\n"
        '[sources.demo]\nconnector = "demo"\ndataset_id = "DEMO"\nsync = "full"\n'
        f"[sources.demo.settings]\nevents = {events}\npartitions = {partitions}\n"
    )


def measure(slots: int, args: argparse.Namespace, pg: PostgresServer, redis: RedisServer) -> None:
    """One worker with ``slots`` pool processes: dispatch the source, print figures."""
    with tempfile.TemporaryDirectory(prefix="mpconnect-bench-dparts-") as tmp:
        directory = Path(tmp)
        server, url, ca = null_server(directory)
        cluster = Cluster(
            directory / "cluster",
            redis.url,
            pg.create_database(),
            _sources(url, ca, args.events, args.partitions),
        )
        cluster.env["BENCH_SECRET"] = "benchsecret"
        try:
            worker = cluster.worker("w", concurrency=slots)
            cpu_seen: dict[int, float] = {}
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.1):
                    for pid in [worker.pid, *_descendants(worker.pid)]:
                        cpu_seen[pid] = max(cpu_seen.get(pid, 0.0), _cpu_seconds(pid))

            before = {pid: _cpu_seconds(pid) for pid in [worker.pid, *_descendants(worker.pid)]}
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            ran = cluster.cli("dispatch", "demo", "--wait", timeout=3600)
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            if ran.returncode != 0:
                raise SystemExit(f"the run failed:\n{ran.stdout}\n{ran.stderr}")
            cpu = sum(cpu_seen.values()) - sum(before.values())
            readers = cluster.query(
                "SELECT worker, count(*) AS n FROM partitions GROUP BY worker ORDER BY worker"
            )
            spans = cluster.query("SELECT worker, started_at, ended_at FROM partitions")
        finally:
            cluster.close()
            server.terminate()
            server.wait(10)
    shares = ", ".join(str(r["n"]) for r in readers)
    first = min(r["started_at"] for r in spans)
    busy = sum(r["ended_at"] - r["started_at"] for r in spans)
    last = max(r["ended_at"] for r in spans)
    print(
        f"1 worker --concurrency {slots}: {args.events / seconds:,.0f} events/s "
        f"({seconds:.1f} s); CPU {cpu / args.events * 1e6:.1f} s per 1M events; "
        f"partitions per process: {shares}; partitions read {last - first:.1f} s, "
        f"{busy / (last - first):.2f} at once on average"
    )


def main() -> None:
    """Parse the options and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--slots", default="1,2", help="comma-separated --concurrency values")
    args = parser.parse_args()
    print(
        f"events: {args.events:,} in {args.partitions} partitions; cores: {os.cpu_count()}; "
        "sink: null (nginx); broker: redis; ledger: PostgreSQL"
    )
    pg, redis = PostgresServer().start(), RedisServer().start()
    try:
        for slots in (int(n) for n in args.slots.split(",")):
            measure(slots, args, pg, redis)
    finally:
        pg.close()
        redis.close()


if __name__ == "__main__":
    main()
