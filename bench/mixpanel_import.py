"""The peer: the Node.js ``mixpanel-import`` (npm) loading the same demo events from memory
into the same null HTTPS sink as ``bench/throughput.py``; events/s, CPU and peak RSS.

    python bench/mixpanel_import.py --events 1000000

Installs ``mixpanel-import`` with npm into a temporary folder (needs ``node`` and ``npm``;
nothing is installed elsewhere). The package always talks to ``api.mixpanel.com``; the
runner replaces its HTTP pool's origin with the null sink's before loading it, so no
request leaves the machine. The events are built in memory first, as the demo connector
builds them (same shape and sizes), and the timer covers the whole ``node`` process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import null_server, run_measured_cpu

#: The version measured; a newer one may differ.
PACKAGE = "mixpanel-import@3"

RUNNER = r"""
const fs = require("fs");
const undici = require("undici");
const Original = undici.Pool;
undici.Pool = class extends Original {
  constructor(origin, options) {
    const ca = fs.readFileSync(process.env.BENCH_CA);
    super(process.env.BENCH_URL, { ...options, connect: { ...(options || {}).connect, ca } });
  }
};
const mpImport = require("mixpanel-import");
const airlines = ["british-airways", "klm", "lufthansa", "qantas", "emirates", "finnair"];
const cabins = ["Economy", "Premium Economy", "Business Class", "First Class"];
const events = Number(process.argv[2]);
const start = 1672531200;
const records = new Array(events);
for (let i = 0; i < events; i++) {
  const offset = Math.floor(Math.random() * 2 * 365 * 86400);
  const rating = 1 + Math.floor(Math.random() * 10);
  records[i] = {
    event: "Airline Review",
    properties: {
      airline_name: airlines[i % airlines.length],
      rating,
      cabin_class: cabins[i % cabins.length],
      recommended: rating >= 7,
      seat_comfort: 1 + (i % 5),
      value_for_money: 1 + ((i >> 3) % 5),
      review_date: new Date((start + offset) * 1000).toISOString().slice(0, 10),
      distinct_id: "reviewer-" + Math.floor(Math.random() * (events / 10)),
      time: start + offset,
      $insert_id: "review-" + i,
    },
  };
}
(async () => {
  const result = await mpImport(
    { token: "benchtoken", secret: "benchsecret" },
    records,
    { recordType: "event", compress: false, logs: false, verbose: false, showProgress: false }
  );
  const { total, requests, bytes, failed, retries, eps, duration } = result;
  console.log(JSON.stringify({ total, requests, bytes, failed, retries, eps, duration }));
})();
"""


def install(directory: Path) -> None:
    """Install mixpanel-import into ``directory`` with npm."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit("node and npm are needed: apt-get install nodejs npm")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", PACKAGE],
        cwd=directory,
        check=True,
    )


def run_peer(directory: Path, url: str, ca: Path, events: int) -> tuple[float, float, float, str]:
    """Run mixpanel-import over ``events`` events into ``url``; return (seconds, peak RSS
    MB, CPU seconds, its output)."""
    (directory / "runner.js").write_text(RUNNER)
    env = dict(os.environ, BENCH_URL=url, BENCH_CA=str(ca))
    seconds, rss, cpu, status, output = run_measured_cpu(
        [shutil.which("node") or "node", "runner.js", str(events)], env, cwd=directory
    )
    if status != 0:
        raise SystemExit(f"mixpanel-import failed ({status}):\n{output}")
    return seconds, rss, cpu, output


def main() -> None:
    """Install the peer, start the null sink, run it and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mpconnect-bench-peer-") as tmp:
        directory = Path(tmp)
        install(directory)
        server, url, ca = null_server(directory)
        try:
            seconds, rss, cpu, output = run_peer(directory, url, ca, args.events)
        finally:
            server.terminate()
            server.wait(10)
    print(output.strip().splitlines()[-1] if output.strip() else "")
    print(
        f"mixpanel-import -> null sink: {args.events:,} events in {seconds:.1f} s = "
        f"{args.events / seconds:,.0f} events/s; CPU {cpu / args.events * 1e6:.1f} s per "
        f"million events; peak RSS {rss:.0f} MB"
    )


if __name__ == "__main__":
    main()
