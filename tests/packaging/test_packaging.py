"""Packaging: the wheel holds every package (the core and each connector under
``connectors/``), declares the built-in plugins as entry points, and works installed on
its own, without this source tree."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "core"
CONNECTORS = REPO / "connectors"


def connector_packages() -> set[str]:
    """Every package directory under connectors/ (one with an ``__init__.py``)."""
    return {p.name for p in CONNECTORS.iterdir() if (p / "__init__.py").is_file()}


def source_modules() -> set[str]:
    """Every module of every package, as paths inside a wheel."""
    found = set()
    for root, packages in ((CORE, {"mpconnect"}), (CONNECTORS, connector_packages())):
        for package in packages:
            for path in (root / package).rglob("*.py"):
                if "__pycache__" not in path.parts:
                    found.add(path.relative_to(root).as_posix())
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this tree, once per module."""
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)]
    if importlib.util.find_spec("hatchling") is not None:
        command.insert(4, "--no-isolation")  # the backend is here: no download needed
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("mpconnect-*.whl")
    return built


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    """The paths inside the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def dist_info_file(wheel: Path, names: set[str], name: str) -> str:
    """Read one file of the wheel's ``.dist-info``."""
    [path] = [n for n in names if n.count("/") == 1 and n.endswith(f".dist-info/{name}")]
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(path).decode()


def test_every_package_is_in_the_wheel(names: set[str]) -> None:
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}

    assert "mpconnect_demo" in connector_packages()
    assert top_level == {"mpconnect"} | connector_packages()


def test_every_module_of_every_package_is_in_the_wheel(names: set[str]) -> None:
    missing = source_modules() - names

    assert "mpconnect/cli/__init__.py" in source_modules()
    assert not missing


def test_the_local_servers_data_files_are_in_the_wheel(wheel: Path, names: set[str]) -> None:
    assert "mpconnect_stripe/localserver/stripe_fixtures.json" in names
    parser = configparser.ConfigParser()
    parser.read_string(dist_info_file(wheel, names, "entry_points.txt"))
    assert parser["mpconnect"]["builtin_servers"] == "mpconnect.cli.serve_builtin"


def test_the_status_pages_templates_and_assets_are_in_the_wheel(names: set[str]) -> None:
    ui = REPO / "core" / "mpconnect" / "ui"
    shipped = {
        f"mpconnect/ui/{p.relative_to(ui).as_posix()}"
        for folder in ("templates", "static")
        for p in (ui / folder).iterdir()
    }
    assert "mpconnect/ui/static/uPlot.iife.min.js" in shipped
    assert "mpconnect/ui/templates/run.html" in shipped
    assert shipped <= names


def test_the_wheel_marks_the_package_typed(names: set[str]) -> None:
    """Plugin authors type against mpconnect: the wheel carries the PEP 561 marker."""
    assert "mpconnect/py.typed" in names


def test_the_wheel_holds_no_tests_or_caches(names: set[str]) -> None:
    assert not [
        n for n in names if n.startswith("tests/") or "__pycache__" in n or n.endswith(".pyc")
    ]


def test_the_wheel_declares_the_builtin_plugins(wheel: Path, names: set[str]) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(dist_info_file(wheel, names, "entry_points.txt"))

    plugins = dict(parser["mpconnect"])
    assert plugins["builtin_sinks"] == "mpconnect.sinks.builtin"
    assert plugins["demo"] == "mpconnect_demo"
    assert connector_packages() <= set(plugins.values())
    for module in plugins.values():
        assert (
            f"{module.replace('.', '/')}/__init__.py" in names
            or f"{module.replace('.', '/')}.py" in names
        )
    assert dict(parser["console_scripts"]) == {"mpconnect": "mpconnect.cli:main"}


def test_the_wheel_declares_the_extras(wheel: Path, names: set[str]) -> None:
    metadata = Parser().parsestr(dist_info_file(wheel, names, "METADATA"))

    assert metadata["Name"] == "mpconnect"
    assert {"stripe", "salesforce", "all", "dev"} <= set(metadata.get_all("Provides-Extra"))
    requires = metadata.get_all("Requires-Dist")
    assert any(
        r.startswith("stripe") and "extra == 'stripe'" in r.replace('"', "'") for r in requires
    )
    assert any(
        r.startswith("simple-salesforce") and "extra == 'salesforce'" in r.replace('"', "'")
        for r in requires
    )


