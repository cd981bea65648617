"""Plugin loading: built-ins through entry points, plugins registered in tests, broken and
misspelt plugins, duplicate names, the disable variable, unavailable connectors, and every
hook called as its documentation says."""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pluggy
import pytest

import mpconnect
from mpconnect import hookspecs
from mpconnect.connector import Connector, RunContext
from mpconnect.errors import ConnectorUnavailable, PluginError
from mpconnect.plugins import load_plugins
from mpconnect.records import Event, Profile
from mpconnect.sink import ImportResult, Sink, VersionInfo

CONNECTORS_DIR = Path(__file__).resolve().parents[2] / "connectors"


# -- plugins made in tests --------------------------------------------------------------


class AcmeConnector(Connector):
    """A tiny connector: one event, one profile."""

    name = "acme"
    description = "Acme CRM accounts"

    def events(self, ctx: RunContext) -> Iterator[Event]:
        """One signup."""
        yield Event(
            name="Signed Up", distinct_id="acct-0001", time=1_700_000_000, object_id="acct-0001"
        )

    def people(self, ctx: RunContext) -> Iterator[Profile]:
        """One account."""
        yield Profile(distinct_id="acct-0001", set={"plan": "pro"})


class ConnectorPlugin:
    """A plugin object that registers the connector classes it is given."""

    def __init__(self, *classes: type) -> None:
        self.classes = classes

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        """Register each class."""
        for cls in self.classes:
            register(cls)


