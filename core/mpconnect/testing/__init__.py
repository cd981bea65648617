"""Helpers for testing connectors and plugins: the public kit for plugin authors.

Two levels, from the fastest to the most complete:

- :func:`run_connector` runs a connector's generators with given settings and returns
  what a run would send, validated exactly as the engine validates it (no engine, no
  store, no plugins).
- :func:`run_source` runs the real engine (lock, version, spool, upload, publish, live)
  into the embedded store in a directory of your choosing, with plugin objects
  registered for that run only, and returns what the live version holds.
  :class:`EmbeddedTarget` wraps it for one temporary directory and adds
  :meth:`EmbeddedTarget.cli` to run ``mpconnect`` commands against the same store.

With pytest, make this module a plugin of your test suite (``conftest.py``)::

    pytest_plugins = ["mpconnect.testing"]

and use its fixtures: ``mpconnect_home`` (``$MPCONNECT_HOME`` in a temporary
directory), ``embedded`` (an :class:`EmbeddedTarget` there) and ``datasets_server`` (the
local Datasets API server, from ``mpconnect[server]``). A plugin object is registered
for one test by passing it: ``embedded.run(..., plugins=[obj])``,
``embedded.cli(..., plugins=[obj])`` or ``load_test_plugins(obj)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "Collected",
    "EmbeddedTarget",
    "LoadedVersion",
    "QuarantinedRecord",
    "assert_incremental_matches_full",
    "connector_plugin",
    "datasets_sink_settings",
    "load_test_plugins",
    "local_datasets_server",
    "run_cli",
    "run_connector",
    "run_source",
    "serve_in_background",
]

from mpconnect.testing.collect import (
    Collected,
    QuarantinedRecord,
    connector_plugin,
    load_test_plugins,
    run_connector,
)
from mpconnect.testing.engine_runs import EmbeddedTarget, LoadedVersion, run_cli, run_source
from mpconnect.testing.incremental import assert_incremental_matches_full
from mpconnect.testing.servers import (  # the constants and class importable as before
    TEST_PROJECT_SECRET,  # noqa: F401
    TEST_PROJECT_TOKEN,  # noqa: F401
    ServedInBackground,  # noqa: F401
    datasets_sink_settings,
    local_datasets_server,
    serve_in_background,
)

# -- pytest fixtures (active when a test suite lists this module in pytest_plugins) -----

try:
    import pytest
except ImportError:  # pytest is only needed for the fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def mpconnect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """``$MPCONNECT_HOME`` set to a fresh temporary directory for one test."""
        home = tmp_path / "mpconnect-home"
        home.mkdir()
        monkeypatch.setenv("MPCONNECT_HOME", str(home))
        return home

    @pytest.fixture
    def embedded(mpconnect_home: Path) -> EmbeddedTarget:
        """An :class:`EmbeddedTarget` in the test's ``$MPCONNECT_HOME``."""
        return EmbeddedTarget(mpconnect_home)

    @pytest.fixture
    def datasets_server(tmp_path: Path) -> Iterator[Any]:
        """A local Datasets API server for one test (see :func:`local_datasets_server`)."""
        with local_datasets_server(tmp_path / "datasets-server") as server:
            yield server
