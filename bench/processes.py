"""Partitioned runs with 1 and 2 processes: N demo events in P partitions through the
engine into a null HTTPS sink (nginx answering at once).

    python bench/processes.py --events 1000000 --partitions 8 --processes 1,2

Prints, for each process count: events/s of the whole run, CPU seconds (user + system
of the run and of every process under it, read from /proc every 0.1 s) per million
events, and the peak RSS of the run's own process and of the largest worker process.
Needs nginx (Debian package `nginx`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import null_server


def write_config(directory: Path, url: str, ca: Path, events: int, partitions: int) -> Path:
    """An mpconnect.toml loading the demo in ``partitions`` into the null sink."""
    config = directory / "mpconnect.toml"
    config.write_text(
        '[mixpanel]\nsink = "datasets"\n'
        f'api_url = "{url}"\nproject_token = "benchtoken"\nsecret = "${{BENCH_SECRET}}"\n'
        f'ca_bundle = "{ca}"\n'
        # The null sink is no Mixpanel project: its import budget would cap the rate.
        "[engine]\nlive_timeout = 120\nproject_rate_limit = false\n"
        '[sources.demo]\nconnector = "demo"\ndataset_id = "DEMO"\nsync = "full"\n'
        f"[sources.demo.settings]\nevents = {events}\npartitions = {partitions}\n"
    )
    return config


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.append(child)
            todo.append(child)
    return found


def _peak_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` itself so far (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(config: Path, home: Path, processes: int) -> tuple[float, float, float, float]:
    """Run the demo; return (seconds, CPU seconds, run's peak RSS MB, largest partition
    process's peak RSS MB)."""
    env = dict(os.environ, MPCONNECT_HOME=str(home), BENCH_SECRET="benchsecret")
    mpconnect = shutil.which("mpconnect") or "mpconnect"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [mpconnect, "--config", str(config), "run", "demo", "--processes", str(processes)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    peaks: dict[int, int] = {}
    cpu_seen: dict[int, float] = {}
    while proc.poll() is None:
        for pid in [proc.pid, *_descendants(proc.pid)]:
            peaks[pid] = max(peaks.get(pid, 0), _peak_kb(pid))
            cpu_seen[pid] = max(cpu_seen.get(pid, 0.0), _cpu_seconds(pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    output = proc.stdout.read().decode() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"mpconnect run failed ({proc.returncode}):\n{output}")
    cpu = sum(cpu_seen.values())
    own = peaks.pop(proc.pid, 0) / 1024
    partition = max(peaks.values(), default=0) / 1024
    return seconds, cpu, own, partition


def main() -> None:
    """Run the demo with each process count and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts")
    args = parser.parse_args()
    print(
        f"events: {args.events:,} in {args.partitions} partitions; cores: {os.cpu_count()}; "
        "sink: null (nginx)"
    )
    for processes in (int(n) for n in args.processes.split(",")):
        with tempfile.TemporaryDirectory(prefix="mpconnect-bench-processes-") as tmp:
            directory = Path(tmp)
            server, url, ca = null_server(directory)
            try:
                config = write_config(directory, url, ca, args.events, args.partitions)
                seconds, cpu, own, partition = measure(config, directory / "home", processes)
            finally:
                server.terminate()
                server.wait(10)
        print(
            f"--processes {processes}: {args.events / seconds:,.0f} events/s "
            f"({seconds:.1f} s); CPU {cpu / args.events * 1e6:.1f} s per 1M events; "
            f"peak RSS: run {own:.0f} MB"
            + (f", largest worker process {partition:.0f} MB" if partition else "")
        )


if __name__ == "__main__":
    main()
