"""Module paths that moved in the new layout keep working for one release, with a warning."""

from __future__ import annotations

import importlib
import sys

import pytest

MOVED = [
    ("mpconnect.http", "mpconnect.transport.http", "JsonHttpClient"),
    ("mpconnect.retry", "mpconnect.transport.retry", "call_with_retries"),
    ("mpconnect.localserver", "mpconnect.emulator.background", "LocalServer"),
    ("mpconnect.datasets.server", "mpconnect.emulator.server", "LocalDatasetsServer"),
]


@pytest.mark.parametrize(("old", "new", "name"), MOVED)
def test_old_path_warns_and_is_the_moved_module(old: str, new: str, name: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize(
    "name",
    [
        "JsonHttpClient",
        "call_with_retries",
        "LocalServer",
        "ServedSource",
        "ServeOptions",
        "BackgroundServer",
    ],
)
def test_plugin_kit_is_public_api(name: str) -> None:
    import mpconnect

    assert name in mpconnect.__all__
    assert getattr(mpconnect, name).__name__ == name
