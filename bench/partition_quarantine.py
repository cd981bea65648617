"""What carrying a partition's quarantine lines through the shared database costs: a
worker copies N lines (about 360 bytes each, as the demo's bad records) into
``partition_quarantine``, and the coordinator reads them back, in a real PostgreSQL 15.

    python bench/partition_quarantine.py --lines 200000

Prints CPU seconds of this process (the client's side) and the peak of Python's own
allocations (tracemalloc) for each step, and the process's peak resident memory:
memory must stay flat whatever N is.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from real_servers import PostgresServer  # noqa: E402

from mpconnect import Partition  # noqa: E402
from mpconnect.distributed.ledger import PostgresRunLedger  # noqa: E402
from mpconnect.engine.partition_store import store_for  # noqa: E402


def main() -> None:
    """Measure the hand-over and the read-back of ``--lines`` lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    line = json.dumps(
        {
            "time": 1.7e9,
            "source": "demo",
            "what": "event 'Airline Review' object bad-review-0 (distinct_id 'reviewer-0')",
            "reason": "field 'time': naive datetime 2024-01-01T00:00:00 has no time zone; "
            "give an aware datetime (for example with tzinfo=UTC)",
            "field": "time",
            "record": {"name": "Airline Review", "distinct_id": "reviewer-0", "x": "v" * 80},
        }
    )
    server = PostgresServer().start()
    try:
        store = store_for(PostgresRunLedger(server.create_database()))
        store.save_plan("run", [Partition("a"), Partition("b")])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "run@p000.jsonl"
            with path.open("w") as handle:
                for _ in range(args.lines):
                    handle.write(line + "\n")
            size = path.stat().st_size / 1e6
            tracemalloc.start()
            began = time.process_time()
            store.keep_quarantine("run", 0, [path])
            kept = time.process_time() - began
            keep_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            began = time.process_time()
            count = sum(1 for _ in store.quarantine_lines("run", 0, [path]))
            read = time.process_time() - began
            read_peak = tracemalloc.get_traced_memory()[1]
        assert count == args.lines, count
        print(f"{args.lines:,} lines ({size:.0f} MB)")
        print(f"  keep (worker):      {kept:.2f} CPU s, Python peak {keep_peak / 1e6:.1f} MB")
        print(f"  read (coordinator): {read:.2f} CPU s, Python peak {read_peak / 1e6:.1f} MB")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
        print(f"  this process's peak resident memory: {rss:.0f} MB")
    finally:
        server.close()


if __name__ == "__main__":
    main()