def test_the_installed_wheel_works_without_the_source_tree(
    wheel: Path, tmp_path: Path, mpconnect_home: Path
) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    dependencies = sysconfig.get_paths()["purelib"]
    script = (
        "import sys, json, mpconnect, mpconnect_demo\n"
        "print(json.dumps([mpconnect.__file__, mpconnect_demo.__file__]))\n"
        "from mpconnect.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    # -S: no site module, so the editable install's .pth does not put the tree on sys.path.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), dependencies]),
        "MPCONNECT_HOME": str(mpconnect_home),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", "-c", script, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    listed = run("connectors", "list", "--json")
    ran = run("run", "demo", "--quiet")
    inspected = run("inspect", "DEMO", "--json")

    assert listed.returncode == 0, listed.stderr
    first_line, rest = listed.stdout.split("\n", 1)
    assert all(path.startswith(str(site)) for path in json.loads(first_line))
    demo = next(row for row in json.loads(rest) if row["name"] == "demo")
    assert demo["available"] and demo["distribution"] == "mpconnect"
    assert ran.returncode == 0, ran.stderr
    report = json.loads(inspected.stdout.split("\n", 1)[1])
    assert report["events_total"] == 10_000


def test_the_wheel_carries_the_compiled_accelerator_and_is_tagged_for_it(
    wheel: Path, names: set[str]
) -> None:
    if os.environ.get("MPCONNECT_REQUIRE_COMPILED") != "1" and "-py3-none-any" in wheel.name:
        pytest.skip("no C compiler here: the wheel is pure Python")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert f"mpconnect/_speedups{suffix}" in names
    assert "mpconnect/_speedups.c" not in names
    tag = dist_info_file(wheel, names, "WHEEL")
    assert "Root-Is-Purelib: false" in tag and "-py3-none-any" not in wheel.name


def test_without_a_c_compiler_the_wheel_is_built_pure_python_and_says_why(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(REPO)]
    if importlib.util.find_spec("hatchling") is not None:
        command.insert(4, "--no-isolation")
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler")}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=240, check=False, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the C accelerator was not compiled" in done.stdout + done.stderr
    [built] = tmp_path.glob("mpconnect-*.whl")
    assert built.name == "mpconnect-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(built) as archive:
        assert not [name for name in archive.namelist() if "_speedups" in name and ".so" in name]


def readme_install_lines() -> list[str]:
    """The commands of the README's "Installing" section, comments removed."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Installing\n", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```bash\n")[1:]
    return [
        line.split("  #", 1)[0].strip()
        for block in blocks
        for line in block.split("```", 1)[0].splitlines()
        if line.strip()
    ]


def test_the_readme_says_no_release_and_installs_from_a_checkout_or_a_wheel() -> None:
    section = (REPO / "README.md").read_text().split("\n## Installing\n", 1)[1]
    installs = [line for line in readme_install_lines() if line.startswith("pip install")]

    assert "No release of mpconnect is published" in section.split("\n## ", 1)[0]
    assert installs
    for line in installs:
        target = line.removeprefix("pip install ").strip('"')
        assert target.startswith(".") or " @ file://" in target, line


def test_the_readme_install_lines_resolve_without_an_index(wheel: Path, tmp_path: Path) -> None:
    """Each line, with the wheel built here, names mpconnect and the extras it asks for."""
    for line in readme_install_lines():
        if not line.startswith("pip install"):
            continue
        target = line.removeprefix("pip install ").strip('"')
        target = target.replace(
            "$(ls $PWD/dist/mpconnect-0.1.0-*.whl)", str(wheel).lstrip("/")
        ).replace("file://", "file:///")
        report = tmp_path / "report.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--no-deps",
                "--no-index",
                "--no-build-isolation",
                "--quiet",
                "--report",
                str(report),
                target,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        [item] = json.loads(report.read_text())["install"]
        assert item["metadata"]["name"] == "mpconnect"
        extras = target.split("[", 1)[1].split("]", 1)[0] if "[" in target else ""
        assert sorted(item.get("requested_extras") or []) == sorted(filter(None, [extras]))


def test_ci_builds_and_installs_the_wheel_in_a_fresh_environment_then_runs_the_tests() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    lines = [
        line.strip()
        for line in ci.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    assert 'python -m build --outdir "$dist" .' in ci
    assert 'python -m venv "$dist/fresh"' in ci
    assert 'fresh/bin/python -m pip install --quiet "mpconnect[stripe] @ file://$wheel"' in ci
    assert {"fresh/bin/mpconnect connectors list", "fresh/bin/mpconnect run demo --quiet"} <= set(
        lines
    )
    assert lines[-1] == 'pip install -e ".[dev]" && pytest'
