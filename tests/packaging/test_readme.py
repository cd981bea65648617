"""The README's commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quickstart, re.S)
    return [
        line for block in blocks for line in block.splitlines() if line and not line.startswith("#")
    ]


def test_the_quickstart_is_two_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert "mpconnect run demo" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _quickstart_commands()[1].split(" && ", 2)[-1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci, f"{test_command!r} is not what .ci/run runs"
