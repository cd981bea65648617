"""How long the status page's data takes with a large ledger: /metrics, the sources page
and one source's runs, over RUNS runs of 20 sources, in this machine's SQLite ledger or,
with ``--postgres URL`` (an empty database), in the shared PostgreSQL ledger.

``/metrics`` reads per-source totals in a grouped query and a few indexed ones, and
reuses them for 5 s (the second line); "every run read" times what it did before (every
run read from the ledger and summed in Python), for comparison. Each figure is the median
of five calls.

    python bench/status_page.py [RUNS] [--postgres URL]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpconnect.config import Config, SourceConfig
from mpconnect.engine.ledger import RunLedger, SqliteRunLedger
from mpconnect.engine.summary import RunSummary
from mpconnect.testing import load_test_plugins
from mpconnect.ui import ledger_queries
from mpconnect.ui.metrics import StatusCollector, render_metrics
from mpconnect.ui.status import LocalStatusSource

SOURCES = 20


def fill(ledger: RunLedger, runs: int, within: Callable[[Callable[[], None]], None]) -> None:
    """Record ``runs`` finished runs of the sources."""

    def write() -> None:
        for index in range(runs):
            ledger.record_run(
                RunSummary(
                    run_id=f"run-{index}",
                    source=f"s{index % SOURCES}",
                    dataset_id="D",
                    sink="embedded",
                    status="succeeded",
                    started_at=1e9 + index,
                    ended_at=1e9 + index + 5,
                    read=100,
                    imported=100,
                )
            )

    within(write)


def main(runs: int, postgres: str | None) -> None:
    """Fill a ledger with ``runs`` runs and time each read."""
    home = Path(tempfile.mkdtemp(prefix="mpconnect-bench-ui-"))
    config = Config(
        sources={
            f"s{i}": SourceConfig(
                name=f"s{i}", connector="demo", dataset_id="D", schedule="0 * * * *"
            )
            for i in range(SOURCES)
        }
    )
    status: LocalStatusSource
    if postgres:
        from mpconnect.ui.shared_status import SharedStatusSource

        status = SharedStatusSource(lambda: config, load_test_plugins(), home, postgres)
        fill(status.ledger, runs, lambda write: write())
    else:
        ledger = SqliteRunLedger(home / "ledger.sqlite3")
        db = ledger._db()

        def in_one_transaction(write: Callable[[], None]) -> None:
            db.execute("BEGIN")
            write()
            db.execute("COMMIT")

        fill(ledger, runs, in_one_transaction)
        status = LocalStatusSource(lambda: config, load_test_plugins(), home)
    collector = StatusCollector(status, totals_ttl=0)  # the cost of a scrape without cache
    cached = StatusCollector(status)
    where = "PostgreSQL" if postgres else "SQLite"
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("/metrics", lambda: render_metrics(collector)),
        ("/metrics within the cache's 5 s", lambda: render_metrics(cached)),
        ("every run read (before)", lambda: ledger_queries.totals_of_runs(status.all_runs())),
        ("sources page data", status.sources),
        ("one source's runs", lambda: status.source_runs("s1")),
    ]
    for name, call in calls:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        median = statistics.median(times) * 1000
        print(f"{where} {name}: {median:.1f} ms over {runs:,} runs")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    url = None
    if "--postgres" in arguments:
        at = arguments.index("--postgres")
        url = arguments[at + 1]
        del arguments[at : at + 2]
    main(int(arguments[0]) if arguments else 5000, url)
