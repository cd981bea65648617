"""The README's "Try every connector locally" section, run as written.

Its shell blocks are taken from the README itself. The lines of the first block that end
in ``&`` start servers: each is started here in the background (as the user's shell
would), waited for until it has printed its settings, and stopped afterwards. The other
blocks run, in order, as one bash script in the same empty directory. The only change
made to the text: the section's three fixed ports (8443, 12111, 12112) become free ports,
so that two test runs on one machine never collide. The settings each server printed are
then compared with the ones the README pastes.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("stripe")
pytest.importorskip("simple_salesforce")

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Try every connector locally"
PORTS = ("8443", "12111", "12112")
READY = "press Ctrl-C to stop"

pytestmark = pytest.mark.timeout(240)


def section_text() -> str:
    """The section, from its heading to the next one."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]


def shell_blocks(text: str) -> list[str]:
    """The section's ```bash blocks, in order."""
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pasted_toml(printed: str) -> dict:
    """The TOML a server printed to paste."""
    part = printed.split("paste into mpconnect.toml:", 1)[1]
    part = part.split("and set its secret", 1)[0].split(READY, 1)[0]
    return tomllib.loads(part)


def wait_until_ready(path: Path, process: subprocess.Popen[bytes]) -> str:
    """Wait (at most 60 s) until the server wrote its last line to ``path``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if READY in text:
            return text
        if process.poll() is not None:
            pytest.fail(f"{path.name}: the server exited ({process.returncode}): {text}")
        time.sleep(0.1)
    pytest.fail(f"{path.name}: no '{READY}' in 60 s")


def test_the_section_follows_the_quickstart() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", readme, flags=re.MULTILINE)

    assert headings[headings.index("Quickstart") + 1] == SECTION.removeprefix("## ")


def test_the_readme_commands_load_stripe_and_salesforce_into_local_mixpanel(
    tmp_path: Path,
) -> None:
    text = section_text()
    for port in PORTS:
        text = text.replace(port, str(free_port()))
    servers_block, *other_blocks = shell_blocks(text)
    server_lines = [
        line for line in servers_block.splitlines() if line and not line.startswith("#")
    ]
    assert len(server_lines) == 3 and all(line.endswith(" &") for line in server_lines)
    work = tmp_path / "try"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPCONNECT_", "SF_"))}
    env.update(
        MPCONNECT_HOME=str(tmp_path / "home"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        printed = {}
        for line in server_lines:
            command = line.removesuffix("&").strip()
            output = work / command.rsplit("> ", 1)[1].strip()
            process = subprocess.Popen(
                ["bash", "-c", f"exec {command}"], cwd=work, env=env, stdin=subprocess.DEVNULL
            )
            started.append(process)
            printed[output.stem] = (output, process)
        printed_text = {
            name: wait_until_ready(path, process) for name, (path, process) in printed.items()
        }

        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(other_blocks)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)

    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "billing: succeeded" in ran.stdout
    assert "crm: succeeded" in ran.stdout
    assert "via datasets" in ran.stdout  # into the local Mixpanel server, not the embedded store
    assert re.search(r"^events: [1-9]\d*$", ran.stdout, flags=re.MULTILINE), ran.stdout
    assert "dataset SALESFORCE version" in ran.stdout
    versions = ran.stdout.split("VERSION", 1)[1].splitlines()[1]
    assert versions.split()[2] == "yes"  # STRIPE's version is live

    # What the README pastes is what the servers printed (CA paths relative to the directory).
    config = tomllib.loads((work / "mpconnect.toml").read_text())
    assert config["mixpanel"] | {"ca_bundle": None} == (
        pasted_toml(printed_text["mixpanel"])["mixpanel"] | {"ca_bundle": None}
    )
    for name, source in (("stripe", "billing"), ("salesforce", "crm")):
        expected = pasted_toml(printed_text[name])["sources"][source]
        pasted = config["sources"][source]
        if "ca_bundle" in pasted["settings"]:
            pasted["settings"]["ca_bundle"] = str(
                (work / pasted["settings"]["ca_bundle"]).resolve()
            )
        assert pasted == expected
    assert (
        Path(pasted_toml(printed_text["mixpanel"])["mixpanel"]["ca_bundle"])
        == (work / config["mixpanel"]["ca_bundle"]).resolve()
    )
    exports = "\n".join(other_blocks)
    for name in ("stripe", "salesforce"):
        for line in printed_text[name].splitlines():
            if line.startswith("export "):
                assert line in exports, f"the README does not export {line!r}"
