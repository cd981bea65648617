"""Wall time of ``mpconnect run`` and ``mpconnect check`` against a closed port.

Four cases: the Stripe and Salesforce connectors reading from a closed port (into the
embedded sink), and the demo source loading into the datasets and ingestion sinks at a
closed port. Each command runs as a subprocess with a fresh MPCONNECT_HOME; prints the
seconds, the exit code and how many log lines mention a retry.

    .venv/bin/python bench/unreachable.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def configs(port: int) -> dict[str, tuple[str, str]]:
    """Per case: the configuration file's text and the source to run."""
    url = f"http://127.0.0.1:{port}"
    embedded = '[mixpanel]\nsink = "embedded"\n'
    return {
        "stripe": (
            embedded
            + f"""
[sources.billing]
connector = "stripe"
dataset_id = "BILLING"
[sources.billing.settings]
api_key = "${{STRIPE_KEY}}"
api_base = "{url}"
""",
            "billing",
        ),
        "salesforce": (
            embedded
            + f"""
[sources.crm]
connector = "salesforce"
dataset_id = "CRM"
[sources.crm.settings]
instance_url = "{url.replace("http://", "https://")}"
session_id = "${{SF_SESSION}}"
""",
            "crm",
        ),
        "datasets": (
            f"""
[mixpanel]
sink = "datasets"
api_url = "{url}"
allow_http_loopback = true
project_token = "tok"
secret = "${{MIXPANEL_SECRET}}"
""",
            "demo",
        ),
        "ingestion": (
            f"""
[mixpanel]
sink = "ingestion"
api_url = "{url}"
allow_http_loopback = true
project_token = "tok"
""",
            "demo",
        ),
    }


def main() -> None:
    """Run every case's ``run`` and ``check`` once and print the figures."""
    port = closed_port()
    exe = Path(sys.executable).with_name("mpconnect")
    for case, (text, source) in configs(port).items():
        with tempfile.TemporaryDirectory() as home:
            config = Path(home) / "mpconnect.toml"
            config.write_text(text)
            env = {
                **os.environ,
                "MPCONNECT_HOME": home,
                "STRIPE_KEY": "sk_test_x",
                "SF_SESSION": "00Dx!session",
                "MIXPANEL_SECRET": "s",
            }
            commands = [["run", source]] + ([["check", source]] if source != "demo" else [])
            for command in commands:
                start = time.monotonic()
                done = subprocess.run(
                    [str(exe), "--config", str(config), *command],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                seconds = time.monotonic() - start
                lines = (done.stdout + done.stderr).splitlines()
                retries = sum("retry" in line for line in lines)
                last = lines[-1] if lines else ""
                print(
                    f"{case:10} {' '.join(command):12} {seconds:6.1f} s  exit {done.returncode}"
                    f"  {retries:2d} retry lines  | {last[:240]}"
                )


if __name__ == "__main__":
    main()
