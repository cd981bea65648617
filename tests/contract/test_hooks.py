"""One test per hook of ``mpconnect.hookspecs``, each through a real engine run.

Every test registers a plugin object for that test only and runs the built-in ``demo``
connector (or a connector of its own) into the embedded store in a temporary
directory. ``tests/contract/test_plugin_docs.py`` fails when a hook has no ``test_hook_<name>``
here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import mpconnect
from mpconnect.errors import PluginError, RecordError, RunFailed, SourceError
from mpconnect.sink import ImportResult, Sink, VersionInfo
from mpconnect.store.datasets import DatasetStore
from mpconnect.testing import EmbeddedTarget, connector_plugin, load_test_plugins

pytestmark = pytest.mark.timeout(60)

DEMO = {"events": 30}  # 30 Airline Review events by 3 reviewers


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbeddedTarget:
    """An embedded store in a temporary directory, which is also $MPCONNECT_HOME."""
    home = tmp_path / "home"
    monkeypatch.setenv("MPCONNECT_HOME", str(home))
    return EmbeddedTarget(home)


class TinyConnector(mpconnect.Connector):
    """Two signups and one profile."""

    name = "tiny"
    description = "two events, one profile"

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        for number in (1, 2):
            yield mpconnect.Event(
                "Signed Up", "user-1", 1_700_000_000 + number, object_id=f"signup-{number}"
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield mpconnect.Profile("user-1", set={"$name": "Tiny"})


class FailingConnector(mpconnect.Connector):
    """Yields one event, then the source refuses."""

    name = "failing"

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        yield mpconnect.Event("Signed Up", "user-1", 1_700_000_000, object_id="signup-1")
        raise SourceError("failing: HTTP 429: daily quota exhausted")

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class LifecycleObserver:
    """Records the lifecycle hooks it sees, in order."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _state(self, dataset_id: str, version_id: str) -> VersionInfo | None:
        store = DatasetStore(self.store_path)
        try:
            return store.get_version(dataset_id, version_id)
        finally:
            store.close()

    @mpconnect.hookimpl
    def version_created(self, source: str, dataset_id: str, version_id: str, sink: str) -> None:
        self.calls.append(
            (
                "version_created",
                {
                    "source": source,
                    "dataset_id": dataset_id,
                    "version_id": version_id,
                    "sink": sink,
                },
            )
        )

    @mpconnect.hookimpl
    def version_published(
        self, source: str, dataset_id: str, version_id: str, summary: Any
    ) -> None:
        state = self._state(dataset_id, version_id)
        self.calls.append(
            (
                "version_published",
                {
                    "source": source,
                    "version_id": version_id,
                    "imported": summary.imported,
                    "readable": state.readable if state else None,
                },
            )
        )

    @mpconnect.hookimpl
    def version_live(self, source: str, dataset_id: str, version_id: str) -> None:
        state = self._state(dataset_id, version_id)
        self.calls.append(
            (
                "version_live",
                {
                    "source": source,
                    "version_id": version_id,
                    "is_live": state.is_live if state else None,
                },
            )
        )

    @mpconnect.hookimpl
    def run_failed(
        self, source: str, dataset_id: str, version_id: str | None, error: BaseException
    ) -> None:
        self.calls.append(
            (
                "run_failed",
                {
                    "source": source,
                    "dataset_id": dataset_id,
                    "version_id": version_id,
                    "error": error,
                },
            )
        )

    def named(self, hook: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == hook]


def test_hook_register_connectors(target: EmbeddedTarget) -> None:
    plugin = connector_plugin(TinyConnector)

    loaded = target.run("tiny", plugins=[plugin], dataset_id="TINY")

    assert loaded.summary.status == "succeeded"
    assert loaded.events_by_name == {"Signed Up": 2}
    assert loaded.profile("user-1") == {"$name": "Tiny"}
    listed = target.cli("connectors", "list", "--json", plugins=[plugin])
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["tiny"]["description"] == "two events, one profile"
    assert rows["tiny"]["available"] is True
    assert "demo" in rows  # the installed plugins are still there


def test_hook_register_connectors_refuses_nonsense_naming_the_plugin() -> None:
    class NotAConnector:
        name = "nope"

    class Confused:
        @mpconnect.hookimpl
        def register_connectors(self, register: Callable[[type], None]) -> None:
            register(NotAConnector)

    with pytest.raises(PluginError, match=r"registered .*NotAConnector.* subclass of"):
        load_test_plugins(Confused())

    class DemoAgain(TinyConnector):
        name = "demo"

    with pytest.raises(PluginError, match=r"connector 'demo' is provided by .*DemoAgain.*"):
        load_test_plugins(connector_plugin(DemoAgain))


