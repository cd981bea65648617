"""Engine throughput: N demo events through `mpconnect run` into (a) a null HTTPS sink
(nginx answering at once), (b) the local datasets server; beside it (c) the Node.js peer
``mixpanel-import`` into the same null sink (``bench/mixpanel_import.py``), and, as a
ceiling, the rate of just encoding the same records (orjson + base64) in one process.

    python bench/throughput.py                                   # 1M and 5M, all targets
    python bench/throughput.py --events 1000000 --targets null,peer
    python bench/throughput.py --events 5000000 --targets null --processes 1

For each run it prints the whole run's events/s (profiles included in the time), the CPU
seconds (user + system, every thread and child) per million events and the peak RSS. The
CPU figure is the one to compare across machines and loads: on a machine shared with
other work the wall-clock rate moves with the load, the CPU cost much less. With
``--processes 2`` the engine runs a process pool over the source's partitions (the demo
source is written with ``sync = "full"``, so it is partitioned); ``--processes N`` is
always passed, as `mpconnect run`'s default is the number of cores.

Needs nginx (Debian package `nginx`) for the null sink, the `server` extra for the
datasets server, and node + npm for the peer (installed in a temporary folder).
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
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _util import free_port, null_server, run_measured_cpu, wait_for_port

Figures = tuple[float, float, float]  # seconds, peak RSS MB, CPU seconds


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


SYNC = "incremental"  # set by --sync: "incremental" (a first run fills the object cache) or "full"
#: Set by --project-limit: keep the project's import budget (27,000 events/s by default),
#: which caps the null sink's rate; off by default, as the null sink is no Mixpanel project.
PROJECT_LIMIT = False


def write_config(directory: Path, url: str, ca: Path, events: int, concurrency: int) -> Path:
    """Write an mpconnect.toml loading the demo source into the Datasets API at ``url``."""
    config = directory / "mpconnect.toml"
    config.write_text(
        '[mixpanel]\nsink = "datasets"\n'
        f'api_url = "{url}"\nproject_token = "benchtoken"\nsecret = "${{BENCH_SECRET}}"\n'
        f'ca_bundle = "{ca}"\n'
        f"[engine]\nconcurrency = {concurrency}\nlive_timeout = 120\n"
        f"project_rate_limit = {str(PROJECT_LIMIT).lower()}\n"
        '[sources.demo]\nconnector = "demo"\ndataset_id = "DEMO"\n'
        f'sync = "{SYNC}"\n'
        f"[sources.demo.settings]\nevents = {events}\n"
    )
    return config


def _mpconnect() -> str:
    return shutil.which("mpconnect") or "mpconnect"


def has_processes_option() -> bool:
    """Whether `mpconnect run` takes ``--processes``."""
    help_text = subprocess.run(
        [_mpconnect(), "run", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return "--processes" in help_text


def run_engine(config: Path, home: Path, processes: int) -> Figures:
    """Run `mpconnect run demo`; return (seconds, peak RSS MB, CPU seconds)."""
    env = dict(os.environ, MPCONNECT_HOME=str(home), BENCH_SECRET="benchsecret")
    command = [_mpconnect(), "--config", str(config), "run", "demo"]
    command += ["--processes", str(processes)]  # always: the default is the number of cores
    seconds, rss, cpu, status, output = run_measured_cpu(command, env)
    if status != 0:
        raise SystemExit(f"mpconnect run failed ({status}):\n{output}")
    return seconds, rss, cpu


def bench_null(directory: Path, events: int, concurrency: int, processes: int) -> Figures:
    """Run the engine against nginx answering every request at once."""
    server, url, ca = null_server(directory)
    try:
        config = write_config(directory, url, ca, events, concurrency)
        return run_engine(config, directory / "home", processes)
    finally:
        server.terminate()
        server.wait(10)


def bench_server(directory: Path, events: int, concurrency: int, processes: int) -> Figures:
    """Run the engine against `mpconnect serve` (the local datasets server)."""
    port = free_port()
    log = (directory / "serve.log").open("wb")
    server = subprocess.Popen(
        [
            _mpconnect(),
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
        return run_engine(config, directory / "home", processes)
    finally:
        server.terminate()
        server.wait(30)


def bench_peer(directory: Path, events: int, concurrency: int, processes: int) -> Figures:
    """Run mixpanel-import (npm) from memory into the null sink."""
    import mixpanel_import

    mixpanel_import.install(directory)
    server, url, ca = null_server(directory)
    try:
        seconds, rss, cpu, _ = mixpanel_import.run_peer(directory, url, ca, events)
    finally:
        server.terminate()
        server.wait(10)
    return seconds, rss, cpu


def compile_bytecode() -> None:
    """Compile mpconnect's modules once, as an installed wheel has them (with
    PYTHONDONTWRITEBYTECODE set, every run would compile them again)."""
    import mpconnect
    import mpconnect_demo

    for package in (mpconnect, mpconnect_demo):
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(Path(package.__file__).parent)],
            check=False,
            stdout=subprocess.DEVNULL,
        )


def _row(label: str, events: int, processes: int | str, figures: Figures | None) -> str:
    if figures is None:
        return f"{label:16} {events:>10,} {processes!s:>5}   n/a (needs --processes)"
    seconds, rss, cpu = figures
    return (
        f"{label:16} {events:>10,} {processes!s:>5} {seconds:8.1f} {events / seconds:>10,.0f} "
        f"{cpu / events * 1e6:9.1f} {rss:8.0f}"
    )


def main() -> None:
    """Run the benchmarks named by --targets and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000,5000000", help="comma-separated counts")
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--sync",
        default="incremental",
        choices=["incremental", "full"],
        help="the source's sync: incremental (a first run, filling the object cache) or full",
    )
    parser.add_argument(
        "--targets",
        default="encode,null,server,peer",
        help="comma-separated: encode, null, server, peer (mixpanel-import into the null sink)",
    )
    parser.add_argument(
        "--project-limit",
        action="store_true",
        help="keep the Mixpanel project's import budget (90%% of 30,000 events/s)",
    )
    args = parser.parse_args()
    global SYNC, PROJECT_LIMIT
    SYNC, PROJECT_LIMIT = args.sync, args.project_limit
    targets = args.targets.split(",")
    counts = [int(count) for count in args.events.split(",")]
    process_counts = [int(count) for count in args.processes.split(",")]
    pool = has_processes_option()
    compile_bytecode()
    print(f"upload workers: {args.concurrency}; cores: {os.cpu_count()}")
    if "encode" in targets:  # in a child process, so its memory is not in the others' RSS
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import throughput; print(throughput.encode_ceiling({counts[0]}))"
        )
        rate = float(subprocess.check_output([sys.executable, "-c", code]).decode())
        print(f"encode ceiling (orjson + base64, one process): {rate:,.0f} events/s")
    print(
        f"{'run':16} {'events':>10} {'procs':>5} {'seconds':>8} {'events/s':>10} "
        f"{'CPU s/1M':>9} {'peak MB':>8}"
    )
    benches: dict[str, Callable[[Path, int, int, int], Figures]] = {
        "mpconnect->null": bench_null,
        "mpconnect->server": bench_server,
        "mixpanel-import": bench_peer,
    }
    names = {"null": "mpconnect->null", "server": "mpconnect->server", "peer": "mixpanel-import"}
    results: dict[tuple[str, int, int], Figures] = {}
    for events in counts:
        for target in ("null", "server", "peer"):
            if target not in targets:
                continue
            label = names[target]
            for processes in [1] if target == "peer" else process_counts:
                if processes > 1 and not pool:
                    print(_row(label, events, processes, None), flush=True)
                    continue
                with tempfile.TemporaryDirectory(prefix=f"mpconnect-bench-{target}-") as tmp:
                    figures = benches[label](Path(tmp), events, args.concurrency, processes)
                results[(target, events, processes)] = figures
                print(_row(label, events, processes if target != "peer" else "-", figures))
        peer = results.get(("peer", events, 1))
        for processes in process_counts if peer else []:
            ours = results.get(("null", events, processes))
            if ours is None:
                continue
            default = " (mpconnect's default here)" if processes == os.cpu_count() else ""
            print(
                f"  {events:,} events, mpconnect ({processes} process{'es' * (processes > 1)}"
                f"{default}) / mixpanel-import: {peer[0] / ours[0]:.2f}x the events/s, "
                f"{ours[1] / peer[1]:.2f}x the peak memory, {ours[2] / peer[2]:.2f}x the CPU",
                flush=True,
            )


if __name__ == "__main__":
    main()
