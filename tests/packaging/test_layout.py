"""The package layout: imports run down the rooms of DESIGN.md, never up.

Rooms, lowest first (a module may import its own room and any lower one):

0. the package root: the plugin contract (``hookspecs``, ``plugins``, ``connector``,
   ``records``), ``config``, errors and the value types the rooms above share;
1. ``transport/``; 2. ``mixpanel/`` and ``store/``; 3. ``sinks/`` and ``emulator/``;
4. ``engine/``; 5. ``scheduler/``; 6. ``distributed/``; 7. ``ui/``; 8. ``cli/``;
9. ``testing`` and ``__main__``.

Imports under ``if TYPE_CHECKING:`` are not counted: they name a type for the checker and
run nothing. Rooms of the same rank do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mpconnect

PACKAGE = Path(mpconnect.__file__).parent
CONNECTORS = PACKAGE.parent.parent / "connectors"

RANKS: dict[str, int] = {
    "": 0,
    "transport": 1,
    "mixpanel": 2,
    "store": 2,
    "sinks": 3,
    "emulator": 3,
    "engine": 4,
    "scheduler": 5,
    "distributed": 6,
    "ui": 7,
    "cli": 8,
    "testing": 9,
    "__main__": 9,
}
#: Modules kept for one release at their old paths; each is only an alias of a moved one.
DEPRECATED_ALIASES = {"http", "retry", "localserver", "datasets"}


def _room(module: str) -> str | None:
    """The room of ``mpconnect.X...``: its first package under mpconnect, else the root."""
    parts = module.split(".")
    if parts[0] != "mpconnect":
        return None
    if len(parts) == 1:
        return ""
    first = parts[1]
    if first in ("testing", "__main__"):
        return first
    return first if (PACKAGE / first).is_dir() else ""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import that runs, with ``from mpconnect import X``
    resolved to the module that ``mpconnect.__getattr__`` imports for X."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    package = (
        _module_name(path)
        if path.name == "__init__.py"
        else (_module_name(path).rpartition(".")[0])
    )
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base == "mpconnect":
                lazy = mpconnect._LAZY_MODULE
                found += [(node.lineno, lazy.get(alias.name, "mpconnect")) for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def _core_modules() -> list[Path]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if top not in DEPRECATED_ALIASES:
            modules.append(path)
    return modules


def test_every_folder_of_the_package_is_a_ranked_room() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders - DEPRECATED_ALIASES <= set(RANKS), "add the new room to RANKS and DESIGN"


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_upward(path: Path) -> None:
    own = _room(_module_name(path))
    assert own is not None
    upward = []
    for line, module in _runtime_imports(path):
        room = _room(module)
        if room is None or room == own:
            continue
        if room in DEPRECATED_ALIASES or RANKS[room] >= RANKS[own]:
            upward.append(f"line {line}: {module} (room {room or 'root'!r})")
    assert not upward, f"{own or 'root'} imports upward or sideways: {upward}"


def test_the_engine_imports_no_concrete_sink_and_no_cli() -> None:
    bad = []
    for path in sorted((PACKAGE / "engine").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else ([a.name for a in node.names] if isinstance(node, ast.Import) else [])
            )
            for name in names:
                if (
                    name.startswith("mpconnect.sinks.") and name != "mpconnect.sink"
                ) or name.startswith("mpconnect.cli"):
                    bad.append(f"{path.name}:{node.lineno} imports {name}")
    assert not bad


def _connector_modules() -> list[Path]:
    return sorted(CONNECTORS.rglob("*.py"))


@pytest.mark.parametrize("path", _connector_modules(), ids=lambda p: str(p.relative_to(CONNECTORS)))
def test_connectors_import_only_the_public_api(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.startswith("mpconnect.")]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.startswith("mpconnect."):
                bad.append(node.module)
            elif node.module == "mpconnect":
                bad += [
                    f"mpconnect.{a.name}" for a in node.names if a.name not in mpconnect.__all__
                ]
    assert not bad, f"{path.name} reaches past mpconnect's public API: {bad}"


def test_the_architecture_document_lists_every_room() -> None:
    document = (PACKAGE.parent.parent / "docs" / "architecture.md").read_text()
    listed = {
        line.removeprefix("### ").strip("`").rstrip("/")
        for line in document.splitlines()
        if line.startswith("### ")
    }
    folders = {
        p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    } - DEPRECATED_ALIASES
    assert listed - {"root"} == folders


TESTS = Path(__file__).resolve().parents[1]
#: Test folders named otherwise than their room: the package root is the contract.
TEST_FOLDER = {"": "contract"}
#: Test folders that are no room: shared helpers, the wheel and the docs, the connectors.
NOT_ROOMS = {"support", "packaging", "connectors", "__pycache__"}


def test_the_test_tree_mirrors_the_package() -> None:
    rooms = {
        p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    } - DEPRECATED_ALIASES
    expected = {TEST_FOLDER.get(room, room) for room in rooms | {"", "testing"}}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir()} - NOT_ROOMS
    assert expected - folders == set(), "every room of the package has a folder under tests/"
    assert folders - expected == set(), "every folder under tests/ is a room of the package"
    connectors = {p.name.removeprefix("mpconnect_") for p in CONNECTORS.glob("mpconnect_*")}
    assert connectors <= {p.name for p in (TESTS / "connectors").iterdir() if p.is_dir()}


def test_no_test_file_lies_outside_a_room() -> None:
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == []


MAX_MODULE_LINES = 450


def test_no_module_is_over_450_lines() -> None:
    modules = [*PACKAGE.rglob("*.py"), *CONNECTORS.rglob("*.py")]
    long = {
        str(path.relative_to(PACKAGE.parent.parent)): lines
        for path in modules
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, "split these modules into smaller ones, each with one job"
