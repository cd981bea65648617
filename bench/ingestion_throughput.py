"""Ingestion sink throughput beside the datasets sink's, from the same run of this script.

N demo events (and N/10 profiles) through ``mpconnect run demo`` with ``sink = "ingestion"``
and with ``sink = "datasets"``, each into (a) a null HTTPS sink (nginx answering every
request at once: the engine's and the sink's own cost) and (b) the local server
(``mpconnect serve``: /import and /engage with strict-mode checks, or the Datasets API,
both storing into SQLite). Also the one-process ceilings of encoding a batch as each sink
does: orjson + gzip (ingestion, 2000 per request) and orjson + base64 (datasets, 1000).

    python bench/ingestion_throughput.py --events 500000
    python bench/ingestion_throughput.py --events 1000000 --targets null --sinks ingestion

Needs nginx (Debian package ``nginx``) for the null sink and the ``server`` extra.
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
from _util import free_port, null_server, run_measured, wait_for_port

TOKEN = "benchtoken"
SECRET = "benchsecret"
PROJECT_ID = "4242"
SA_USER = "bench.mp-service-account"


def encode_ceilings(events: int) -> tuple[float, float]:
    """Events/s of encoding converted demo events as each sink sends them, one process."""
    from mpconnect.connector import RunContext
    from mpconnect.mixpanel.gzip_body import gzip_body
    from mpconnect_demo import DemoConnector

    connector = DemoConnector(DemoConnector.Settings(events=events))
    ctx = RunContext(source="bench", dataset_id="BENCH")
    records = [event.to_mixpanel(TOKEN) for event in connector.events(ctx)]
    started = time.perf_counter()
    for start in range(0, len(records), 2000):
        batch = orjson.dumps(records[start : start + 2000])
        gzip_body(batch)
    gzipped = len(records) / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, len(records), 1000):
        base64.b64encode(orjson.dumps(records[start : start + 1000]))
    return gzipped, len(records) / (time.perf_counter() - started)


def write_config(
    directory: Path, sink: str, url: str, ca: Path, events: int, concurrency: int
) -> Path:
    """Write an mpconnect.toml loading the demo source through ``sink`` at ``url``."""
    if sink == "ingestion":
        credentials = (
            f'project_id = "{PROJECT_ID}"\nservice_account_user = "{SA_USER}"\n'
            'service_account_secret = "${BENCH_SECRET}"\n'
        )
    else:
        credentials = 'secret = "${BENCH_SECRET}"\n'
    config = directory / f"{sink}.toml"
    config.write_text(
        f'[mixpanel]\nsink = "{sink}"\napi_url = "{url}"\nproject_token = "{TOKEN}"\n'
        f'{credentials}ca_bundle = "{ca}"\n'
        f"[engine]\nconcurrency = {concurrency}\nlive_timeout = 120\n"
        '[sources.demo]\nconnector = "demo"\ndataset_id = "DEMO"\n'
        f"[sources.demo.settings]\nevents = {events}\n"
    )
    return config


def run_engine(config: Path, home: Path) -> tuple[float, float]:
    """Run ``mpconnect run demo``; return (seconds, peak RSS MB)."""
    env = dict(os.environ, MPCONNECT_HOME=str(home), BENCH_SECRET=SECRET)
    mpconnect = shutil.which("mpconnect") or "mpconnect"
    seconds, rss, status, output = run_measured(
        [mpconnect, "--config", str(config), "run", "demo"], env
    )
    if status != 0:
        raise SystemExit(f"mpconnect run failed ({status}):\n{output}")
    return seconds, rss


def local_server(directory: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start ``mpconnect serve`` (Datasets API, /import and /engage); (process, URL, CA)."""
    port = free_port()
    mpconnect = shutil.which("mpconnect") or "mpconnect"
    log = (directory / "serve.log").open("wb")
    env = dict(
        os.environ,
        MPCONNECT_SERVE_SERVICE_ACCOUNT=f"{SA_USER}:{SECRET}",
        MPCONNECT_HOME=str(directory / "serve-home"),
    )
    process = subprocess.Popen(
        [
            mpconnect,
            "serve",
            "--port",
            str(port),
            "--dataset",
            "DEMO",
            "--project-token",
            TOKEN,
            "--project-secret",
            SECRET,
            "--project-id",
            PROJECT_ID,
            "--live-delay",
            "0",
            "--store",
            str(directory / "server.sqlite3"),
            "--tls-dir",
            str(directory / "tls"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    wait_for_port(port)
    return process, f"https://127.0.0.1:{port}", directory / "tls" / "ca.pem"


def main() -> None:
    """Run the sinks into the targets and print their figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--targets", default="null,server", help="comma-separated: null, server")
    parser.add_argument(
        "--sinks", default="ingestion,datasets", help="comma-separated: ingestion, datasets"
    )
    parser.add_argument("--ceilings-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceilings_only:
        print(*encode_ceilings(args.events))
        return
    sinks = args.sinks.split(",")
    records = args.events + max(1, args.events // 10)
    print(
        f"events: {args.events:,} (+ {records - args.events:,} profiles); upload workers: "
        f"{args.concurrency}; cores: {os.cpu_count()}"
    )
    # in its own process, so the runs' peak RSS figures are their own
    ceilings = subprocess.run(
        [sys.executable, __file__, "--ceilings-only", "--events", str(min(args.events, 200_000))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    gzipped, base64ed = (float(value) for value in ceilings)
    print(
        f"encode ceiling, one process: orjson + gzip (ingestion) {gzipped:,.0f} events/s; "
        f"orjson + base64 (datasets) {base64ed:,.0f} events/s"
    )
    for target, start in (("null", null_server), ("server", local_server)):
        if target not in args.targets.split(","):
            continue
        with tempfile.TemporaryDirectory(prefix=f"mpconnect-bench-{target}-") as tmp:
            directory = Path(tmp)
            process, url, ca = start(directory)
            try:
                for sink in sinks:
                    config = write_config(directory, sink, url, ca, args.events, args.concurrency)
                    seconds, rss = run_engine(config, directory / f"home-{sink}")
                    print(
                        f"{sink:9} -> {target:6}: {records:,} records in {seconds:5.1f} s = "
                        f"{records / seconds:8,.0f} records/s "
                        f"({args.events / seconds:8,.0f} events/s); peak RSS {rss:.0f} MB"
                    )
            finally:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
