"""Incremental against full: the second run of a source after 1% of it changed.

    python bench/incremental.py --events 100000 --changes 0.01
    python bench/incremental.py --sources demo --sinks counting embedded

For each source (one function per source in ``SOURCES``; the demo's is
:func:`bench_demo`) and sink, in a fresh ``MPCONNECT_HOME``: a first, full run; then the
second run twice from the same starting point, once incremental and once
``--full-refresh``. Prints, for the second run: source requests (the demo counts pages of
100 objects), source objects read, records sent to the sink, wall time and the peak RSS
of the process so far. ``counting`` is a sink without versions that counts what it is
sent, as the ingestion sink would be; ``embedded`` builds complete versions from the
cache (datasets-like).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import mpconnect
from mpconnect.config import parse_config
from mpconnect.engine import Engine, RunOptions
from mpconnect.plugins import load_plugins
from mpconnect.sink import ImportResult, Sink, VersionInfo


class CountingSink(Sink):
    """A sink without versions that only counts the records it is sent."""

    name = "counting"
    versioned = False
    default_token = "bench"
    received: ClassVar[int] = 0

    def create_version(self, dataset_id: str) -> VersionInfo:
        return VersionInfo("0", True, True)

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        return []

    def import_batch(
        self, kind: Any, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        type(self).received += count
        return ImportResult(count)

    def publish(self, dataset_id: str, version_id: str) -> None:
        """Nothing to publish."""

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Nothing to delete."""


class CountingPlugin:
    """Registers :class:`CountingSink`."""

    @mpconnect.hookimpl
    def register_sinks(self, register: Callable[[type], None]) -> None:
        register(CountingSink)


def _engine(home: Path, sink: str, source: dict[str, Any]) -> Engine:
    mixpanel: dict[str, Any] = {"sink": sink}
    if sink == "embedded":
        mixpanel["store"] = str(home / "embedded.sqlite3")
    config = parse_config(
        {"mixpanel": mixpanel, "sources": {"bench": source}}, home / "mpconnect.toml"
    )
    return Engine(config, load_plugins((CountingPlugin(),)), home)


def _second_run(home: Path, sink: str, source: dict[str, Any], full: bool) -> dict[str, Any]:
    from mpconnect_demo.connector import DemoConnector

    pages, sent = DemoConnector.pages, CountingSink.received
    started = time.perf_counter()
    summary = _engine(home, sink, source).run("bench", RunOptions(full_refresh=full))
    seconds = time.perf_counter() - started
    return {
        "kind": summary.sync,
        "requests": DemoConnector.pages - pages,
        "objects read": (summary.objects or {}).get("read", 0),
        "records sent": summary.imported if sink != "counting" else CountingSink.received - sent,
        "seconds": seconds,
        "peak RSS MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bench_demo(events: int, changes: float, sink: str) -> list[dict[str, Any]]:
    """The demo source: ``events`` reviews, ``changes`` of them touched between runs."""
    source = {
        "connector": "demo",
        "dataset_id": "BENCH",
        "settings": {"events": events, "changes": changes},
    }
    results = []
    base = Path(tempfile.mkdtemp(prefix="mpconnect-bench-"))
    try:
        first = base / "first"
        first.mkdir()
        _engine(first, sink, source).run("bench")
        for full in (False, True):
            home = base / ("full" if full else "incremental")
            shutil.copytree(first, home)
            results.append(_second_run(home, sink, source, full))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results


#: One function per source: (events, changes, sink) -> [incremental, full] figures.
SOURCES: dict[str, Callable[[int, float, str], list[dict[str, Any]]]] = {"demo": bench_demo}


def main() -> None:
    """Run the benchmark and print a table per source and sink."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--changes", type=float, default=0.01)
    parser.add_argument("--sources", nargs="*", default=list(SOURCES))
    parser.add_argument("--sinks", nargs="*", default=["counting", "embedded"])
    args = parser.parse_args()
    for name in args.sources:
        for sink in args.sinks:
            incremental, full = SOURCES[name](args.events, args.changes, sink)
            print(f"\n{name}, {args.events:,} objects, {args.changes:.0%} changed, sink {sink}")
            print(f"  {'':14}{'incremental':>14}{'full':>14}{'ratio':>10}")
            for key in ("requests", "objects read", "records sent", "seconds", "peak RSS MB"):
                a, b = incremental[key], full[key]
                ratio = f"{b / a:,.1f}x" if a else "-"
                print(f"  {key:14}{a:>14,.1f}{b:>14,.1f}{ratio:>10}")


if __name__ == "__main__":
    main()
