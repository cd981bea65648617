"""Benchmark: Salesforce extraction over REST and Bulk 2.0 from the local Salesforce API.

Prints records/s for each path and the extracting process's peak RSS at two sizes, to show
memory stays flat as the object grows. The local API (mpconnect_salesforce.localserver) runs in
its own process, so its memory and CPU are not counted; each measurement runs in a fresh
child process so its peak RSS is its own.

A "row" is one Contact read; each yields two records (a ``Contact Created`` event and a
profile). The extractor runs the connector's ``events()`` then ``people()`` and validates
every record with ``to_mixpanel`` as the engine does (no upload).

    python bench/salesforce_extract.py                  # 100,000 and 1,000,000 rows
    python bench/salesforce_extract.py --small 20000 --large 200000
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def extract(url: str, ca: str, bulk: bool) -> dict[str, float]:
    """Run the connector once (in this process) and report rows, seconds and peak RSS."""
    from mpconnect import RunContext
    from mpconnect_salesforce import SalesforceConnector
    from mpconnect_salesforce.localserver.api import PASSWORD, SECURITY_TOKEN, USERNAME

    settings = SalesforceConnector.Settings(
        username=USERNAME,
        password=PASSWORD,
        security_token=SECURITY_TOKEN,
        login_url=url,
        ca_bundle=ca,
        objects=["contacts"],
        use_bulk=bulk,
        bulk_poll_interval=0.2,
        max_api_share=1.0,
        timeout=600,
    )
    connector = SalesforceConnector(settings)
    ctx = RunContext(source="bench", dataset_id="BENCH", log=logging.getLogger("bench"))
    start = time.perf_counter()
    records = 0
    try:
        for event in connector.events(ctx):
            event.to_mixpanel("token")
            records += 1
        rows = records
        for profile in connector.people(ctx):
            profile.to_mixpanel("token")
            records += 1
    finally:
        connector.close()
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": rows, "records": records, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}


def serve(contacts: int, ca_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    """Start the local Salesforce API with ``contacts`` contacts; return it, its URL and CA."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mpconnect_salesforce.localserver.api",
            "--contacts",
            str(contacts),
            "--ca-dir",
            str(ca_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port, ca = process.stdout.readline().split()
    return process, f"https://127.0.0.1:{port}", ca


def measure(url: str, ca: str, bulk: bool) -> dict[str, float]:
    """Run :func:`extract` in a fresh child process."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, ca, "bulk" if bulk else "rest"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure both paths at both sizes and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000, help="rows of the small run")
    parser.add_argument("--large", type=int, default=1_000_000, help="rows of the large run")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, ca, mode = args.child
        print(json.dumps(extract(url, ca, mode == "bulk")))
        return
    print(
        f"{'path':9} {'rows':>10} {'records':>10} {'seconds':>8} {'rows/s':>9} "
        f"{'records/s':>10} {'peak RSS MB':>12}"
    )
    for size in (args.small, args.large):
        with tempfile.TemporaryDirectory() as ca_dir:
            process, url, ca = serve(size, Path(ca_dir))
            try:
                for bulk in (False, True):
                    r = measure(url, ca, bulk)
                    assert r["rows"] == size, r
                    print(
                        f"{'Bulk 2.0' if bulk else 'REST':9} {r['rows']:>10,.0f} "
                        f"{r['records']:>10,.0f} {r['seconds']:>8.1f} "
                        f"{r['rows'] / r['seconds']:>9,.0f} "
                        f"{r['records'] / r['seconds']:>10,.0f} {r['peak_rss_mb']:>12.1f}",
                        flush=True,
                    )
            finally:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