class FakeDistribution:
    """A distribution on sys.path made of files: ``*.dist-info`` plus plugin modules."""

    def __init__(self, root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.name = name
        self.entry_points: dict[str, str] = {}
        self.modules: list[str] = []
        self.monkeypatch = monkeypatch
        root.mkdir(parents=True, exist_ok=True)

    def add_module(self, entry_point: str, module: str, source: str) -> None:
        """Add ``module.py`` with ``source`` and an ``mpconnect`` entry point naming it."""
        (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        self.entry_points[entry_point] = module
        self.modules.append(module)
        self.monkeypatch.delitem(sys.modules, module, raising=False)

    def install(self) -> None:
        """Write the metadata and put the directory first on sys.path."""
        info = self.root / f"{self.name.replace('-', '_')}-1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {self.name}\nVersion: 1.0\n", encoding="utf-8"
        )
        lines = ["[mpconnect]", *(f"{ep} = {mod}" for ep, mod in self.entry_points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.monkeypatch.syspath_prepend(str(self.root))


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDistribution]:
    """A fake distribution ``fake-plugins``; its modules leave sys.modules afterwards."""
    dist = FakeDistribution(tmp_path / "site", "fake-plugins", monkeypatch)
    yield dist
    for module in dist.modules:
        sys.modules.pop(module, None)


GOOD_PLUGIN = """
    import mpconnect

    class WidgetConnector(mpconnect.Connector):
        name = "widget"

        def events(self, ctx):
            return iter(())

        def people(self, ctx):
            return iter(())

    @mpconnect.hookimpl
    def register_connectors(register):
        register(WidgetConnector)
"""


# -- built-ins and test plugins ----------------------------------------------------------


def test_hookimpl_is_exported_for_plugin_authors() -> None:
    assert isinstance(mpconnect.hookimpl, pluggy.HookimplMarker)
    assert mpconnect.hookimpl.project_name == "mpconnect"
    assert hookspecs.hookspec.project_name == "mpconnect"


def test_builtins_are_registered_through_the_distributions_entry_points() -> None:
    import importlib.metadata

    entry_points = {
        ep.name: ep.value
        for ep in importlib.metadata.distribution("mpconnect").entry_points
        if ep.group == "mpconnect"
    }
    packages = {p.name for p in CONNECTORS_DIR.iterdir() if (p / "__init__.py").is_file()}

    assert entry_points["builtin_sinks"] == "mpconnect.sinks.builtin"
    assert entry_points["demo"] == "mpconnect_demo"
    assert packages <= set(entry_points.values())


def test_builtins_are_listed() -> None:
    plugins = load_plugins()

    demo = plugins.connectors["demo"]
    assert demo.available
    assert demo.provider.plugin == "demo"
    assert demo.provider.distribution == "mpconnect"
    assert demo.provider.version == mpconnect.__version__
    assert plugins.sinks["embedded"].provider.distribution == "mpconnect"


def test_connectors_list_shows_builtins(cli: Any) -> None:
    result = cli("connectors", "list", "--json")

    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["demo"] == {
        "name": "demo",
        "description": "synthetic airline reviews, no account needed",
        "plugin": "demo",
        "distribution": "mpconnect",
        "version": mpconnect.__version__,
        "available": True,
        "reason": None,
        "incremental": True,
    }


def test_a_plugin_registered_in_a_test_appears(cli: Any) -> None:
    plugin = ConnectorPlugin(AcmeConnector)

    plugins = load_plugins([plugin])
    result = cli("connectors", "list", plugins=[plugin])

    assert plugins.connectors["acme"].cls is AcmeConnector
    assert plugins.connectors["acme"].provider.plugin == "ConnectorPlugin"
    assert "demo" in plugins.connectors
    assert result.exit_code == 0, result.output
    [acme_line] = [line for line in result.stdout.splitlines() if line.startswith("acme ")]
    assert acme_line.split() == [
        "acme",
        "ConnectorPlugin",
        "available",
        "full",
        "Acme",
        "CRM",
        "accounts",
    ]


def test_a_module_plugin_is_named_after_its_module() -> None:
    import mpconnect_demo

    plugins = load_plugins([mpconnect_demo], entry_points=False)

    assert plugins.connectors["demo"].provider.plugin == "mpconnect_demo"
    assert set(plugins.sinks) == set()


# -- broken, misspelt, duplicate, disabled -------------------------------------------------


def test_a_broken_entry_point_is_reported_and_the_rest_load(
    fake_dist: FakeDistribution, cli: Any
) -> None:
    fake_dist.add_module("broken", "fake_broken_plugin", "raise RuntimeError('boom at import')")
    fake_dist.add_module("widgets", "fake_widget_plugin", GOOD_PLUGIN)
    fake_dist.install()

    plugins = load_plugins()
    result = cli("connectors", "list")

    assert (
        plugins.load_errors.count(
            "plugin 'broken' (fake-plugins) failed to load: RuntimeError: boom at import"
        )
        == 1
    )
    assert {"demo", "widget"} <= set(plugins.connectors)
    assert plugins.connectors["widget"].provider.distribution == "fake-plugins"
    assert result.exit_code == 0
    assert (
        "mpconnect: warning: plugin 'broken' (fake-plugins) failed to load: "
        "RuntimeError: boom at import"
    ) in result.stderr
    assert "Traceback" not in result.output
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert {"demo", "widget"} <= set(names)


def test_an_entry_point_that_does_not_exist_is_reported(fake_dist: FakeDistribution) -> None:
    fake_dist.entry_points["ghost"] = "fake_no_such_module_anywhere"
    fake_dist.install()

    plugins = load_plugins()

    assert any(
        e.startswith("plugin 'ghost' (fake-plugins) failed to load: ModuleNotFoundError")
        for e in plugins.load_errors
    )
    assert "demo" in plugins.connectors


def test_a_misspelt_hook_fails_naming_the_plugin() -> None:
    class Typo:
        @mpconnect.hookimpl
        def register_conectors(self, register: Any) -> None:
            """Misspelt on purpose."""

    with pytest.raises(PluginError) as info:
        load_plugins([Typo()], entry_points=False)

    assert str(info.value).startswith("plugin 'Typo': ")
    assert "register_conectors" in str(info.value)


def test_a_misspelt_hook_in_an_entry_point_fails_the_cli_in_one_line(
    fake_dist: FakeDistribution, cli: Any
) -> None:
    fake_dist.add_module(
        "typo",
        "fake_typo_plugin",
        """
        import mpconnect

        @mpconnect.hookimpl
        def version_publised(source):
            pass
    """,
    )
    fake_dist.install()

    result = cli("connectors", "list")

    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("mpconnect: error: plugin 'typo': ")
    assert "version_publised" in line
    assert "Traceback" not in result.output


def test_duplicate_connector_names_fail_naming_both_providers() -> None:
    class OtherDemo(AcmeConnector):
        name = "demo"

    with pytest.raises(PluginError) as info:
        load_plugins([ConnectorPlugin(OtherDemo)])

    assert str(info.value) == (
        "conflicting plugins: connector 'demo' is provided by "
        f"DemoConnector from demo (mpconnect {mpconnect.__version__}), "
        "test_duplicate_connector_names_fail_naming_both_providers.<locals>.OtherDemo "
        "from ConnectorPlugin"
    )


def test_duplicate_names_within_test_plugins_name_both(cli: Any) -> None:
    class AcmeAgain(AcmeConnector):
        pass

    result = cli(
        "connectors", "list", plugins=[ConnectorPlugin(AcmeConnector), ConnectorPlugin(AcmeAgain)]
    )

    assert result.exit_code == 1
    assert "conflicting plugins: connector 'acme' is provided by" in result.stderr
    assert "AcmeConnector from ConnectorPlugin" in result.stderr
    assert "AcmeAgain from ConnectorPlugin#2" in result.stderr


def test_one_entry_point_name_in_two_distributions_is_reported(
    fake_dist: FakeDistribution,
) -> None:
    fake_dist.add_module("demo", "fake_demo_twin", GOOD_PLUGIN)
    fake_dist.install()

    plugins = load_plugins()

    [error] = [e for e in plugins.load_errors if "already uses that name" in e]
    assert error.startswith("plugin 'demo' (")
    assert "fake-plugins" in error and "mpconnect" in error


def test_the_disable_variable_blocks_plugins_by_name(
    fake_dist: FakeDistribution, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    fake_dist.add_module("broken", "fake_broken_plugin2", "raise RuntimeError('boom')")
    fake_dist.add_module("widgets", "fake_widget_plugin2", GOOD_PLUGIN)
    fake_dist.install()
    monkeypatch.setenv("MPCONNECT_DISABLE_PLUGINS", " broken, demo ")

    plugins = load_plugins()
    result = cli("run", "demo")

    assert "demo" not in plugins.connectors
    assert "widget" in plugins.connectors
    assert not [e for e in plugins.load_errors if "broken" in e]
    assert "fake_broken_plugin2" not in sys.modules
    assert result.exit_code == 1
    assert "no connector 'demo' is installed" in result.stderr


# -- registering nonsense ---------------------------------------------------------------


class NotAConnector:
    name = "nothing"


class BadName(AcmeConnector):
    name = "acme crm"


class Raising:
    @mpconnect.hookimpl
    def register_connectors(self, register: Any) -> None:
        """Fails while registering."""
        raise KeyError("settings_model")


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (
            ConnectorPlugin(NotAConnector),
            "plugin ConnectorPlugin registered <class 'test_plugins.NotAConnector'> in "
            "register_connectors; expected a subclass of mpconnect.connector.Connector",
        ),
        (
            ConnectorPlugin(BadName),
            "plugin ConnectorPlugin registered connector BadName with name 'acme crm'; a name "
            "must be a non-empty identifier such as 'acme_crm'",
        ),
        (Raising(), "plugin Raising raised in register_connectors: KeyError: 'settings_model'"),
    ],
    ids=["not-a-connector", "bad-name", "raises"],
)
def test_a_plugin_that_registers_nonsense_is_named(plugin: object, message: str) -> None:
    with pytest.raises(PluginError) as info:
        load_plugins([plugin], entry_points=False)

    assert str(info.value) == message


# -- unavailable connectors ------------------------------------------------------------


class NeedsMissingPackage(AcmeConnector):
    """A connector whose extra is not installed."""

    name = "acme_crm"
    requires = ("mpconnect_test_no_such_package",)
    install_hint = 'pip install "mpconnect[acme]"'


def test_a_connector_without_its_extra_is_listed_as_unavailable(cli: Any) -> None:
    plugin = ConnectorPlugin(NeedsMissingPackage)

    entry = load_plugins([plugin]).connectors["acme_crm"]
    as_json = cli("connectors", "list", "--json", plugins=[plugin])
    as_text = cli("connectors", "list", plugins=[plugin])

    assert not entry.available
    assert entry.missing == ("mpconnect_test_no_such_package",)
    [row] = [r for r in json.loads(as_json.stdout) if r["name"] == "acme_crm"]
    assert row["available"] is False
    assert row["reason"] == ('needs mpconnect_test_no_such_package: pip install "mpconnect[acme]"')
    [line] = [line for line in as_text.stdout.splitlines() if line.startswith("acme_crm")]
    assert (
        'unavailable: needs mpconnect_test_no_such_package: pip install "mpconnect[acme]"' in line
    )


def test_running_an_unavailable_connector_fails_with_the_install_command(
    cli: Any, write_config: Any
) -> None:
    config = write_config("""
        [sources.crm]
        connector = "acme_crm"
        dataset_id = "CRM"
    """)

    result = cli("--config", config, "run", "crm", plugins=[ConnectorPlugin(NeedsMissingPackage)])

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "mpconnect: error: connector 'acme_crm' needs mpconnect_test_no_such_package: "
        'pip install "mpconnect[acme]"'
    )
    with pytest.raises(ConnectorUnavailable):
        load_plugins([ConnectorPlugin(NeedsMissingPackage)]).connector("acme_crm")


