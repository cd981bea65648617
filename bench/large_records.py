"""Large records: N events of about SIZE bytes each through the engine into the local
Datasets API server; prints the run's outcome, its peak RSS and the requests the server
answered, by status.

    python bench/large_records.py                       # 1200 events of 60 KB
    python bench/large_records.py --events 3000 --size 200000

The engine runs in a child process (so the server's memory is not in its RSS); the server
runs in this one. A run that fails is shown with its error, not raised.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import run_measured

SECRET = "bench-secret"
TOKEN = "bench-token"


def child(url: str, ca: str, home: str, events: int, size: int) -> None:
    """Run the engine once (in the child process) and print its summary as JSON."""
    import mpconnect
    from mpconnect.errors import RunFailed
    from mpconnect.testing import run_source

    class Large(mpconnect.Connector):
        """``events`` events each holding a ``size``-byte property."""

        name = "large"
        Settings = mpconnect.ConnectorSettings

        def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
            for i in range(events):
                filler = (f"{i:08d}" * (size // 8 + 1))[:size]
                yield mpconnect.Event(
                    name="Blob",
                    distinct_id=f"u{i % 97}",
                    time=1_700_000_000 + i,
                    object_id=f"blob-{i}",
                    properties={"blob": filler},
                )

        def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
            return iter(())

    mixpanel = {
        "sink": "datasets",
        "api_url": url,
        "project_token": TOKEN,
        "secret": SECRET,
        "ca_bundle": ca,
    }
    try:
        loaded = run_source(Large, home=Path(home), mixpanel=mixpanel, dataset_id="DEMO")
        print(json.dumps(loaded.summary.to_dict()))
    except RunFailed as exc:
        print(json.dumps({"status": "failed", "error": str(exc)[:300]}))


def main() -> None:
    """Start the server, run the child engine, print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1200)
    parser.add_argument("--size", type=int, default=60_000, help="bytes of property per event")
    parser.add_argument("--child", nargs=3, metavar=("URL", "CA", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.events, args.size)
        return
    from mpconnect.emulator.server import LocalDatasetsServer

    with tempfile.TemporaryDirectory(prefix="mpconnect-bench-large-") as tmp:
        directory = Path(tmp)
        with LocalDatasetsServer(
            directory / "server", datasets=("DEMO",), project_token=TOKEN, project_secret=SECRET
        ) as server:
            env = dict(os.environ)
            command = [
                sys.executable,
                __file__,
                "--events",
                str(args.events),
                "--size",
                str(args.size),
                "--child",
                server.url,
                str(server.ca_path),
                str(directory / "home"),
            ]
            seconds, rss, status, output = run_measured(command, env)
            counts = server.request_counts()
            statuses = server.injector.faults_injected()
        last = output.strip().splitlines()[-1] if output.strip() else "{}"
        try:
            summary = json.loads(last)
        except json.JSONDecodeError:
            summary = {"status": f"child exited {status}", "error": output[-500:]}
    print(
        f"{args.events:,} events of {args.size:,} bytes "
        f"({args.events * args.size / 1e6:,.0f} MB of properties)"
    )
    print(
        f"run: {summary.get('status')}; imported {summary.get('imported', 0):,}, "
        f"quarantined {summary.get('quarantined', 0):,}, batches {summary.get('batches', 0)}"
        + (f"; error: {summary['error']}" if summary.get("error") else "")
    )
    print(f"time {seconds:.1f} s; peak RSS of the run {rss:.0f} MB")
    imports = {key: n for key, n in counts.items() if "import" in key}
    print(f"import requests: {imports}; faults: {statuses or 'none'}")


if __name__ == "__main__":
    main()
