"""A small mpconnect cluster on this machine: a configuration with ``[distributed]``
pointing at the test servers, real ``mpconnect worker`` and ``mpconnect schedule
--distributed`` processes, and the shared database to look into.

Every process shares one ``$MPCONNECT_HOME`` (one machine): the embedded sink's store is
there, and so are the spools a resumed run takes over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from mpconnect.store.datasets import DatasetStore


def demo_sources(count: int, events: int = 200, schedule: str | None = None) -> str:
    """TOML of ``count`` small demo sources ``s00``, ``s01``, ..."""
    tables = []
    for i in range(count):
        lines = [f"[sources.s{i:02d}]", 'connector = "demo"', f'dataset_id = "S{i:02d}"']
        if schedule:
            lines.append(f'schedule = "{schedule}"')
        lines += [f"[sources.s{i:02d}.settings]", f"events = {events}", ""]
        tables.append("\n".join(lines))
    return "\n".join(tables)


class Cluster:
    """Workers and schedulers over one configuration; stopped by :meth:`close`."""

    def __init__(self, tmp: Path, broker_url: str, database_url: str, sources_toml: str) -> None:
        self.home = tmp / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)
        self.config = tmp / "mpconnect.toml"
        self.config.write_text(
            "[distributed]\n"
            'broker = "${MPCONNECT_BROKER_URL}"\n'
            'database = "${MPCONNECT_DATABASE_URL}"\n\n' + sources_toml
        )
        self.database_url = database_url
        self.env = {
            **os.environ,
            "MPCONNECT_HOME": str(self.home),
            "MPCONNECT_CONFIG": str(self.config),
            "MPCONNECT_BROKER_URL": broker_url,
            "MPCONNECT_DATABASE_URL": database_url,
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "mpconnect", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)
        return process

    def worker(self, name: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        """Start ``mpconnect worker``; wait until it is ready for tasks."""
        process = self._start(name, "worker", "--concurrency", str(concurrency))
        self.wait_log(name, "ready.", process)
        return process

    def scheduler(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``mpconnect schedule --distributed``."""
        return self._start(name, "schedule", "--distributed")

    def log(self, name: str) -> str:
        """What process ``name`` wrote so far."""
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(
        self, name: str, text: str, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        """Wait until ``text`` appears in the log of ``name`` (at most two minutes)."""
        deadline = time.monotonic() + 120
        while text not in self.log(name):
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} never logged {text!r}:\n{self.log(name)[-3000:]}")
            time.sleep(0.1)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run an ``mpconnect`` command against the cluster."""
        return subprocess.run(
            [sys.executable, "-m", "mpconnect", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a query on the shared database."""
        with psycopg.connect(self.database_url, row_factory=dict_row) as db:
            return db.execute(sql.encode(), params).fetchall()

    def live_events(self, dataset_id: str) -> int | None:
        """Events in the dataset's live version in the embedded store (None: no version)."""
        store = DatasetStore(self.home / "embedded.sqlite3")
        try:
            if not store.has_dataset(dataset_id):
                return None
            live = store.live_version(dataset_id)
            if live is None:
                return None
            return store.contents(dataset_id, live.version_id).events_total
        finally:
            store.close()

    def wait_dispatches_ended(self, expected: int, timeout: float = 240) -> list[dict[str, Any]]:
        """Wait until ``expected`` dispatches exist and every one ended."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query("SELECT * FROM dispatches ORDER BY requested_at")
            if len(rows) >= expected and all(r["state"] not in ("queued", "running") for r in rows):
                return rows
            if time.monotonic() > deadline:
                states = [(r["source"], r["state"]) for r in rows]
                raise AssertionError(f"dispatches did not end: {states}")
            time.sleep(0.3)

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
        """SIGTERM the process (and its pool), then SIGKILL if it lingers."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # a pool process left behind

    def close(self) -> None:
        """Stop every process started."""
        for process in self.processes:
            self.stop(process)