def test_without_an_install_hint_the_distribution_is_named() -> None:
    class NoHint(AcmeConnector):
        name = "nohint"
        requires = ("mpconnect_test_no_such_package",)

    entry = load_plugins([ConnectorPlugin(NoHint)], entry_points=False).connectors["nohint"]

    assert entry.unavailable_reason == (
        'needs mpconnect_test_no_such_package: pip install "nohint"'
    )


# -- the other hooks, through real runs ---------------------------------------------------


class Recorder:
    """Records every observer call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @mpconnect.hookimpl
    def version_created(self, source: str, dataset_id: str, version_id: str, sink: str) -> None:
        """Record it."""
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
    def version_published(self, source: str, version_id: str, summary: Any) -> None:
        """Record it (an implementation may take fewer arguments than the spec)."""
        self.calls.append(
            (
                "version_published",
                {"source": source, "version_id": version_id, "imported": summary.imported},
            )
        )

    @mpconnect.hookimpl
    def version_live(self, source: str, dataset_id: str, version_id: str) -> None:
        """Record it."""
        self.calls.append(
            ("version_live", {"source": source, "dataset_id": dataset_id, "version_id": version_id})
        )

    @mpconnect.hookimpl
    def run_failed(
        self, source: str, dataset_id: str, version_id: str | None, error: BaseException
    ) -> None:
        """Record it."""
        self.calls.append(
            (
                "run_failed",
                {
                    "source": source,
                    "dataset_id": dataset_id,
                    "version_id": version_id,
                    "error": str(error),
                },
            )
        )


def test_lifecycle_observers_see_a_run(cli: Any, demo_config: Path) -> None:
    recorder = Recorder()

    result = cli("--config", demo_config, "run", "demo", plugins=[recorder])

    assert result.exit_code == 0, result.output
    versions = json.loads(cli("--config", demo_config, "versions", "list", "DEMO", "--json").stdout)
    version_id = versions[0]["version_id"]
    assert recorder.calls == [
        (
            "version_created",
            {"source": "demo", "dataset_id": "DEMO", "version_id": version_id, "sink": "embedded"},
        ),
        ("version_published", {"source": "demo", "version_id": version_id, "imported": 1650}),
        ("version_live", {"source": "demo", "dataset_id": "DEMO", "version_id": version_id}),
    ]


class Exploding(AcmeConnector):
    name = "exploding"

    def events(self, ctx: RunContext) -> Iterator[Event]:
        """Fails after one event."""
        yield from super().events(ctx)
        raise ConnectionError("upstream down")


def test_run_failed_observers_see_the_error(cli: Any, write_config: Any) -> None:
    config = write_config("""
        [sources.boom]
        connector = "exploding"
        dataset_id = "BOOM"
    """)
    recorder = Recorder()

    result = cli("--config", config, "run", "boom", plugins=[recorder, ConnectorPlugin(Exploding)])

    assert result.exit_code == 1
    message = "connector 'exploding' failed while reading events: ConnectionError: upstream down"
    assert f"mpconnect: error: boom: {message}" in result.stderr
    [(hook, call)] = [c for c in recorder.calls if c[0] != "version_created"]
    assert hook == "run_failed"
    assert call["source"] == "boom" and call["dataset_id"] == "BOOM"
    assert call["version_id"] and call["error"] == message


class BrokenObserver:
    @mpconnect.hookimpl
    def version_live(self, version_id: str) -> None:
        """Raises: must not break the run."""
        raise RuntimeError("pager offline")


def test_an_observer_that_raises_does_not_break_the_run(cli: Any, demo_config: Path) -> None:
    recorder = Recorder()

    result = cli("--config", demo_config, "run", "demo", plugins=[BrokenObserver(), recorder])

    assert result.exit_code == 0, result.output
    assert "demo: succeeded" in result.stdout
    assert (
        "plugin 'BrokenObserver' raised in version_live: RuntimeError: pager offline"
        in result.stderr
    )
    assert [c[0] for c in recorder.calls][-1] == "version_live"


class Tagger:
    @mpconnect.hookimpl
    def transform_record(self, record: Event | Profile, source: str) -> None:
        """Tag events with their source; refuse one account."""
        if isinstance(record, Event):
            record.properties["source"] = source
        elif record.distinct_id == "acct-0001":
            raise mpconnect.RecordError("field '$distinct_id': test account", "$distinct_id")


def test_transform_record_changes_and_quarantines_records(
    cli: Any, write_config: Any, mpconnect_home: Path
) -> None:
    config = write_config("""
        [sources.crm]
        connector = "acme"
        dataset_id = "CRM"
        max_quarantined = "unlimited"
    """)

    result = cli(
        "--config", config, "run", "crm", plugins=[Tagger(), ConnectorPlugin(AcmeConnector)]
    )
    shown = json.loads(cli("--config", config, "inspect", "CRM", "--json").stdout)

    assert result.exit_code == 0, result.output
    assert "records read 2, imported 1, quarantined 1" in result.stdout
    assert shown["sample_events"][0]["properties"]["source"] == "crm"
    assert shown["people_total"] == 0
    [line] = (mpconnect_home / "quarantine" / "crm").glob("*.jsonl")
    record = json.loads(line.read_text())
    assert record["reason"] == "field '$distinct_id': test account"


class MemorySink(Sink):
    """A sink kept in a class attribute, to see what a run sends."""

    name = "memory"
    versions: ClassVar[dict[str, VersionInfo]] = {}
    records: ClassVar[dict[str, list[Any]]] = {}

    def create_version(self, dataset_id: str) -> VersionInfo:
        """A new version."""
        version = VersionInfo(version_id=str(len(self.versions) + 1), created_at="now")
        self.versions[version.version_id] = version
        self.records[version.version_id] = []
        return version

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        """Newest first."""
        return sorted(self.versions.values(), key=lambda v: -int(v.version_id))

    def import_batch(
        self, kind: str, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        """Keep the records."""
        self.records[version_id].extend(orjson.loads(payload))
        return ImportResult(imported=count)

    def publish(self, dataset_id: str, version_id: str) -> None:
        """Live at once."""
        for version in self.versions.values():
            version.is_live = version.version_id == version_id
        self.versions[version_id].readable = True

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Forget it."""
        del self.versions[version_id]


