"""The Stripe connector is a plugin like any other, and imports without ``stripe``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mpconnect.plugins import load_plugins
from mpconnect_stripe import StripeConnector

pytestmark = pytest.mark.timeout(60)


def test_registered_through_the_entry_point():
    plugins = load_plugins()
    entry = plugins.connector("stripe")
    assert entry.cls is StripeConnector
    assert entry.available
    assert entry.provider.plugin == "stripe"
    assert entry.provider.distribution == "mpconnect"
    assert not [error for error in plugins.load_errors if "stripe" in error]


def test_imports_and_is_listed_unavailable_without_the_stripe_library():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["stripe"] = None  # as if mpconnect[stripe] were not installed
        import importlib.util
        real_find_spec = importlib.util.find_spec
        def find_spec(name, *args):
            return None if name == "stripe" else real_find_spec(name, *args)
        importlib.util.find_spec = find_spec
        import mpconnect_stripe
        from mpconnect.plugins import load_plugins
        from mpconnect import ConnectorUnavailable
        entry = load_plugins().connectors["stripe"]
        print("available:", entry.available)
        print("reason:", entry.unavailable_reason)
        try:
            load_plugins().connector("stripe")
        except ConnectorUnavailable as exc:
            print("error:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "available: False" in done.stdout
    assert 'reason: needs stripe: pip install "mpconnect[stripe]"' in done.stdout
    assert "error: connector 'stripe' needs stripe: pip install \"mpconnect[stripe]\"" in (
        done.stdout
    )


def test_uses_only_the_public_api():
    import ast
    from pathlib import Path

    import mpconnect_stripe

    public = {"mpconnect"}
    for path in Path(mpconnect_stripe.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("mpconnect")
                and not node.module.startswith("mpconnect_stripe")
            ):
                assert node.module in public, f"{path.name} imports {node.module}"
