"""The incremental state and source-object cache in SQLite (one machine) against the
shared PostgreSQL (``[distributed]``): a first, full run and a second, incremental one.

    python bench/shared_state.py --events 50000 --changes 0.01

Starts a real PostgreSQL 15 (as tests/distributed does). For each store and for the
``counting`` sink (no versions, ingestion-like: every record read is checked against the
committed cache) and ``embedded`` (versions: the snapshot is completed from the cache),
prints the wall time of both runs, the peak RSS of the process so far, and for
PostgreSQL the size of the cache's tables after the first run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "distributed"))
sys.path.insert(0, str(ROOT / "bench"))
from incremental import CountingPlugin  # noqa: E402
from real_servers import PostgresServer  # noqa: E402

from mpconnect.config import parse_config  # noqa: E402
from mpconnect.engine import Engine  # noqa: E402
from mpconnect.plugins import load_plugins  # noqa: E402


def _engine(home: Path, sink: str, url: str | None, args: argparse.Namespace) -> Engine:
    mixpanel: dict[str, Any] = {"sink": sink}
    if sink == "embedded":
        mixpanel["store"] = str(home / "embedded.sqlite3")
    source = {
        "connector": "demo",
        "dataset_id": "BENCH",
        "settings": {"events": args.events, "changes": args.changes},
    }
    config = parse_config(
        {"mixpanel": mixpanel, "sources": {"bench": source}}, home / "mpconnect.toml"
    )
    extra: dict[str, Any] = {}
    if url is not None:
        from mpconnect.distributed.state import shared_incremental

        extra = shared_incremental(url)
    return Engine(config, load_plugins((CountingPlugin(),)), home, **extra)


def _size_mb(url: str) -> float:
    import psycopg

    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['cache_objects',"
            "'cache_pending','cache_pending_deleted']) AS c"
        ).fetchone()
    return float(row[0] or 0) / 1e6 if row else 0.0


def main() -> None:
    """Run the benchmark and print one line per store, sink and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--changes", type=float, default=0.01)
    parser.add_argument("--sinks", nargs="*", default=["counting", "embedded"])
    args = parser.parse_args()
    pg = PostgresServer().start()
    try:
        for sink in args.sinks:
            for store in ("sqlite", "postgresql"):
                url = pg.create_database() if store == "postgresql" else None
                with tempfile.TemporaryDirectory() as tmp:
                    for run in ("first (full)", "second (incremental)"):
                        started = time.perf_counter()
                        summary = _engine(Path(tmp), sink, url, args).run("bench")
                        seconds = time.perf_counter() - started
                        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                        size = f", cache tables {_size_mb(url):.0f} MB" if url else ""
                        print(
                            f"{sink:9} {store:10} {run:21} {summary.sync:11} "
                            f"{summary.read:>9,} records {seconds:7.1f} s "
                            f"({summary.read / seconds:,.0f}/s), peak RSS {rss:.0f} MB{size}",
                            flush=True,
                        )
    finally:
        pg.close()


if __name__ == "__main__":
    main()
