"""The plugin author's guide stays complete: every hook documented and tested.

In the manner of datasette's ``test_plugin_hooks_have_tests`` and its docs tests: the
hooks are read from ``mpconnect.hookspecs`` itself, so a new hook fails these tests until
``docs/plugins.md`` shows its exact signature and ``tests/contract/test_hooks.py`` has a
``test_hook_<name>``.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest

import mpconnect.testing
from mpconnect import hookspecs

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
HOOK_TESTS = ROOT / "tests" / "contract" / "test_hooks.py"

pytestmark = pytest.mark.timeout(30)


def hook_names() -> list[str]:
    """The hooks the spec module declares (functions marked by the hookspec marker)."""
    return [
        name
        for name, value in vars(hookspecs).items()
        if callable(value) and hasattr(value, "mpconnect_spec")
    ]


def signature_text(name: str) -> str:
    """``def NAME(ARGS) -> RETURN`` exactly as written in the spec module."""
    node = ast.parse(textwrap.dedent(inspect.getsource(getattr(hookspecs, name)))).body[0]
    assert isinstance(node, ast.FunctionDef)
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"def {name}({ast.unparse(node.args)}){returns}"


def test_the_spec_module_declares_hooks() -> None:
    assert "register_connectors" in hook_names()
    assert len(hook_names()) >= 7


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_in_the_guide_with_its_exact_signature(hook: str) -> None:
    guide = GUIDE.read_text(encoding="utf-8")

    assert f"### {hook}\n" in guide, f"docs/plugins.md has no '### {hook}' section"
    assert signature_text(hook) in guide, (
        f"docs/plugins.md does not show the signature of {hook} as the spec declares it:\n"
        f"    {signature_text(hook)}"
    )
    section = guide.split(f"### {hook}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    assert "@mpconnect.hookimpl" in section, f"the {hook} section has no example"


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_test_of_its_own(hook: str) -> None:
    tests = ast.parse(HOOK_TESTS.read_text(encoding="utf-8"))
    names = {node.name for node in tests.body if isinstance(node, ast.FunctionDef)}

    assert f"test_hook_{hook}" in names, f"tests/contract/test_hooks.py has no test_hook_{hook}"


def test_the_guide_documents_no_hook_that_does_not_exist() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    hooks_part = guide.split("\n## Hooks\n", 1)[1].split("\n## ", 1)[0]

    documented = re.findall(r"^### (\w+)$", hooks_part, flags=re.MULTILINE)
    assert sorted(documented) == sorted(hook_names())


def test_every_python_example_in_the_guide_is_valid_python() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)

    assert len(blocks) >= 10
    for number, block in enumerate(blocks, 1):
        try:
            compile(block, f"docs/plugins.md python block {number}", "exec")
        except SyntaxError as exc:
            pytest.fail(f"docs/plugins.md python block {number} does not parse: {exc}\n{block}")


def test_the_guide_covers_the_testing_kit() -> None:
    guide = GUIDE.read_text(encoding="utf-8")

    for name in mpconnect.testing.__all__:
        if name in {
            "QuarantinedRecord",
            "Collected",
            "LoadedVersion",
            "EmbeddedTarget",
            "local_datasets_server",
        }:
            continue  # types and the context manager behind documented fixtures
        assert f"`{name}" in guide, f"docs/plugins.md does not mention mpconnect.testing.{name}"
    for fixture in ("embedded", "mpconnect_home", "datasets_server"):
        assert f"`{fixture}` fixture" in guide


def test_the_guide_covers_what_the_issue_asks_for() -> None:
    guide = GUIDE.read_text(encoding="utf-8")

    for heading in (
        "## The connector contract",
        "## Hooks",
        "## Records and their rules",
        "## Identity and `$insert_id`",
        "## Testing: `mpconnect.testing`",
        "## Publishing",
    ):
        assert f"\n{heading}\n" in guide, f"docs/plugins.md has no section {heading!r}"


def test_the_readme_links_the_guide() -> None:
    assert "docs/plugins.md" in (ROOT / "README.md").read_text(encoding="utf-8")
