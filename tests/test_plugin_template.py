"""The plugin template proves itself, and the kit it builds on works.

The template is rendered with nothing but a name, the generated plugin is installed into
a directory on ``PYTHONPATH`` of the subprocesses (so the shared environment never sees
it, even if this test dies), its own test suite and linter run, and mpconnect's command
line lists it and loads it into the embedded store with the expected counts. Then:
refused names, the other answers, and ``copier update`` bringing a template change in.

The last part tests the kit itself: ``mpconnect.http.JsonHttpClient`` against a local
server, and ``mpconnect.testing`` against the local datasets server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mpconnect.errors import ConfigError, SourceError
from mpconnect.http import JsonHttpClient, SourceHttpError
from mpconnect.localserver import BackgroundServer
from mpconnect.testing import (
    EmbeddedTarget,
    datasets_sink_settings,
    local_datasets_server,
    run_source,
)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "plugin_template"
PYTHON = sys.executable
TIMEOUT = 180  # seconds for any one subprocess

pytestmark = pytest.mark.timeout(300)


def run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a subprocess with no standard input (so nothing can prompt) and a timeout."""
    result = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=TIMEOUT)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {result.returncode}\n"
                    f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}")
    return result


def git_env() -> dict[str, str]:
    """The environment with a git identity, for the commits copier update needs."""
    return {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def copy_template(destination: Path) -> Path:
    """The working tree's template, outside the repository (copier renders it as is)."""
    shutil.copytree(TEMPLATE, destination,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
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
        self.rendered = render(copy_template(base / "template"), self.project,
                               "name=Acme CRM")

    def install(self) -> None:
        command = [PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                   str(self.site), str(self.project)]
        if importlib.util.find_spec("hatchling") is not None:
            # The generated project's build backend is here: build offline.
            command[5:5] = ["--no-build-isolation", "--no-index"]
        run(command)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("MPCONNECT_CONFIG", "MPCONNECT_DISABLE_PLUGINS")}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.site), *filter(None, [os.environ.get("PYTHONPATH")])])
        env["MPCONNECT_HOME"] = str(self.home)
        env.update(extra)
        return env

    def mpconnect(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The ``mpconnect`` command of this environment."""
        script = Path(PYTHON).with_name("mpconnect")
        command = [str(script)] if script.exists() else [
            PYTHON, "-c", "from mpconnect.cli import main; main()"]
        return run([*command, *args], env=self.env(**env), cwd=self.base)

    def fake_api(self) -> ModuleType:
        """The generated project's own local stand-in API module."""
        spec = importlib.util.spec_from_file_location(
            "acme_crm_fake_api", self.project / "tests" / "fake_api.py")
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
    assert pyproject["project"]["entry-points"]["mpconnect"] == {
        "acme_crm": "mpconnect_acme_crm"}
    assert pyproject["project"]["license"] == "MIT"
    assert pyproject["project"]["requires-python"] == ">=3.11"
    connector = (project / "src" / "mpconnect_acme_crm" / "connector.py").read_text()
    assert 'name = "acme_crm"' in connector
    readme = (project / "README.md").read_text()
    for command in ("pip install -e .", "mpconnect connectors list", "mpconnect run acme_crm",
                    "pytest"):
        assert command in readme
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert 'pip install -e ".[test]"' in workflow
    assert "run: pytest" in workflow
    assert "MIT License" in (project / "LICENSE").read_text()
    answers = (project / ".copier-answers.yml").read_text()
    assert "name: Acme CRM" in answers


def test_the_generated_project_passes_its_own_tests(generated: Generated) -> None:
    result = run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                 cwd=generated.project, env=generated.env(), check=False)

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 10


def test_the_generated_project_is_lint_clean(generated: Generated) -> None:
    result = run([PYTHON, "-m", "ruff", "check", "--no-cache", "."], cwd=generated.project,
                 check=False)

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
            '[sources.acme.settings]\napi_key = "${ACME_CRM_API_KEY}"\n'
            f'base_url = "{api.url}"\npage_size = 3\n'
        )
        ran = generated.mpconnect("--config", str(config), "run", "acme",
                                  ACME_CRM_API_KEY=fake_api.API_KEY)
        assert "acme: succeeded" in ran.stdout
        assert "imported 16, quarantined 1" in ran.stdout  # 11 events + 5 profiles
        assert fake_api.API_KEY not in ran.stdout + ran.stderr

    inspected = generated.mpconnect("--config", str(config), "inspect", "ACMECRM", "--json",
                                    ACME_CRM_API_KEY="unused")
    report = json.loads(inspected.stdout)
    assert report["is_live"] is True
    assert report["events_by_name"] == {"Deal Won": 3, "Email Opened": 5, "Meeting Booked": 3}
    assert report["profiles"] == 5
    quarantine = list((generated.home / "quarantine" / "acme").glob("*.jsonl"))
    (line,) = quarantine[0].read_text().splitlines()
    assert json.loads(line)["what"] == "activity a_12"


# -- names and answers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "9 Lives", "Acme/CRM", "Acme CRM!", "Café CRM",
                                  "Stripe", "demo", "A" * 31])
