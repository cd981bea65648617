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
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _util import free_port, run_measured, wait_for_port

TOKEN = "benchtoken"
SECRET = "benchsecret"
PROJECT_ID = "4242"
SA_USER = "bench.mp-service-account"
VERSION = ('{"created_at": "2026-01-01T00:00:00.000000Z", "is_live": %s, "state": {'
           '"readable": %s, "readable_at": "0001-01-01T00:00:00Z", "ready": %s, '
           '"ready_at": "0001-01-01T00:00:00Z", "writable": true}, "version_id": "1"}')
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  client_max_body_size 64m;
  client_body_buffer_size 16m;
  default_type application/json;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    keepalive_requests 1000000;
    location = /import {{ return 200 '{{"code": 200, "status": "OK"}}'; }}
    location = /engage {{ return 200 '{{"error": null, "status": 1}}'; }}
    location ~ ^/datasets/[^/]+/versions$ {{
      if ($request_method = POST) {{ return 200 '{{"data": {created}}}'; }}
      return 200 '{{"data": [{live}]}}';
    }}
    location ~ ^/datasets/[^/]+/versions/ {{ return 200 '{{"data": null}}'; }}
    location / {{ return 200 '{{"error": null, "status": 1}}'; }}
  }}
}}
"""


def encode_ceilings(events: int) -> tuple[float, float]:
    """Events/s of encoding converted demo events as each sink sends them, one process."""
    from mpconnect.connector import RunContext
    from mpconnect_demo import DemoConnector

    connector = DemoConnector(DemoConnector.Settings(events=events))
    ctx = RunContext(source="bench", dataset_id="BENCH")
    records = [event.to_mixpanel(TOKEN) for event in connector.events(ctx)]
    started = time.perf_counter()
    for start in range(0, len(records), 2000):
        gzip.compress(orjson.dumps(records[start:start + 2000]), compresslevel=6, mtime=0)
    gzipped = len(records) / (time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, len(records), 1000):
        base64.b64encode(orjson.dumps(records[start:start + 1000]))
    return gzipped, len(records) / (time.perf_counter() - started)


def write_config(directory: Path, sink: str, url: str, ca: Path, events: int,
                 concurrency: int) -> Path:
    """Write an mpconnect.toml loading the demo source through ``sink`` at ``url``."""
    if sink == "ingestion":
        credentials = (f'project_id = "{PROJECT_ID}"\nservice_account_user = "{SA_USER}"\n'
                       'service_account_secret = "${BENCH_SECRET}"\n')
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
        [mpconnect, "--config", str(config), "run", "demo"], env)
    if status != 0:
        raise SystemExit(f"mpconnect run failed ({status}):\n{output}")
    return seconds, rss


def null_server(directory: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start nginx answering both APIs at once; return (process, URL, CA file)."""
    import trustme

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install nginx")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    port = free_port()
    (directory / "nginx.conf").write_text(NGINX_CONF.format(
        dir=directory, port=port, cert=directory / "cert.pem", key=directory / "key.pem",
        created=VERSION % ("false", "false", "false"), live=VERSION % ("true", "true", "true"),
    ))
    process = subprocess.Popen([nginx, "-c", str(directory / "nginx.conf"), "-p",
                                str(directory)])
    wait_for_port(port)
    return process, f"https://127.0.0.1:{port}", directory / "ca.pem"


def local_server(directory: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start ``mpconnect serve`` (Datasets API, /import and /engage); (process, URL, CA)."""
    port = free_port()
    mpconnect = shutil.which("mpconnect") or "mpconnect"
    log = (directory / "serve.log").open("wb")
    env = dict(os.environ, MPCONNECT_SERVE_SERVICE_ACCOUNT=f"{SA_USER}:{SECRET}",
               MPCONNECT_HOME=str(directory / "serve-home"))
    process = subprocess.Popen(
        [mpconnect, "serve", "--port", str(port), "--dataset", "DEMO", "--project-token",
         TOKEN, "--project-secret", SECRET, "--project-id", PROJECT_ID, "--live-delay", "0",
         "--store", str(directory / "server.sqlite3"), "--tls-dir", str(directory / "tls")],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    wait_for_port(port)
    return process, f"https://127.0.0.1:{port}", directory / "tls" / "ca.pem"


def main() -> None:
    """Run the sinks into the targets and print their figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--targets", default="null,server", help="comma-separated: null, server")
    parser.add_argument("--sinks", default="ingestion,datasets",
                        help="comma-separated: ingestion, datasets")
    parser.add_argument("--ceilings-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceilings_only:
        print(*encode_ceilings(args.events))
        return
    sinks = args.sinks.split(",")
    records = args.events + max(1, args.events // 10)
    print(f"events: {args.events:,} (+ {records - args.events:,} profiles); upload workers: "
          f"{args.concurrency}; cores: {os.cpu_count()}")
    # in its own process, so the runs' peak RSS figures are their own
    ceilings = subprocess.run(
        [sys.executable, __file__, "--ceilings-only", "--events", str(min(args.events, 200_000))],
        check=True, capture_output=True, text=True).stdout.split()
    gzipped, base64ed = (float(value) for value in ceilings)
    print(f"encode ceiling, one process: orjson + gzip (ingestion) {gzipped:,.0f} events/s; "
          f"orjson + base64 (datasets) {base64ed:,.0f} events/s")
    for target, start in (("null", null_server), ("server", local_server)):
        if target not in args.targets.split(","):
            continue
        with tempfile.TemporaryDirectory(prefix=f"mpconnect-bench-{target}-") as tmp:
            directory = Path(tmp)
            process, url, ca = start(directory)
            try:
                for sink in sinks:
                    config = write_config(directory, sink, url, ca, args.events,
                                          args.concurrency)
                    seconds, rss = run_engine(config, directory / f"home-{sink}")
                    print(f"{sink:9} -> {target:6}: {records:,} records in {seconds:5.1f} s = "
                          f"{records / seconds:8,.0f} records/s "
                          f"({args.events / seconds:8,.0f} events/s); peak RSS {rss:.0f} MB")
            finally:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
