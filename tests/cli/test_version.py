"""``mpconnect --version`` says whether the C accelerator is in use."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mpconnect import event_lines
from mpconnect.cli import build_cli


def test_version_names_the_accelerators_state(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = CliRunner().invoke(build_cli(), ["--version"]).output
    assert shown.startswith("mpconnect, version 0.1.0\n")
    expected = "compiled" if event_lines.compiled() else "not compiled (no C compiler"
    assert shown.splitlines()[1].startswith(f"C accelerator: {expected}")

    monkeypatch.setenv("MPCONNECT_PURE_PYTHON", "1")
    shown = CliRunner().invoke(build_cli(), ["--version"]).output
    if event_lines.compiled():
        assert "C accelerator: compiled, switched off by MPCONNECT_PURE_PYTHON" in shown
