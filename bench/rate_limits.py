"""Benchmark the shared rate limits: how much of a limit concurrent runs use, and 429s.

Mixpanel: the local Datasets API enforces a project limit (``--limit`` records per rolling
``--window`` seconds; Mixpanel's is about 1,800,000 a minute); 1 and then 3 ``mpconnect
run`` processes, each loading its own demo source into the same project, are told that
limit and share one bucket (default: 90 % of it). Printed per case, from the server's
counters: records accepted, the sustained rate as a share of the limit (target 85-100 %),
the busiest rolling window, and 429s (target: none).

Stripe: the local Stripe API answers 429 above 25 requests/s (test mode); 1 and then 3
readers of the same account at once (default: 90 % of 25/s together). Printed: requests/s
as a share of the limit (target 90-100 %) and 429s.

``--without`` adds 3 runs with the bucket turned off (``project_rate_limit = false``):
what concurrent runs did before it existed.

Run: ``python bench/rate_limits.py [--seconds 120] [--limit 30000] [--window 60]``
(about ``2 x seconds`` for Mixpanel plus half a minute for Stripe).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from mpconnect.emulator.server import LocalDatasetsServer, ProjectLimit

SECRET = "bench-secret"
PEOPLE_PER_EVENT = 0.1  # the demo connector: one reviewer profile per 10 events


def mixpanel_case(
    runs: int, limit: int, window: float, seconds: float, share: float, bucket: bool = True
) -> None:
    """``runs`` concurrent runs into one project limited to ``limit`` per ``window`` s
    (without the shared bucket, as before it existed, when ``bucket`` is False)."""
    rate = limit / window
    events = int(rate * share * seconds / runs / (1 + PEOPLE_PER_EVENT))
    with tempfile.TemporaryDirectory(prefix="mpconnect-bench-rate-") as tmp:
        root = Path(tmp)
        names = [f"s{i}" for i in range(runs)]
        with LocalDatasetsServer(
            root / "server",
            datasets=[f"DEMO{i}" for i in range(runs)],
            project_token="tok",
            project_secret=SECRET,
            project_limit=ProjectLimit(events=limit, window=window),
        ) as server:
            sources = "".join(
                f'[sources.{name}]\nconnector = "demo"\ndataset_id = "DEMO{i}"\n'
                f"settings = {{ events = {events}, seed = {i} }}\n"
                for i, name in enumerate(names)
            )
            config = root / "mpconnect.toml"
            config.write_text(
                textwrap.dedent(f"""
                [mixpanel]
                sink = "datasets"
                api_url = "{server.url}"
                project_token = "tok"
                secret = "${{MIXPANEL_SECRET}}"
                ca_bundle = "{server.ca_path}"
                [engine]
                max_batch_bytes = 65536
                project_events_per_minute = {int(rate * 60)}
                project_rate_share = {share}
                project_rate_limit = {"true" if bucket else "false"}
                """)
                + sources
            )
            env = dict(os.environ, MPCONNECT_HOME=str(root / "home"), MIXPANEL_SECRET=SECRET)
            started = time.monotonic()
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "mpconnect", "--config", str(config), "run", name],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                for name in names
            ]
            failed = [p for p in procs if p.wait() != 0]
            elapsed = time.monotonic() - started
            counts = server.project_limit
            sustained = counts.sustained_rate()
            busiest = counts.busiest_window()
            print(
                f"mixpanel  runs={runs}{'' if bucket else ' (no bucket)'}  "
                f"limit={limit}/{window:g}s ({rate:,.0f}/s)  "
                f"accepted={counts.accepted():,}  in {elapsed:.0f} s  "
                f"sustained={sustained:,.0f}/s ({sustained / rate:.0%} of the limit)  "
                f"busiest window={busiest:,} ({busiest / limit:.0%})"
                f"  429s={counts.refused()}" + (f"  FAILED RUNS={len(failed)}" if failed else "")
            )


def stripe_case(readers: int, customers: int) -> None:
    """``readers`` concurrent readers of one account limited to 25 requests/s."""
    from mpconnect.testing import run_connector
    from mpconnect_stripe import StripeConnector
    from mpconnect_stripe.localserver.api import TEST_KEY, StripeAPI
    from mpconnect_stripe.localserver.world import generate

    with tempfile.TemporaryDirectory(prefix="mpconnect-bench-stripe-") as tmp:
        os.environ["MPCONNECT_HOME"] = tmp
        api = StripeAPI(generate(seed=5, customers=customers), latency=0.03).start()
        try:
            api.set_rate_limit(25.0, burst=25.0)
            settings = {"api_key": TEST_KEY, "api_base": api.url}
            threads = [
                threading.Thread(target=run_connector, args=(StripeConnector, settings))
                for _ in range(readers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            served = sorted(api.stats.served_at)
            rate = (len(served) - 1) / (served[-1] - served[0])
            print(
                f"stripe    readers={readers}  limit=25/s  requests={api.stats.requests}  "
                f"rate={rate:.1f}/s ({rate / 25:.0%} of the limit)  "
                f"429s={api.stats.throttled}"
            )
        finally:
            api.stop()


def main() -> None:
    """Run the cases and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each case")
    parser.add_argument("--limit", type=int, default=30_000, help="records per window")
    parser.add_argument("--window", type=float, default=60.0, help="rolling window, seconds")
    parser.add_argument("--share", type=float, default=0.9, help="project_rate_share")
    parser.add_argument("--customers", type=int, default=600, help="Stripe account size")
    parser.add_argument(
        "--without", action="store_true", help="also 3 runs without the bucket, for comparison"
    )
    args = parser.parse_args()
    for runs in (1, 3):
        mixpanel_case(runs, args.limit, args.window, args.seconds, args.share)
    if args.without:
        mixpanel_case(3, args.limit, args.window, args.seconds, args.share, bucket=False)
    for readers in (1, 3):
        stripe_case(readers, args.customers)


if __name__ == "__main__":
    main()