class MemorySink(Sink):
    """A sink that keeps versions in memory: the smallest complete sink."""

    name = "memory"
    instances: ClassVar[list[MemorySink]] = []

    def __init__(self, settings: Any, home: Path) -> None:
        super().__init__(settings, home)
        self.versions: dict[str, VersionInfo] = {}
        self.records: dict[str, dict[str, list[dict[str, Any]]]] = {}
        MemorySink.instances.append(self)

    def create_version(self, dataset_id: str) -> VersionInfo:
        version = VersionInfo(version_id=str(len(self.versions) + 1), created_at="now")
        self.versions[version.version_id] = version
        self.records[version.version_id] = {"events": [], "people": []}
        return version

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        return sorted(self.versions.values(), key=lambda v: int(v.version_id), reverse=True)

    def import_batch(
        self, kind: Any, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        self.records[version_id][kind].extend(json.loads(payload))
        return ImportResult(imported=count)

    def publish(self, dataset_id: str, version_id: str) -> None:
        version = self.versions[version_id]
        version.readable = version.ready = version.is_live = True
        version.writable = False

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        del self.versions[version_id]


def test_hook_register_sinks(target: EmbeddedTarget) -> None:
    class Plugin:
        @mpconnect.hookimpl
        def register_sinks(self, register: Callable[[type[Sink]], None]) -> None:
            register(MemorySink)

    MemorySink.instances.clear()
    loaded = target.run(
        "demo",
        DEMO,
        plugins=[Plugin()],
        dataset_id="DEMO",
        mixpanel={"sink": "memory", "project_token": "project-token"},
    )

    assert loaded.summary.status == "succeeded"
    assert loaded.summary.sink == "memory"
    (sink,) = MemorySink.instances
    (version,) = sink.versions.values()
    assert version.is_live
    records = sink.records[version.version_id]
    assert len(records["events"]) == 30
    assert len(records["people"]) == 3
    assert {event["properties"]["token"] for event in records["events"]} == {"project-token"}
    assert not target.store_path.exists()  # nothing went to the embedded store


def test_hook_transform_record(target: EmbeddedTarget) -> None:
    class Plugin:
        @mpconnect.hookimpl
        def transform_record(
            self, record: mpconnect.Event | mpconnect.Profile, source: str
        ) -> None:
            if isinstance(record, mpconnect.Event):
                record.properties["loaded_by"] = source
            elif record.distinct_id == "reviewer-0":
                raise RecordError(
                    "field '$distinct_id': reviewer-0 asked to be forgotten", "$distinct_id"
                )

    loaded = target.run("demo", DEMO, plugins=[Plugin()], source="reviews", dataset_id="DEMO")

    assert {event["properties"]["loaded_by"] for event in loaded.events} == {"reviews"}
    assert loaded.profiles == {"reviewer-1", "reviewer-2"}
    (quarantined,) = loaded.quarantined
    assert quarantined.what == "profile object reviewer-0 (distinct_id 'reviewer-0')"
    assert "asked to be forgotten" in quarantined.reason
    assert quarantined.field == "$distinct_id"
    assert loaded.summary.quarantined == 1


def test_hook_version_created(target: EmbeddedTarget) -> None:
    observer = LifecycleObserver(target.store_path)

    class FewerArguments:
        """An implementation may accept fewer arguments than the spec names."""

        seen: ClassVar[list[str]] = []

        @mpconnect.hookimpl
        def version_created(self, version_id: str) -> None:
            FewerArguments.seen.append(version_id)
            raise RuntimeError("an observer that raises does not break the run")

    loaded = target.run("demo", DEMO, plugins=[observer, FewerArguments()], dataset_id="DEMO")

    assert loaded.summary.status == "succeeded"
    assert observer.named("version_created") == [
        {
            "source": "test",
            "dataset_id": "DEMO",
            "version_id": loaded.summary.version_id,
            "sink": "embedded",
        }
    ]
    assert FewerArguments.seen == [loaded.summary.version_id]


def test_hook_version_published(target: EmbeddedTarget) -> None:
    observer = LifecycleObserver(target.store_path)

    loaded = target.run("demo", DEMO, plugins=[observer], dataset_id="DEMO")

    assert observer.named("version_published") == [
        {
            "source": "test",
            "version_id": loaded.summary.version_id,
            "imported": 33,
            "readable": True,
        }
    ]


def test_hook_version_live(target: EmbeddedTarget) -> None:
    observer = LifecycleObserver(target.store_path)

    loaded = target.run("demo", DEMO, plugins=[observer], dataset_id="DEMO")

    assert observer.named("version_live") == [
        {
            "source": "test",
            "version_id": loaded.summary.version_id,
            "is_live": True,
        }
    ]
    assert [name for name, _ in observer.calls] == [
        "version_created",
        "version_published",
        "version_live",
    ]


def test_hook_run_failed(target: EmbeddedTarget) -> None:
    observer = LifecycleObserver(target.store_path)

    with pytest.raises(RunFailed, match="daily quota exhausted"):
        target.run(FailingConnector, plugins=[observer], source="billing", dataset_id="BILLING")

    (failed,) = observer.named("run_failed")
    assert failed["source"] == "billing"
    assert failed["dataset_id"] == "BILLING"
    assert isinstance(failed["error"], SourceError)
    assert "daily quota exhausted" in str(failed["error"])
    assert [name for name, _ in observer.calls] == ["version_created", "run_failed"]
    (version,) = target.versions("BILLING")
    assert version.version_id == failed["version_id"]
    assert not version.readable  # a failed run never publishes


class SignupsApi:
    """A tiny JSON API on 127.0.0.1: ``GET /signups`` with a Bearer token."""

    def __init__(self, count: int, token: str, port: int) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = json.dumps(
            [
                {"id": f"s{n}", "user": f"user-{n % 3}", "at": 1_700_000_000 + n}
                for n in range(count)
            ]
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = self.headers.get("Authorization") == f"Bearer {token}"
                self.send_response(200 if ok else 401)
                self.end_headers()
                self.wfile.write(body if ok else b"[]")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SignupsSettings(mpconnect.ConnectorSettings):
    base_url: str
    token: Any  # a SecretStr in a real plugin; a plain value keeps this test short


class SignupsConnector(mpconnect.Connector):
    """Reads the signups of :class:`SignupsApi`."""

    name = "signups"
    Settings = SignupsSettings

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        import requests

        answer = requests.get(
            f"{self.settings.base_url}/signups",
            timeout=10,
            headers={"Authorization": f"Bearer {self.settings.token}"},
        )
        answer.raise_for_status()
        for row in answer.json():
            yield mpconnect.Event("Signed Up", row["user"], row["at"], object_id=row["id"])

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        return iter(())


def test_hook_register_local_servers(target: EmbeddedTarget, tmp_path: Path) -> None:
    from mpconnect.cli.serve_group import paste_text
    from mpconnect.emulator.background import LocalServer, ServedSource, ServeOptions

    class SignupsLocalServer(LocalServer):
        name = "signups"
        connector = "signups"
        summary = "a local signups API"
        size_option = "signups"
        default_size = 7

        def start(self, options: ServeOptions) -> ServedSource:
            api = SignupsApi(options.size, "tok-123", options.port)
            return ServedSource(
                url=api.url,
                stop=api.stop,
                contents=f"{options.size} signups",
                settings={"base_url": api.url, "token": "${SIGNUPS_TOKEN}"},
                environment={"SIGNUPS_TOKEN": "tok-123"},
            )

    class Plugin:
        @mpconnect.hookimpl
        def register_local_servers(self, register: Callable[[type[LocalServer]], None]) -> None:
            register(SignupsLocalServer)

    plugins = [Plugin(), connector_plugin(SignupsConnector)]
    servers = load_test_plugins(*plugins).local_servers()
    assert servers["signups"][0] is SignupsLocalServer
    assert {"mixpanel", "stripe", "salesforce"} <= set(servers)
    listed = target.cli("serve", "--help", plugins=plugins)
    assert "  signups     Serve a local signups API." in listed.stdout
    helped = target.cli("serve", "signups", "--help", plugins=plugins)
    assert "--signups INTEGER RANGE" in helped.stdout and "[default: 7;" in helped.stdout

    # What `mpconnect serve signups --signups 12` prints, pasted, loads what it serves.
    options = ServeOptions("127.0.0.1", 0, 12, 1, tmp_path / "signups")
    served = SignupsLocalServer().start(options)
    try:
        printed = paste_text(SignupsLocalServer, served)
        config = tmp_path / "mpconnect.toml"
        config.write_text(printed.split("paste into mpconnect.toml:")[1].split("and set")[0])
        ran = target.cli(
            "--config",
            str(config),
            "run",
            "signups",
            plugins=plugins,
            env={"SIGNUPS_TOKEN": "tok-123"},
        )
    finally:
        served.stop()
    assert printed.startswith(f"serving a local signups API on {served.url}: 12 signups")
    assert "export SIGNUPS_TOKEN=tok-123" in printed
    assert ran.exit_code == 0, ran.output
    shown = target.cli(
        "--config",
        str(config),
        "inspect",
        "SIGNUPS",
        "--json",
        plugins=plugins,
        env={"SIGNUPS_TOKEN": "tok-123"},
    )
    assert json.loads(shown.stdout)["events_by_name"] == {"Signed Up": 12}


def test_hook_register_local_servers_refuses_nonsense_naming_the_plugin() -> None:
    class NotAServer:
        name = "nope"

    class Confused:
        @mpconnect.hookimpl
        def register_local_servers(self, register: Callable[[type], None]) -> None:
            register(NotAServer)

    with pytest.raises(
        PluginError,
        match=r"registered .*NotAServer.* in register_local_servers"
        r"; expected a subclass of mpconnect.LocalServer",
    ):
        load_test_plugins(Confused()).local_servers()
