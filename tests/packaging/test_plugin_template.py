"""The plugin template proves itself, and the kit it builds on works.

The template is rendered with nothing but a name, the generated plugin is installed into
a directory on ``PYTHONPATH`` of the subprocesses (so the shared environment never sees
it, even if this test dies), its own test suite and linter run, and mpconnect's command
line lists it and loads it into the embedded store with the expected counts. Then:
refused names, the other answers, and ``copier update`` bringing a template change in.

The kit the template builds on is tested in ``test_http.py`` (``mpconnect.transport.http``) and
``test_testing_kit.py`` (``mpconnect.testing``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugin_template"
PYTHON = sys.executable
TIMEOUT = 180  # seconds for any one subprocess

pytestmark = pytest.mark.timeout(300)


def run(
    args: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a subprocess with no standard input (so nothing can prompt) and a timeout."""
    result = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def git_env() -> dict[str, str]:
    """The environment with a git identity, for the commits copier update needs."""
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def copy_template(destination: Path) -> Path:
    """The working tree's template, outside the repository (copier renders it as is)."""
    shutil.copytree(TEMPLATE, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


def render(template: Path, destination: Path, *data: str) -> subprocess.CompletedProcess[str]:
    """``copier copy --data ... TEMPLATE DEST``, as a user types it."""
    args = [PYTHON, "-m", "copier", "copy", "--quiet"]
    for item in data:
        args += ["--data", item]
    return run([*args, str(template), str(destination)], check=False, env=git_env())


class Generated:
    """The rendered Acme CRM plugin, installed where only our subprocesses look."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.project = base / "mpconnect-acme-crm"
        self.site = base / "site"
        self.home = base / "home"
        self.rendered = render(copy_template(base / "template"), self.project, "name=Acme CRM")

    def install(self) -> None:
        command = [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(self.site),
            str(self.project),
        ]
        if importlib.util.find_spec("hatchling") is not None:
            # The generated project's build backend is here: build offline.
            command[5:5] = ["--no-build-isolation", "--no-index"]
        run(command)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("MPCONNECT_CONFIG", "MPCONNECT_DISABLE_PLUGINS")
        }
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.site), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env["MPCONNECT_HOME"] = str(self.home)
        env.update(extra)
        return env

    def mpconnect(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The ``mpconnect`` command of this environment."""
        script = Path(PYTHON).with_name("mpconnect")
        command = (
            [str(script)]
            if script.exists()
            else [PYTHON, "-c", "from mpconnect.cli import main; main()"]
        )
        return run([*command, *args], env=self.env(**env), cwd=self.base)

    def fake_api(self) -> ModuleType:
        """The generated project's own local stand-in API module (its localserver)."""
        spec = importlib.util.spec_from_file_location(
            "acme_crm_fake_api", self.project / "src" / "mpconnect_acme_crm" / "localserver.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    project = Generated(tmp_path_factory.mktemp("plugin"))
    assert project.rendered.returncode == 0, project.rendered.stderr
    project.install()
    return project


# -- the rendered project ------------------------------------------------------------------


def test_rendering_with_only_the_name_derives_everything(generated: Generated) -> None:
    project = generated.project
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())

    assert pyproject["project"]["name"] == "mpconnect-acme-crm"
    assert any(dep.startswith("mpconnect") for dep in pyproject["project"]["dependencies"])
    assert pyproject["project"]["entry-points"]["mpconnect"] == {"acme_crm": "mpconnect_acme_crm"}
    assert pyproject["project"]["license"] == "MIT"
    assert pyproject["project"]["requires-python"] == ">=3.11"
    connector = (project / "src" / "mpconnect_acme_crm" / "connector.py").read_text()
    assert 'name = "acme_crm"' in connector
    readme = (project / "README.md").read_text()
    for command in (
        "pip install -e .",
        "mpconnect connectors list",
        "mpconnect run acme_crm",
        "pytest",
    ):
        assert command in readme
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert 'pip install -e ".[test]"' in workflow
    assert "run: pytest" in workflow
    assert "MIT License" in (project / "LICENSE").read_text()
    answers = (project / ".copier-answers.yml").read_text()
    assert "name: Acme CRM" in answers


def test_the_generated_project_passes_its_own_tests(generated: Generated) -> None:
    result = run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=generated.project,
        env=generated.env(),
        check=False,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 10


def test_the_generated_project_is_lint_clean(generated: Generated) -> None:
    result = run(
        [PYTHON, "-m", "ruff", "check", "--no-cache", "."], cwd=generated.project, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_connectors_list_shows_the_new_connector(generated: Generated) -> None:
    result = generated.mpconnect("connectors", "list", "--json")

    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["acme_crm"]["available"] is True
    assert rows["acme_crm"]["distribution"] == "mpconnect-acme-crm"
    assert rows["acme_crm"]["plugin"] == "acme_crm"
    assert "demo" in rows


def test_mpconnect_run_loads_the_expected_counts(generated: Generated) -> None:
    fake_api = generated.fake_api()
    config = generated.base / "mpconnect.toml"
    with fake_api.FakeApi() as api:
        config.write_text(
            '[sources.acme]\nconnector = "acme_crm"\ndataset_id = "ACMECRM"\n'
            'max_quarantined = "unlimited"\n'
            '[sources.acme.settings]\napi_key = "${ACME_CRM_API_KEY}"\n'
            f'base_url = "{api.url}"\npage_size = 3\n'
        )
        ran = generated.mpconnect(
            "--config", str(config), "run", "acme", ACME_CRM_API_KEY=fake_api.API_KEY
        )
        assert "acme: succeeded" in ran.stdout
        assert "imported 16, quarantined 1" in ran.stdout  # 11 events + 5 profiles
        assert fake_api.API_KEY not in ran.stdout + ran.stderr

    inspected = generated.mpconnect(
        "--config", str(config), "inspect", "ACMECRM", "--json", ACME_CRM_API_KEY="unused"
    )
    report = json.loads(inspected.stdout)
    assert report["is_live"] is True
    assert report["events_by_name"] == {"Deal Won": 3, "Email Opened": 5, "Meeting Booked": 3}
    assert report["profiles"] == 5
    quarantine = list((generated.home / "quarantine" / "acme").glob("*.jsonl"))
    (line,) = quarantine[0].read_text().splitlines()
    assert json.loads(line)["what"] == "activity a_12"


def test_mpconnect_serve_starts_the_plugins_local_server(generated: Generated) -> None:
    from mpconnect.testing import serve_in_background

    fake_api = generated.fake_api()
    contacts, activities = fake_api.seeded_data(8, 1)
    config = generated.base / "served.toml"
    with serve_in_background(
        "acme_crm", "--port", "0", "--contacts", "8", env=generated.env()
    ) as served:
        config.write_text(served.toml + "\n")
        ran = generated.mpconnect("--config", str(config), "run", "acme_crm", **served.environment)
        helped = generated.mpconnect("serve", "--help")

    assert served.lines[0].endswith(f": 8 contacts, {len(activities)} activities")
    assert served.environment == {"ACME_CRM_API_KEY": fake_api.API_KEY}
    assert 'api_key = "${ACME_CRM_API_KEY}"' in served.toml
    assert "acme_crm: succeeded" in ran.stdout
    attributed = [a for a in activities if a["contact_id"]]
    assert f"imported {len(attributed) + len(contacts)}, quarantined 1" in ran.stdout
    assert "acme_crm    Serve a local Acme CRM API." in helped.stdout


# -- names and answers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "9 Lives", "Acme/CRM", "Acme CRM!", "Café CRM", "Stripe", "demo", "A" * 31]
)
def test_bad_names_are_refused_before_anything_is_generated(tmp_path: Path, name: str) -> None:
    import copier
    from copier.errors import UserMessageError

    destination = tmp_path / "out"
    with pytest.raises(UserMessageError, match="refused"):
        copier.run_copy(
            str(TEMPLATE), str(destination), data={"name": name}, defaults=True, quiet=True
        )

    assert not destination.exists()


def test_a_refused_name_ends_the_command_with_the_reason(tmp_path: Path) -> None:
    result = render(TEMPLATE, tmp_path / "out", "name=Acme/CRM")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert 'name "Acme/CRM" is refused: start with a letter' in last_line
    assert not (tmp_path / "out").exists()


def test_the_other_answers_have_defaults_and_can_be_given(tmp_path: Path) -> None:
    import copier

    long_name = "Northwind Traders Order Portal"  # 30 characters: the longest allowed
    copier.run_copy(
        str(TEMPLATE),
        str(tmp_path / "a"),
        defaults=True,
        quiet=True,
        data={
            "name": long_name,
            "author_name": "Jane Doe",
            "author_email": "jane@example.com",
            "license": "Proprietary",
            "python_version": "3.12",
        },
    )
    copier.run_copy(
        str(TEMPLATE),
        str(tmp_path / "b"),
        defaults=True,
        quiet=True,
        data={"name": "Zendesk", "license": "Apache-2.0"},
    )

    pyproject = tomllib.loads((tmp_path / "a" / "pyproject.toml").read_text())["project"]
    assert pyproject["name"] == "mpconnect-northwind-traders-order-portal"
    assert pyproject["authors"] == [{"name": "Jane Doe", "email": "jane@example.com"}]
    assert pyproject["license"] == "LicenseRef-Proprietary"
    assert pyproject["requires-python"] == ">=3.12"
    assert not (tmp_path / "a" / "LICENSE").exists()
    workflow = (tmp_path / "a" / ".github" / "workflows" / "ci.yml").read_text()
    assert 'python-version: ["3.12", "3.13"]' in workflow
    assert "Apache License, Version 2.0" in (tmp_path / "b" / "LICENSE").read_text()
    assert (tmp_path / "b" / "src" / "mpconnect_zendesk" / "connector.py").exists()
    lint = run([PYTHON, "-m", "ruff", "check", "--no-cache", "a", "b"], cwd=tmp_path, check=False)
    assert lint.returncode == 0, lint.stdout


def test_copier_update_brings_a_template_change_into_a_generated_plugin(
    tmp_path: Path,
) -> None:
    # The layout a released mpconnect repository offers: a root copier.yml that includes
    # plugin_template/copier.yml and renders plugin_template/template, versioned by tags.
    repo = tmp_path / "mpconnect"
    copy_template(repo / "plugin_template")
    (repo / "copier.yml").write_text(
        "!include plugin_template/copier.yml\n---\n_subdirectory: plugin_template/template\n"
    )
    env = git_env()

    def git(*args: str, cwd: Path) -> None:
        run(["git", *args], cwd=cwd, env=env)

    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "template v1", cwd=repo)
    git("tag", "v0.1.0", cwd=repo)
    project = tmp_path / "mpconnect-acme-crm"
    run(
        [
            PYTHON,
            "-m",
            "copier",
            "copy",
            "--quiet",
            "--vcs-ref",
            "v0.1.0",
            "--data",
            "name=Acme CRM",
            str(repo),
            str(project),
        ],
        env=env,
    )
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "generated", cwd=project)
    connector = project / "src" / "mpconnect_acme_crm" / "connector.py"
    connector.write_text(connector.read_text().replace("Loads Acme CRM:", "Loads our CRM:"))
    git("commit", "-q", "-am", "our change", cwd=project)

    readme = repo / "plugin_template" / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\n## Support\n\nAsk the {{ name }} team.\n")
    git("commit", "-q", "-am", "template v2", cwd=repo)
    git("tag", "v0.2.0", cwd=repo)
    run([PYTHON, "-m", "copier", "update", "--defaults", "--quiet"], cwd=project, env=env)

    assert (project / "README.md").read_text().endswith("Ask the Acme CRM team.\n")
    assert "Loads our CRM:" in connector.read_text()
    assert "_commit: v0.2.0" in (project / ".copier-answers.yml").read_text()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "Acme/CRM",
            "start with a letter and use only letters, digits, spaces, '-' and '_' "
            "(for example: Acme CRM)",
        ),
        ("Stripe", 'the connector name "stripe" is taken by mpconnect itself'),
    ],
)
def test_a_refused_name_is_one_line_from_copier_not_a_traceback(
    tmp_path: Path, name: str, reason: str
) -> None:
    result = render(TEMPLATE, tmp_path / "out", f"name={name}")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f'name "{name}" is refused: {reason}' in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_plugin_requires_the_mpconnect_release_its_template_is_tagged_with(
    tmp_path: Path,
) -> None:
    release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    repo = tmp_path / "mpconnect"
    copy_template(repo / "plugin_template")
    (repo / "copier.yml").write_text((ROOT / "copier.yml").read_text())
    env = git_env()
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-q", "-m", "release"],
        ["tag", "-a", "v7.8.9", "-m", "mpconnect 7.8.9"],
    ):
        run(["git", *args], cwd=repo, env=env)
    run(
        [
            PYTHON,
            "-m",
            "copier",
            "copy",
            "--quiet",
            "--trust",
            "--vcs-ref",
            "v7.8.9",
            "--data",
            "name=Acme CRM",
            str(repo),
            str(tmp_path / "tagged"),
        ],
        env=env,
    )
    render(TEMPLATE, tmp_path / "untagged", "name=Acme CRM")

    def requirement(project: str) -> str:
        pyproject = tomllib.loads((tmp_path / project / "pyproject.toml").read_text())
        return next(d for d in pyproject["project"]["dependencies"] if d.startswith("mpconnect"))

    assert requirement("tagged") == "mpconnect>=7.8.9"
    assert "_commit: v7.8.9" in (tmp_path / "tagged" / ".copier-answers.yml").read_text()
    assert requirement("untagged") == f"mpconnect>={release}"
