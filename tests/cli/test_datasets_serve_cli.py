"""``mpconnect serve`` as a user runs it: a real process, stopped with SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme
from datasets_support import b64, event

pytestmark = pytest.mark.timeout(60)

SERVING = re.compile(r"^serving the Datasets API on (https://127\.0\.0\.1:\d+) \(CA: (.+)\)$")


class Served:
    """A running ``mpconnect serve`` and what it printed (read by a thread, line by line)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def read_line(self, timeout: float = 20.0) -> str:
        """The next line of stdout; fails the test after ``timeout`` seconds or at exit."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"mpconnect serve printed nothing in {timeout} s") from None
        if line is None:
            raise AssertionError(f"mpconnect serve exited after printing {self.lines}")
        self.lines.append(line)
        return line

    def read_until(self, prefix: str) -> str:
        """Read lines until one starts with ``prefix``; return it."""
        while True:
            line = self.read_line()
            if line.startswith(prefix):
                return line

    def stop(self) -> tuple[int, str]:
        """SIGTERM; return the exit code and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.exited()

    def exited(self) -> tuple[int, str]:
        """Wait for the process to end by itself; return the exit code and stderr."""
        assert self.process.stderr is not None
        self.process.wait(timeout=20)
        return self.process.returncode, self.process.stderr.read()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """Return ``start(*args)``: ``mpconnect serve --port 0 ARGS`` running; stopped after."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        env = {**os.environ, "MPCONNECT_HOME": str(tmp_path / "home")}
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from mpconnect.cli import main; main()",
                "serve",
                "--port",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        served = Served(process)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait(timeout=20)


def test_serve_prints_its_url_and_ca_and_answers_the_api(serve, tmp_path: Path) -> None:
    store = tmp_path / "served.sqlite3"
    served = serve(
        "--dataset",
        "SKYTRAX",
        "--project-token",
        "PROJECT_TOKEN",
        "--project-secret",
        "API_SECRET",
        "--live-delay",
        "0",
        "--store",
        str(store),
        "--tls-dir",
        str(tmp_path / "tls"),
    )

    match = SERVING.match(served.read_line())
    assert match, served.lines
    url, ca = match.groups()
    assert ca == str(tmp_path / "tls" / "ca.pem")
    assert served.read_until("datasets:") == "datasets: SKYTRAX"
    assert all("API_SECRET" not in line for line in served.lines)
    session = requests.Session()
    session.auth = ("API_SECRET", "")
    created = session.post(
        f"{url}/datasets/SKYTRAX/versions", data={"token": "PROJECT_TOKEN"}, verify=ca, timeout=10
    ).json()["data"]
    imported = session.post(
        f"{url}/import-events",
        verify=ca,
        timeout=10,
        data={
            "data": b64([event(i) for i in range(3)]),
            "verbose": "1",
            "dataset_id": "SKYTRAX",
            "dataset_version": created["version_id"],
        },
    )
    assert imported.json() == {"error": None, "status": 1}

    code, err = served.stop()

    assert code == 0
    assert "stopped" in err
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mpconnect.cli import main; main()",
            "inspect",
            "SKYTRAX",
            "--store",
            str(store),
            "--version",
            created["version_id"],
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "MPCONNECT_HOME": str(tmp_path / "h")},
    )
    assert "events: 3" in shown.stdout, shown.stdout + shown.stderr


def test_serve_with_an_http_port_refuses_plain_http(serve) -> None:
    served = serve("--http-port", "0", "--project-secret", "s3")

    url = SERVING.match(served.read_line()).group(1)
    http_line = served.read_line()
    http_url = re.match(r"^plain HTTP on (http://127\.0\.0\.1:\d+) answers", http_line).group(1)
    response = requests.get(f"{http_url}/datasets/DEMO/versions", timeout=10)

    assert response.status_code == 403
    assert response.json()["error"].endswith(f"use {url}")
    assert served.read_until("datasets:") == "datasets: DEMO"


def test_serve_generates_and_prints_a_secret_when_none_is_given(serve) -> None:
    served = serve()

    url, ca = SERVING.match(served.read_line()).groups()
    secret_line = served.read_until("project secret")
    secret = secret_line.rsplit(": ", 1)[1]
    response = requests.get(
        f"{url}/datasets/DEMO/versions",
        auth=(secret, ""),
        params={"token": "local-project-token"},
        verify=ca,
        timeout=10,
    )

    assert response.json() == {"data": []}


def test_serve_injects_faults_from_its_options(serve) -> None:
    served = serve("--fail-rate", "1", "--project-secret", "s3")

    url, ca = SERVING.match(served.read_line()).groups()
    response = requests.get(
        f"{url}/datasets/DEMO/versions",
        auth=("s3", ""),
        params={"token": "local-project-token"},
        verify=ca,
        timeout=10,
    )

    assert response.status_code == 500


def test_serve_refuses_a_bad_dataset_id(serve) -> None:
    served = serve("--dataset", "NOT-OK")

    code, err = served.exited()

    assert code == 1
    assert (
        "--dataset 'NOT-OK' is not alphanumeric: it must be an alphanumeric string less "
        "than 256 characters"
    ) in err


def test_serve_wants_both_tls_files(serve, tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    served = serve("--tls-cert", str(cert))

    code, err = served.exited()

    assert code == 2
    assert "give both --tls-cert and --tls-key, or neither" in err


def test_serve_with_a_given_certificate(serve, tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    served = serve("--tls-cert", str(cert), "--tls-key", str(key), "--project-secret", "s3")

    line = served.read_line()
    url = re.match(
        r"^serving the Datasets API on (https://127\.0\.0\.1:\d+) "
        rf"\(certificate: {re.escape(str(cert))}\)$",
        line,
    ).group(1)
    response = requests.get(
        f"{url}/datasets/DEMO/versions",
        auth=("s3", ""),
        params={"token": "local-project-token"},
        verify=str(ca_file),
        timeout=10,
    )

    assert response.json() == {"data": []}
