"""Ingestion rate of the local Datasets API server (`mpconnect serve`) over HTTPS.

Starts `mpconnect serve` in its own process (TLS from its local CA), creates a version,
then several client processes post 1000-record event batches to `/import-events` with
mpconnect's own client, all at once. Prints events/s end to end, the server's CPU
seconds per million events (from /proc), request latencies, and checks that the store
holds every event.

    python bench/server_ingest.py --clients 4 --batches 25
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from mpconnect.mixpanel.datasets import DatasetsClient
from mpconnect.store.datasets import DatasetStore

SECRET = "bench-secret"
TOKEN = "bench-token"
SERVING = re.compile(r"serving the Datasets API on (https://\S+) \(CA: (.+)\)")


def make_batch(client_index: int, batch_index: int, size: int) -> bytes:
    """A JSON array of ``size`` Mixpanel events with unique ``$insert_id``s."""
    first = (client_index * 1_000_000 + batch_index) * size
    return orjson.dumps(
        [
            {
                "event": "Airline Review",
                "properties": {
                    "token": TOKEN,
                    "distinct_id": f"reviewer-{(first + i) % 5000}",
                    "time": 1_700_000_000 + first + i,
                    "$insert_id": f"bench-{first + i}",
                    "airline_name": "adria-airways",
                    "cabin_flown": "Economy",
                    "overall_rating": 7,
                    "recommended": True,
                    "country": "United Kingdom",
                },
            }
            for i in range(size)
        ]
    )


def client_worker(args: tuple[str, str, str, int, int, int, object]) -> list[float]:
    """Post ``batches`` batches once the start barrier opens; return request latencies."""
    url, ca, version_id, client_index, batches, size, barrier = args
    payloads = [make_batch(client_index, b, size) for b in range(batches)]
    client = DatasetsClient(url, secret=SECRET, project_token=TOKEN, ca_bundle=ca, timeout=120)
    client.list_versions("BENCH")  # open the connection before timing
    barrier.wait()  # type: ignore[attr-defined]
    latencies = []
    for payload in payloads:
        started = time.perf_counter()
        client.import_events("BENCH", version_id, payload)
        latencies.append(time.perf_counter() - started)
    client.close()
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(directory: Path) -> tuple[subprocess.Popen[str], str, str]:
    """Run `mpconnect serve` on a free port; return it with its URL and CA file."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mpconnect.cli import main; main()",
            "serve",
            "--port",
            "0",
            "--dataset",
            "BENCH",
            "--project-token",
            TOKEN,
            "--project-secret",
            SECRET,
            "--live-delay",
            "0",
            "--store",
            str(directory / "server.sqlite3"),
            "--tls-dir",
            str(directory / "tls"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "MPCONNECT_HOME": str(directory / "home")},
    )
    assert server.stdout is not None
    match = SERVING.search(server.stdout.readline())
    if not match:
        server.kill()
        raise SystemExit("mpconnect serve did not start")
    return server, match.group(1), match.group(2)


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--batches", type=int, default=25, help="batches per client")
    parser.add_argument("--batch-size", type=int, default=1000, help="records per batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mpconnect-bench-serve-") as tmp:
        server, url, ca = start_server(Path(tmp))
        try:
            client = DatasetsClient(url, secret=SECRET, project_token=TOKEN, ca_bundle=ca)
            version_id = client.create_version("BENCH").version_id
            client.close()
            context = multiprocessing.get_context("spawn")
            with context.Manager() as manager:
                barrier = manager.Barrier(args.clients + 1)
                with context.Pool(args.clients) as pool:
                    pending = pool.map_async(
                        client_worker,
                        [
                            (url, ca, version_id, i, args.batches, args.batch_size, barrier)
                            for i in range(args.clients)
                        ],
                    )
                    barrier.wait()
                    cpu_before, started = cpu_seconds(server.pid), time.perf_counter()
                    latencies = sorted(x for per_client in pending.get() for x in per_client)
                    seconds = time.perf_counter() - started
                    cpu = cpu_seconds(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(30)
        store = DatasetStore(Path(tmp) / "server.sqlite3")
        stored = store.contents("BENCH", version_id).events_total
        store.close()
    events = args.clients * args.batches * args.batch_size
    print(
        f"local datasets server over HTTPS: {args.clients} clients x {args.batches} batches "
        f"x {args.batch_size} events; cores: {os.cpu_count()}"
    )
    print(
        f"ingested {events:,} events in {seconds:.2f} s = {events / seconds:,.0f} events/s "
        f"({len(latencies) / seconds:,.1f} batches/s)"
    )
    print(
        f"server CPU: {cpu:.2f} s = {cpu / events * 1e6:.1f} us per event "
        f"({events / cpu if cpu else float('inf'):,.0f} events per server CPU-second)"
    )
    print(
        f"request latency: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
        f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    print(f"stored: {stored:,} events ({'all' if stored == events else 'MISSING SOME'})")


if __name__ == "__main__":
    main()