class SinkPlugin:
    @mpconnect.hookimpl
    def register_sinks(self, register: Callable[[type[Sink]], None]) -> None:
        """Register the memory sink."""
        register(MemorySink)


def test_a_sink_registered_by_a_plugin_receives_the_run(
    cli: Any, write_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MemorySink, "versions", {})
    monkeypatch.setattr(MemorySink, "records", {})
    config = write_config("""
        [mixpanel]
        sink = "memory"
        project_token = "abc123"

        [sources.crm]
        connector = "acme"
        dataset_id = "CRM"
    """)

    result = cli(
        "--config", config, "run", "crm", plugins=[SinkPlugin(), ConnectorPlugin(AcmeConnector)]
    )

    assert result.exit_code == 0, result.output
    assert "via memory" in result.stdout
    [records] = MemorySink.records.values()
    # The events batch and the people batch are uploaded by concurrent workers.
    [event] = [r for r in records if "event" in r]
    [profile] = [r for r in records if "event" not in r]
    assert event["event"] == "Signed Up"
    assert event["properties"]["token"] == "abc123"
    assert profile == {"$token": "abc123", "$distinct_id": "acct-0001", "$set": {"plan": "pro"}}
    assert len(records) == 2


# -- the hooks' own documentation -------------------------------------------------------