def test_bad_names_are_refused_before_anything_is_generated(tmp_path: Path, name: str) -> None:
    import copier

    destination = tmp_path / "out"
    with pytest.raises(ValueError, match="refused"):
        copier.run_copy(str(TEMPLATE), str(destination), data={"name": name},
                        defaults=True, quiet=True)

    assert not destination.exists()


def test_a_refused_name_ends_the_command_with_the_reason(tmp_path: Path) -> None:
    result = render(TEMPLATE, tmp_path / "out", "name=Acme/CRM")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "name \"Acme/CRM\" is refused: start with a letter" in last_line
    assert not (tmp_path / "out").exists()


def test_the_other_answers_have_defaults_and_can_be_given(tmp_path: Path) -> None:
    import copier

    long_name = "Northwind Traders Order Portal"  # 30 characters: the longest allowed
    copier.run_copy(str(TEMPLATE), str(tmp_path / "a"), defaults=True, quiet=True,
                    data={"name": long_name, "author_name": "Jane Doe",
                          "author_email": "jane@example.com", "license": "Proprietary",
                          "python_version": "3.12"})
    copier.run_copy(str(TEMPLATE), str(tmp_path / "b"), defaults=True, quiet=True,
                    data={"name": "Zendesk", "license": "Apache-2.0"})

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
    lint = run([PYTHON, "-m", "ruff", "check", "--no-cache", "a", "b"], cwd=tmp_path,
               check=False)
    assert lint.returncode == 0, lint.stdout


def test_copier_update_brings_a_template_change_into_a_generated_plugin(
    tmp_path: Path,
) -> None:
    # The layout a released mpconnect repository offers: a root copier.yml that includes
    # plugin_template/copier.yml and renders plugin_template/template, versioned by tags.
    repo = tmp_path / "mpconnect"
    copy_template(repo / "plugin_template")
    (repo / "copier.yml").write_text(
        "!include plugin_template/copier.yml\n---\n_subdirectory: plugin_template/template\n")
    env = git_env()

    def git(*args: str, cwd: Path) -> None:
        run(["git", *args], cwd=cwd, env=env)

    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "template v1", cwd=repo)
    git("tag", "v0.1.0", cwd=repo)
    project = tmp_path / "mpconnect-acme-crm"
    run([PYTHON, "-m", "copier", "copy", "--quiet", "--vcs-ref", "v0.1.0",
         "--data", "name=Acme CRM", str(repo), str(project)], env=env)
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


# -- the kit: mpconnect.http ---------------------------------------------------------------


