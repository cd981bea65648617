"""A real ``redis-server`` and a real PostgreSQL 15 for tests, from Debian's packages.

Each server runs on a free loopback port with its data (and, for PostgreSQL, its unix
socket) in a temporary directory, and is stopped at the end. PostgreSQL refuses to run as
root: when the tests run as root (CI), ``initdb`` and ``postgres`` run as the ``postgres``
user the Debian package creates. :meth:`stop` and :meth:`start` keep the data directory
and the port, so fault tests can restart a server under running clients.

Missing binaries skip the tests with the install line as the reason, unless
``MPCONNECT_REQUIRE_SERVERS=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

INSTALL = "apt-get install -y redis-server postgresql"
REQUIRE_ENV = "MPCONNECT_REQUIRE_SERVERS"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def missing(what: str) -> None:
    """Skip the test for want of ``what``, or fail when servers are required."""
    reason = f"{what} is not installed; {INSTALL}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires it)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}: {log.read_text()[-2000:]}")


class RedisServer:
    """``redis-server`` with append-only persistence (a restart keeps queued messages)."""

    def __init__(self) -> None:
        if not Path(REDIS_SERVER).exists():
            missing("redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="mpconnect-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart) the server on its port and data directory."""
        log = self.dir / "redis.log"
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.process, "redis-server", log)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM: it writes its append-only file)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresServer:
    """PostgreSQL 15 in a temporary data directory, trust authentication on loopback."""

    def __init__(self) -> None:
        if not (PG_BIN / "postgres").exists():
            missing("PostgreSQL 15")
        self.dir = Path(tempfile.mkdtemp(prefix="mpconnect-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        #: Popen's keywords that run a program as ``postgres`` when we are root.
        self._as: dict[str, object] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.dir,
            **self._as,  # type: ignore[arg-type]
        )

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        """Start (or restart) the server on its port and data directory."""
        log = self.dir / "postgres.log"
        handle = log.open("ab")
        self.process = subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.dir),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=handle,
            stderr=handle,
            cwd=self.dir,
            **self._as,  # type: ignore[arg-type]
        )
        handle.close()
        _wait_port(self.port, self.process, "postgres", log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self, fast: bool = True) -> None:
        """Stop the server; ``fast``: abort client sessions (a crash seen by clients)."""
        if self.process is not None and self.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown, SIGTERM its smart one.
            self.process.send_signal(signal.SIGINT if fast else signal.SIGTERM)
            self.process.wait(60)
        self.process = None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