def _hookspecs() -> list[Any]:
    return [
        f
        for _, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "mpconnect_spec")
    ]


def test_the_lifecycle_and_registration_hooks_exist() -> None:
    names = {f.__name__ for f in _hookspecs()}

    assert {
        "register_connectors",
        "register_sinks",
        "version_created",
        "version_published",
        "version_live",
        "run_failed",
    } <= names


@pytest.mark.parametrize("spec", _hookspecs(), ids=lambda f: f.__name__)
def test_every_hook_is_documented(spec: Any) -> None:
    doc = inspect.getdoc(spec) or ""
    parameters = inspect.signature(spec).parameters

    assert doc.splitlines()[0].endswith(".")
    assert "Example::" in doc and "@mpconnect.hookimpl" in doc
    for name, parameter in parameters.items():
        assert f":param {name}:" in doc, f"{spec.__name__} does not document {name}"
        assert parameter.annotation is not inspect.Parameter.empty


@pytest.mark.parametrize("spec", _hookspecs(), ids=lambda f: f.__name__)
def test_every_hook_has_a_test_implementing_it(spec: Any) -> None:
    source = Path(__file__).read_text(encoding="utf-8")

    assert f"def {spec.__name__}(" in source


class _SecondStripeServer:
    """A plugin whose local server takes the name of the built-in Stripe one."""

    @mpconnect.hookimpl
    def register_local_servers(self, register: Callable[[type], None]) -> None:
        from mpconnect.emulator.background import LocalServer

        class StripeServerAgain(LocalServer):
            name = "stripe"

        register(StripeServerAgain)


def test_a_local_server_name_taken_twice_fails_serve_naming_both(cli: Any) -> None:
    plugin = _SecondStripeServer()

    with pytest.raises(
        PluginError,
        match=r"local server 'stripe' is provided by "
        r".*StripeLocalServer from stripe .*StripeServerAgain",
    ):
        load_plugins([plugin]).local_servers()
    result = cli("serve", "stripe", plugins=[plugin])
    assert result.exit_code == 1
    assert result.stderr.startswith("mpconnect: error: conflicting plugins: local server 'stripe'")
    assert "Traceback" not in result.output
    ran = cli("run", "demo", plugins=[plugin])  # a broken server never stops a run
    assert ran.exit_code == 0, ran.output
