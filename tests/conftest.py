"""Fixtures shared by every test.

Every test gets its own ``$MPCONNECT_HOME`` and its own working directory (so no
``./mpconnect.toml`` of the developer's is picked up), with mpconnect's environment
variables cleared. ``cli`` runs the real command line built by ``build_cli``;
``write_config`` writes a configuration file.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import click.testing
import pytest

from mpconnect.cli import build_cli

#: Fixtures of the local Mixpanel servers and of real Redis/PostgreSQL servers, used by
#: the tests of several rooms
#: (``tests/support/``, on the path through ``pythonpath`` in pyproject.toml).
pytest_plugins = ["datasets_fixtures", "ingestion_fixtures", "servers_fixtures"]

_MPCONNECT_ENV = (
    "MPCONNECT_CONFIG",
    "MPCONNECT_DISABLE_PLUGINS",
    "MPCONNECT_DEBUG",
    "MIXPANEL_SECRET",
    "MIXPANEL_PROJECT_TOKEN",
)


@pytest.fixture(autouse=True)
def mpconnect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$MPCONNECT_HOME`` for this test, and an empty working directory."""
    home = tmp_path / "mpconnect-home"
    monkeypatch.setenv("MPCONNECT_HOME", str(home))
    for name in _MPCONNECT_ENV:
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Return ``write(text, name="mpconnect.toml")``: write a TOML file, return its path.

    The text is dedented, so tests can indent it naturally.
    """

    def write(text: str, name: str = "mpconnect.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def demo_config(write_config: Callable[..., Path]) -> Path:
    """A configuration whose ``demo`` source makes 1500 events and 150 profiles."""
    return write_config(
        """
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"

        [sources.demo.settings]
        events = 1500
        """
    )


CliInvoke = Callable[..., click.testing.Result]


@pytest.fixture
def cli() -> Iterator[CliInvoke]:
    """Return ``invoke(*args, plugins=(), entry_points=True, env=None)``.

    Each call builds a fresh command group with ``build_cli(extra_plugins=plugins)`` and
    runs it with click's ``CliRunner``; the result has ``exit_code``, ``stdout``,
    ``stderr`` and ``exception``. Exceptions are caught, as a user would see them.
    """
    logger = logging.getLogger("mpconnect")
    saved = (logger.level, logger.propagate, list(logger.handlers))

    def invoke(
        *args: object,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        env: dict[str, str] | None = None,
    ) -> click.testing.Result:
        command = build_cli(extra_plugins=tuple(plugins), entry_points=entry_points)
        runner = click.testing.CliRunner()
        return runner.invoke(command, [str(arg) for arg in args], env=env)

    yield invoke
    # The CLI points mpconnect's logger at the runner's (now closed) stderr: undo that.
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]