class Script:
    """What the local API answers, request by request, and what it was asked."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any, dict[str, str]]] = []
        self.seen: list[dict[str, Any]] = []

    def then(self, status: int, body: Any = None, **headers: str) -> Script:
        self.answers.append((status, body, headers))
        return self


@pytest.fixture
def api() -> Iterator[tuple[str, Script]]:
    from aiohttp import web

    script = Script()

    async def handle(request: web.Request) -> web.StreamResponse:
        script.seen.append({"path": request.path, "query": dict(request.query),
                            "authorization": request.headers.get("Authorization")})
        status, body, headers = script.answers.pop(0) if script.answers else (200, {}, {})
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    with BackgroundServer(app) as server:
        yield server.url + "/v1", script


def test_http_client_retries_429_and_5xx_honouring_retry_after(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(429, {"error": "slow down"}, **{"Retry-After": "0"}).then(
        503, "busy", **{"Retry-After": "0"}).then(200, {"ok": True})

    with JsonHttpClient(url, max_retries=3, name="acme") as client:
        assert client.get_json("/things", {"limit": 5}) == {"ok": True}
        assert (client.requests, client.retries) == (3, 2)
    assert script.seen[-1] == {"path": "/v1/things", "query": {"limit": "5"},
                               "authorization": None}


def test_http_client_gives_up_with_the_status_and_the_servers_text(
    api: tuple[str, Script],
) -> None:
    url, script = api
    for _ in range(3):
        script.then(500, {"error": "database on fire"}, **{"Retry-After": "0"})

    with pytest.raises(SourceHttpError) as error, JsonHttpClient(
            url, max_retries=2, name="acme") as client:
        client.get_json("/things")

    assert error.value.status == 500
    assert "acme: GET " in str(error.value)
    assert "HTTP 500" in str(error.value) and "database on fire" in str(error.value)
    assert "gave up after 3 attempts" in str(error.value)
    assert isinstance(error.value, SourceError)


def test_http_client_does_not_retry_other_errors_and_hides_secrets(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(401, "invalid key Bearer sk_live_abcdef123456 for this account")

    client = JsonHttpClient(url, headers={"Authorization": "Bearer sk_live_abcdef123456"},
                            name="acme")
    with pytest.raises(SourceHttpError) as error:
        client.get_json("/things", {"api_key": "qk_999999999", "page": 2})

    message = str(error.value)
    assert len(script.seen) == 1
    assert "HTTP 401" in message and "invalid key" in message
    assert "sk_live_abcdef123456" not in message and "qk_999999999" not in message
    assert "api_key=***" in message and "page=2" in message
    assert "sk_live" not in repr(client)
    assert script.seen[0]["authorization"] == "Bearer sk_live_abcdef123456"


def test_http_client_reports_a_body_that_is_not_json(api: tuple[str, Script]) -> None:
    url, script = api
    script.then(200, "<html>maintenance</html>")

    with pytest.raises(SourceHttpError, match="body is not JSON: '<html>maintenance"), \
            JsonHttpClient(url) as client:
        client.get_json("/things")


def test_http_client_retries_connection_failures_then_says_so() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens
    client = JsonHttpClient(f"http://127.0.0.1:{port}", max_retries=1, initial_wait=0.01)

    with pytest.raises(SourceHttpError, match="connection failed") as error:
        client.get_json("/things", {"token": "tk_secret_42"})
    assert error.value.status == 0
    assert client.requests == 2
    assert "tk_secret_42" not in str(error.value)


def test_http_client_retries_a_server_that_does_not_answer_in_time() -> None:
    import asyncio

    from aiohttp import web

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v1/slow", slow)
    with BackgroundServer(app) as server, JsonHttpClient(
            server.url + "/v1", timeout=0.2, max_retries=1, initial_wait=0.01) as client:
        with pytest.raises(SourceHttpError, match=r"no response within 0\.2 s") as error:
            client.get_json("/slow")
        assert client.requests == 2
    assert "gave up after 2 attempts" in str(error.value)


def test_http_client_refuses_plain_http_to_remote_hosts() -> None:
    with pytest.raises(ConfigError, match=r"base_url: http://api\.example\.com/v1 is plain"):
        JsonHttpClient("http://api.example.com/v1")
    with pytest.raises(ConfigError, match="not an http"):
        JsonHttpClient("ftp://api.example.com")
    assert JsonHttpClient("http://api.example.com", allow_http=True).base_url.startswith("http:")


def test_http_client_paginates_lazily_by_cursor_and_by_next_link(
    api: tuple[str, Script],
) -> None:
    url, script = api
    script.then(200, {"data": [1, 2], "next_cursor": "c2"}).then(200, {"data": [3]})
    script.then(200, {"items": ["a"], "next": url + "/page2?x=1"}).then(200, {"items": ["b"]})

    with JsonHttpClient(url) as client:
        by_cursor = client.paginate(
            "/numbers", {"limit": 2},
            next_page=lambda body: {"cursor": body["next_cursor"]} if body.get("next_cursor")
            else None)
        assert next(by_cursor) == 1
        assert len(script.seen) == 1  # the second page is not fetched yet
        assert [*by_cursor] == [2, 3]
        by_link = client.paginate("/letters", next_page=lambda body: body.get("next"),
                                  items="items")
        assert list(by_link) == ["a", "b"]

    assert [s["query"] for s in script.seen[:2]] == [{"limit": "2"},
                                                     {"limit": "2", "cursor": "c2"}]
    assert script.seen[3] == {"path": "/v1/page2", "query": {"x": "1"}, "authorization": None}


def test_http_client_stops_pagination_that_does_not_advance(api: tuple[str, Script]) -> None:
    url, script = api
    script.then(200, {"data": [1], "next_cursor": "same"}).then(
        200, {"data": [2], "next_cursor": "same"})
    script.then(200, {"results": []})

    with JsonHttpClient(url) as client:
        stuck = client.paginate("/loop", next_page=lambda body: {"cursor": body["next_cursor"]})
        with pytest.raises(SourceHttpError, match="page 2 points to itself"):
            list(stuck)
        with pytest.raises(SourceHttpError, match="page 1 holds no list under 'data'"):
            list(client.paginate("/empty", next_page=lambda body: None))


# -- the kit: mpconnect.testing ------------------------------------------------------------


def test_run_source_loads_through_the_local_datasets_server(tmp_path: Path) -> None:
    with local_datasets_server(tmp_path / "server", datasets=["REVIEWS"]) as server:
        loaded = run_source("demo", {"events": 40, "bad_records": 1}, home=tmp_path / "home",
                            mixpanel=datasets_sink_settings(server), store=server.store,
                            dataset_id="REVIEWS")

        assert loaded.summary.status == "succeeded"
        assert loaded.summary.sink == "datasets"
        assert loaded.events_by_name == {"Airline Review": 40}
        assert len(loaded.profiles) == 4
        assert server.store.live_version("REVIEWS").version_id == loaded.summary.version_id
    assert [q.field for q in loaded.quarantined] == ["time"]


def test_embedded_target_cli_leaves_logging_as_it_found_it(tmp_path: Path) -> None:
    import logging

    logger = logging.getLogger("mpconnect")
    before = (list(logger.handlers), logger.level, logger.propagate)
    target = EmbeddedTarget(tmp_path / "home")

    result = target.cli("run", "demo")

    assert result.exit_code == 0, result.output
    assert "demo: succeeded" in result.stdout
    assert (list(logger.handlers), logger.level, logger.propagate) == before
    assert target.versions("DEMO")[0].is_live
