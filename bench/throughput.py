"""Engine throughput: N demo events through the engine into (a) a null HTTPS sink
(nginx answering at once), (b) the local datasets server; and, as the ceiling, the rate
of just encoding the same records (orjson + base64) in one process.

    python bench/throughput.py --events 1000000
    python bench/throughput.py --events 5000000 --targets null

Prints events/s and the peak RSS of each `mpconnect run`. Needs nginx (Debian package
`nginx`) for the null sink and the `server` extra for the datasets server.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _util import free_port, null_server, run_measured_cpu, wait_for_port


def encode_ceiling(events: int) -> float:
    """Events/s of orjson + base64 over already-converted demo records, in batches of 1000."""
    from mpconnect.connector import RunContext
    from mpconnect_demo import DemoConnector

    connector = DemoConnector(DemoConnector.Settings(events=events))
    ctx = RunContext(source="bench", dataset_id="BENCH")
    records = [event.to_mixpanel("token") for event in connector.events(ctx)]
    started = time.perf_counter()
    for start in range(0, len(records), 1000):
        base64.b64encode(orjson.dumps(records[start : start + 1000]))
    return len(records) / (time.perf_counter() - started)


def write_config(directory: Path, url: str, ca: Path, events: int, concurrency: int) -> Path:
    """Write an mpconnect.toml loading the demo source into the Datasets API at ``url``."""
    config = directory / "mpconnect.toml"
    config.write_text(
        '[mixpanel]\nsink = "datasets"\n'
        f'api_url = "{url}"\nproject_token = "benchtoken"\nsecret = "${{BENCH_SECRET}}"\n'
        f'ca_bundle = "{ca}"\n'
        f"[engine]\nconcurrency = {concurrency}\nlive_timeout = 120\n"
        '[sources.demo]\nconnector = "demo"\ndataset_id = "DEMO"\n'
        f"[sources.demo.settings]\nevents = {events}\n"
    )
    return config


def run_engine(config: Path, home: Path) -> tuple[float, float, str]:
    """Run `mpconnect run demo`; return (seconds, peak RSS MB, output)."""
    env = dict(os.environ, MPCONNECT_HOME=str(home), BENCH_SECRET="benchsecret")
    mpconnect = shutil.which("mpconnect") or "mpconnect"
    seconds, rss, cpu, status, output = run_measured_cpu(
        [mpconnect, "--config", str(config), "run", "demo"], env
    )
    print(f"  cpu {cpu:.1f} s", flush=True)
    if status != 0:
        raise SystemExit(f"mpconnect run failed ({status}):\n{output}")
    return seconds, rss, output


def bench_null(directory: Path, events: int, concurrency: int) -> tuple[float, float]:
    """Run the engine against nginx answering every request at once."""
    server, url, ca = null_server(directory)
    try:
        config = write_config(directory, url, ca, events, concurrency)
        seconds, rss, _ = run_engine(config, directory / "home")
    finally:
        server.terminate()
        server.wait(10)
    return seconds, rss


def bench_server(directory: Path, events: int, concurrency: int) -> tuple[float, float]:
    """Run the engine against `mpconnect serve` (the local datasets server)."""
    port = free_port()
    mpconnect = shutil.which("mpconnect") or "mpconnect"
    log = (directory / "serve.log").open("wb")
    server = subprocess.Popen(
        [
            mpconnect,
            "serve",
            "--port",
            str(port),
            "--dataset",
            "DEMO",
            "--project-token",
            "benchtoken",
            "--project-secret",
            "benchsecret",
            "--live-delay",
            "0",
            "--store",
            str(directory / "server.sqlite3"),
            "--tls-dir",
            str(directory / "tls"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        config = write_config(
            directory,
            f"https://127.0.0.1:{port}",
            directory / "tls" / "ca.pem",
            events,
            concurrency,
        )
        seconds, rss, _ = run_engine(config, directory / "home")
    finally:
        server.terminate()
        server.wait(30)
    return seconds, rss


def main() -> None:
    """Run the benchmarks named by --targets and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--targets", default="encode,null,server", help="comma-separated: encode, null, server"
    )
    args = parser.parse_args()
    targets = args.targets.split(",")
    print(f"events: {args.events:,}; upload workers: {args.concurrency}; cores: {os.cpu_count()}")
    if "encode" in targets:  # in a child process, so its memory is not in the others' RSS
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import throughput; print(throughput.encode_ceiling({args.events}))"
        )
        rate = float(subprocess.check_output([sys.executable, "-c", code]).decode())
        print(f"encode ceiling (orjson + base64, one process): {rate:,.0f} events/s")
    for name, bench in (("null", bench_null), ("server", bench_server)):
        if name not in targets:
            continue
        with tempfile.TemporaryDirectory(prefix=f"mpconnect-bench-{name}-") as tmp:
            seconds, rss = bench(Path(tmp), args.events, args.concurrency)
        records = args.events + max(1, args.events // 10)  # events + people profiles
        print(
            f"engine -> {name:6} sink: {records:,} records in {seconds:.1f} s = "
            f"{records / seconds:,.0f} records/s ({args.events / seconds:,.0f} events/s); "
            f"peak RSS {rss:.0f} MB"
        )


if __name__ == "__main__":
    main()
