"""How long the status page's data takes with a large ledger: /metrics, the sources page
and one source's runs, over RUNS runs of 20 sources.

    python bench/status_page.py [RUNS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from mpconnect.config import Config, SourceConfig
from mpconnect.engine.ledger import SqliteRunLedger
from mpconnect.engine.summary import RunSummary
from mpconnect.testing import load_test_plugins
from mpconnect.ui.metrics import StatusCollector, render_metrics
from mpconnect.ui.status import LocalStatusSource

SOURCES = 20


def main(runs: int) -> None:
    """Fill a ledger with ``runs`` runs and time each read."""
    home = Path(tempfile.mkdtemp(prefix="mpconnect-bench-ui-"))
    ledger = SqliteRunLedger(home / "ledger.sqlite3")
    db = ledger._db()
    db.execute("BEGIN")
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
    db.execute("COMMIT")
    config = Config(
        sources={
            f"s{i}": SourceConfig(
                name=f"s{i}", connector="demo", dataset_id="D", schedule="0 * * * *"
            )
            for i in range(SOURCES)
        }
    )
    status = LocalStatusSource(lambda: config, load_test_plugins(), home)
    collector = StatusCollector(status)
    for name, call in (
        ("/metrics", lambda: render_metrics(collector)),
        ("sources page data", status.sources),
        ("one source's runs", lambda: status.source_runs("s1")),
    ):
        started = time.perf_counter()
        call()
        print(f"{name}: {(time.perf_counter() - started) * 1000:.0f} ms over {runs:,} runs")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
