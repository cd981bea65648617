"""Many small sources dispatched at once onto Celery workers: runs per minute.

    python bench/distributed_dispatch.py --sources 50 --events 200

Starts a real redis-server and PostgreSQL 15 (as tests/distributed does), then for one
and for two workers (``--concurrency`` each) dispatches every source with
``mpconnect dispatch --all --wait`` and prints the wall time and runs per minute; and, as
the baseline, ``mpconnect run --all`` on one machine (one run after another). Also
prints the shared database's connections at peak and the rows it holds per run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "distributed"))
from cluster import Cluster, demo_sources  # noqa: E402
from real_servers import PostgresServer, RedisServer  # noqa: E402


def measure(workers: int, args: argparse.Namespace, pg: PostgresServer, redis: RedisServer) -> None:
    """Dispatch every source onto ``workers`` workers and print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(
            Path(tmp), redis.url, pg.create_database(), demo_sources(args.sources, args.events)
        )
        try:
            for i in range(workers):
                cluster.worker(f"w{i}", concurrency=args.concurrency)
            started = time.perf_counter()
            done = cluster.cli("dispatch", "--all", "--wait", "--quiet", timeout=3600)
            seconds = time.perf_counter() - started
            assert done.returncode == 0, done.stderr[-2000:]
            peak = cluster.query("SELECT count(*) AS n FROM pg_stat_activity")[0]["n"]
            rows = sum(
                cluster.query(f"SELECT count(*) AS n FROM {table}")[0]["n"]
                for table in ("runs", "batches", "run_phases", "dispatches")
            )
            print(
                f"{workers} worker(s) x {args.concurrency}: {args.sources} runs in {seconds:.1f} s "
                f"= {args.sources / seconds * 60:.0f} runs/min; {rows / args.sources:.1f} rows "
                f"per run in PostgreSQL; {peak} connections after"
            )
        finally:
            cluster.close()


def baseline(args: argparse.Namespace) -> None:
    """``mpconnect run --all`` on one machine, for comparison."""
    import os
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mpconnect.toml"
        config.write_text(demo_sources(args.sources, args.events))
        env = {
            **os.environ,
            "MPCONNECT_HOME": str(Path(tmp) / "home"),
            "MPCONNECT_CONFIG": str(config),
        }
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mpconnect", "run", "--all", "--quiet"], env=env, check=True
        )
        seconds = time.perf_counter() - started
        print(
            f"single machine, mpconnect run --all: {args.sources} runs in {seconds:.1f} s "
            f"= {args.sources / seconds * 60:.0f} runs/min"
        )


def main() -> None:
    """Parse the options and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    baseline(args)
    pg, redis = PostgresServer().start(), RedisServer().start()
    try:
        for workers in (1, 2):
            measure(workers, args, pg, redis)
    finally:
        pg.close()
        redis.close()


if __name__ == "__main__":
    main()
