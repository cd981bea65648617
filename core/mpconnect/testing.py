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

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from mpconnect import hookimpl
from mpconnect.connector import Connector, RunContext
from mpconnect.errors import PluginError, RecordError
from mpconnect.records import Event, Profile

if TYPE_CHECKING:
    from click.testing import Result

    from mpconnect.engine.summary import RunSummary
    from mpconnect.plugins import Plugins

__all__ = [
    "Collected",
    "EmbeddedTarget",
    "LoadedVersion",
    "QuarantinedRecord",
    "connector_plugin",
    "datasets_sink_settings",
    "load_test_plugins",
    "local_datasets_server",
    "run_cli",
    "run_connector",
    "run_source",
    "serve_in_background",
]

#: The project token and secret of :func:`local_datasets_server` unless given.
TEST_PROJECT_TOKEN = "test-project-token"
TEST_PROJECT_SECRET = "test-project-secret"


@dataclass
class QuarantinedRecord:
    """A record (or source object) that could not be sent, and why.

    :param what: which record or object, such as ``"activity a_12"``.
    :param reason: why, naming the field when one is at fault.
    :param data: the object or record, as the quarantine file keeps it.
    :param field: the dotted path of the offending field, when known.
    """

    what: str
    reason: str
    data: Any = None
    field: str | None = None


class _Records:
    """Lookups shared by :class:`Collected` and :class:`LoadedVersion`."""

    events: list[dict[str, Any]]
    people: list[dict[str, Any]]

    def events_named(self, name: str) -> list[dict[str, Any]]:
        """Return the events called ``name``."""
        return [event for event in self.events if event["event"] == name]

    def profile(self, distinct_id: str) -> dict[str, Any]:
        """Merge the ``$set`` of every people record of ``distinct_id`` into one dict.

        :raises KeyError: when no profile has that id.
        """
        merged: dict[str, Any] = {}
        found = False
        for record in self.people:
            if record["$distinct_id"] == distinct_id:
                found = True
                merged.update(record.get("$set", {}))
        if not found:
            raise KeyError(distinct_id)
        return merged

    @property
    def events_by_name(self) -> dict[str, int]:
        """How many events of each name, sorted by name."""
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event["event"]] = counts.get(event["event"], 0) + 1
        return dict(sorted(counts.items()))

    @property
    def profiles(self) -> set[str]:
        """The distinct ids that have a people record."""
        return {record["$distinct_id"] for record in self.people}


@dataclass
class Collected(_Records):
    """What one run of a connector produced, as Mixpanel records (with the token)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)


def run_connector(
    connector: type[Connector],
    settings: dict[str, Any] | None = None,
    *,
    token: str = "test-token",
    source: str = "test",
    dataset_id: str = "TEST",
    state_dir: Path | None = None,
) -> Collected:
    """Run ``connector`` with ``settings`` and collect its validated records.

    Events are read to exhaustion first, then people, as the engine does. A record that
    fails validation, or holds a value JSON cannot encode (an integer beyond 64 bits), is
    collected in ``quarantined`` with its reason, as the engine would write it to the
    quarantine file.

    :raises PluginError: when ``events()`` yields something other than an
        :class:`mpconnect.Event`, or ``people()`` other than an :class:`mpconnect.Profile`,
        with the engine's message.

    Example::

        collected = run_connector(AcmeConnector, {"api_key": "k", "base_url": api.url})
        assert len(collected.events_named("Email Opened")) == 3
    """
    collected = Collected()

    def quarantine(what: str, reason: str, data: Any = None) -> None:
        collected.quarantined.append(QuarantinedRecord(what, reason, data))

    instance = connector(connector.Settings(**(settings or {})))
    ctx = RunContext(
        source=source,
        dataset_id=dataset_id,
        log=logging.getLogger(f"mpconnect.source.{source}"),
        state_dir=state_dir,
        quarantine=quarantine,
    )
    name = connector.name
    try:
        for event in instance.events(ctx):
            _check_yielded(name, "events", event, Event)
            try:
                converted = [event.to_mixpanel(token)]
            except RecordError as exc:
                collected.quarantined.append(
                    QuarantinedRecord(event.describe(), str(exc), None, exc.field)
                )
                continue
            collected.events += _encodable("events", converted, collected.quarantined)
        for profile in instance.people(ctx):
            _check_yielded(name, "people", profile, Profile)
            try:
                converted = profile.to_mixpanel(token)
            except RecordError as exc:
                collected.quarantined.append(
                    QuarantinedRecord(profile.describe(), str(exc), None, exc.field)
                )
                continue
            collected.people += _encodable("people", converted, collected.quarantined)
    finally:
        instance.close()
    return collected


def _check_yielded(name: str, kind: str, record: object, expected: type) -> None:
    """Refuse what the engine refuses: a generator yielding the wrong type."""
    if not isinstance(record, expected):
        raise PluginError(
            f"connector {name!r} yielded {record!r} from {kind}(); "
            f"expected mpconnect.{expected.__name__}"
        )


def _encodable(
    kind: str, records: list[dict[str, Any]], quarantined: list[QuarantinedRecord]
) -> list[dict[str, Any]]:
    """The records orjson can write, as the engine's spool; the others are quarantined."""
    good = []
    for record in records:
        try:
            orjson.dumps(record)
        except TypeError as exc:
            quarantined.append(
                QuarantinedRecord(
                    _describe_converted(kind, record),
                    f"a value cannot be encoded as JSON: {exc}",
                    {"repr": repr(record)[:2000]},
                )
            )
        else:
            good.append(record)
    return good


def _describe_converted(kind: str, record: dict[str, Any]) -> str:
    """Name a converted record as the engine's quarantine does."""
    if kind == "events":
        properties = record.get("properties", {})
        return (
            f"event {record.get('event')!r} ($insert_id {properties.get('$insert_id')}, "
            f"distinct_id {properties.get('distinct_id')!r})"
        )
    return f"profile (distinct_id {record.get('$distinct_id')!r})"


# -- plugins for one test ------------------------------------------------------------------


class _ConnectorPlugin:
    """A plugin object that registers given connector classes."""

    def __init__(self, classes: Sequence[type[Connector]]) -> None:
        self.classes = tuple(classes)

    def __repr__(self) -> str:
        names = ", ".join(getattr(cls, "name", cls.__qualname__) for cls in self.classes)
        return f"<test plugin registering {names}>"

    @hookimpl
    def register_connectors(self, register: Callable[[type[Connector]], None]) -> None:
        """Register the connector classes."""
        for cls in self.classes:
            register(cls)


def connector_plugin(*classes: type[Connector]) -> object:
    """Return a plugin object registering ``classes``, to pass as ``plugins=[...]``.

    For a connector that is not installed through an entry point (yet)::

        embedded.cli("connectors", "list", plugins=[connector_plugin(AcmeConnector)])
    """
    return _ConnectorPlugin(classes)


def load_test_plugins(*plugins: object, entry_points: bool = True) -> Plugins:
    """Load mpconnect's plugins with ``plugins`` (objects or modules) registered too.

    Nothing is registered beyond the returned object: the next load starts afresh, so a
    plugin registered here lives for one test.

    :param entry_points: also load installed plugins (the ``mpconnect`` entry points,
        built-ins included); False loads ``plugins`` and the built-in sinks only.
    """
    from mpconnect.plugins import load_plugins

    extra: list[object] = list(plugins)
    if not entry_points:
        from mpconnect.sinks import builtin

        extra.insert(0, builtin)
    return load_plugins(extra, entry_points=entry_points)


# -- running the engine --------------------------------------------------------------------


@dataclass
class LoadedVersion(_Records):
    """What one engine run loaded: its summary and the version's contents.

    :param summary: the run's summary (status, counts, version id).
    :param events: every event the version holds, as stored (token included).
    :param people: every people record the version holds.
    :param quarantined: the run's quarantine file, one record per line.
    """

    summary: RunSummary
    events: list[dict[str, Any]] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[QuarantinedRecord] = field(default_factory=list)


def _read_quarantine(path: str | None) -> list[QuarantinedRecord]:
    if not path or not Path(path).exists():
        return []
    with open(path, "rb") as handle:
        lines = [orjson.loads(line) for line in handle if line.strip()]
    return [
        QuarantinedRecord(line["what"], line["reason"], line.get("record"), line.get("field"))
        for line in lines
    ]


def run_source(
    connector: str | type[Connector],
    settings: Mapping[str, Any] | None = None,
    *,
    home: Path,
    plugins: Iterable[object] = (),
    mixpanel: Mapping[str, Any] | None = None,
    store: Any = None,
    source: str = "test",
    dataset_id: str = "TEST",
    keep_versions: int = 2,
    max_quarantined: float | Literal["unlimited"] = "unlimited",
    restart: bool = False,
) -> LoadedVersion:
    """Run a connector through the whole engine and return what the live version holds.

    :param connector: a connector name (installed plugins are loaded) or a connector
        class (registered for this run only; installed plugins are not loaded, so the
        class never conflicts with its own installed copy).
    :param settings: the source's ``settings`` table; secrets may be given in clear.
    :param home: mpconnect's data directory for the run (ledger, spool, quarantine and,
        by default, the embedded store).
    :param plugins: plugin objects or modules registered for this run only.
    :param mixpanel: the ``[mixpanel]`` table; default: the embedded sink under ``home``.
    :param store: the :class:`~mpconnect.store.datasets.DatasetStore` to read the result
        from when the sink is not ``embedded`` (such as a local datasets server's).
    :param max_quarantined: the source's limit; default ``"unlimited"`` (a configuration
        file's default is 1%), so a test sees in the result what was quarantined.
    :raises RunFailed: when the run fails, as ``mpconnect run`` would.
    """
    from mpconnect.config import Config, MixpanelConfig, SourceConfig
    from mpconnect.engine import Engine, RunOptions
    from mpconnect.sinks.embedded import embedded_store_path
    from mpconnect.store.datasets import DatasetStore

    extra = list(plugins)
    if isinstance(connector, str):
        name, loaded = connector, load_test_plugins(*extra)
    else:
        name, loaded = (
            connector.name,
            load_test_plugins(connector_plugin(connector), *extra, entry_points=False),
        )
    mixpanel_config = MixpanelConfig(**dict(mixpanel or {}))
    config = Config(
        mixpanel=mixpanel_config,
        sources={
            source: SourceConfig(
                name=source,
                connector=name,
                dataset_id=dataset_id,
                keep_versions=keep_versions,
                max_quarantined=max_quarantined,
                settings=dict(settings or {}),
            )
        },
    )
    home = Path(home)
    engine = Engine(config, loaded, home)
    summary = engine.run(source, RunOptions(restart=restart))
    result = LoadedVersion(summary=summary, quarantined=_read_quarantine(summary.quarantine_file))
    own_store = store is None
    if own_store:
        if mixpanel_config.sink != "embedded":
            return result
        store = DatasetStore(embedded_store_path(mixpanel_config, home))
    try:
        if summary.version_id and store.has_dataset(dataset_id):
            result.events = list(store.iter_events(dataset_id, summary.version_id))
            result.people = list(store.iter_people(dataset_id, summary.version_id))
    finally:
        if own_store:
            store.close()
    return result


def run_cli(
    *args: str | os.PathLike[str],
    plugins: Iterable[object] = (),
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    entry_points: bool = True,
) -> Result:
    """Run the ``mpconnect`` command line in-process and return click's ``Result``.

    ``result.exit_code``, ``result.stdout`` and ``result.stderr`` hold what a user sees.

    :param plugins: plugin objects registered for this invocation only.
    :param home: ``$MPCONNECT_HOME`` for the invocation.
    :param env: further environment variables (``${NAME}`` secrets of a config file).
    """
    from click.testing import CliRunner

    from mpconnect.cli import build_cli

    environment = dict(env or {})
    if home is not None:
        environment["MPCONNECT_HOME"] = str(home)
    cli = build_cli(list(plugins), entry_points=entry_points)
    with _logging_restored():
        return CliRunner(env=environment).invoke(
            cli, [os.fspath(a) for a in args], catch_exceptions=False
        )


@contextmanager
def _logging_restored() -> Iterator[None]:
    """Undo the command line's logging setup, whose stream dies with the invocation."""
    logger = logging.getLogger("mpconnect")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


class EmbeddedTarget:
    """An embedded sink in its own directory: run connectors into it, then look inside.

    :param home: the directory (``$MPCONNECT_HOME`` of every run and command).
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<EmbeddedTarget {self.home}>"

    @property
    def store_path(self) -> Path:
        """The embedded store's SQLite file."""
        return self.home / "embedded.sqlite3"

    def run(
        self,
        connector: str | type[Connector],
        settings: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> LoadedVersion:
        """Run ``connector`` into this store; see :func:`run_source` for the options."""
        return run_source(connector, settings, home=self.home, **options)

    def cli(
        self,
        *args: str | os.PathLike[str],
        plugins: Iterable[object] = (),
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run an ``mpconnect`` command with this directory as ``$MPCONNECT_HOME``."""
        return run_cli(*args, plugins=plugins, home=self.home, env=env)

    def versions(self, dataset_id: str = "TEST") -> list[Any]:
        """The dataset's versions in the store, newest first (none before a run)."""
        from mpconnect.store.datasets import DatasetStore

        if not self.store_path.exists():
            return []
        store = DatasetStore(self.store_path)
        try:
            return store.list_versions(dataset_id) if store.has_dataset(dataset_id) else []
        finally:
            store.close()


@contextmanager
def local_datasets_server(
    directory: Path,
    *,
    datasets: Sequence[str] = ("TEST",),
    project_token: str = TEST_PROJECT_TOKEN,
    project_secret: str = TEST_PROJECT_SECRET,
    **options: Any,
) -> Iterator[Any]:
    """Serve the Datasets API from a local store in ``directory``, on 127.0.0.1 (TLS).

    Yields the server (``.url``, ``.ca_path``, ``.store``); its :meth:`mixpanel` table
    points the ``datasets`` sink at it. Needs ``mpconnect[server]``.
    """
    try:
        from mpconnect.emulator.server import LocalDatasetsServer
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f'the local datasets server needs {exc.name}: pip install "mpconnect[server]"'
        ) from exc
    with LocalDatasetsServer(
        directory,
        datasets=list(datasets),
        project_token=project_token,
        project_secret=project_secret,
        **options,
    ) as server:
        yield server


def datasets_sink_settings(server: Any) -> dict[str, Any]:
    """The ``[mixpanel]`` table that points the ``datasets`` sink at a local server.

    Pass it with the server's store: ``run_source(..., mixpanel=table, store=server.store)``.
    """
    return {
        "sink": "datasets",
        "api_url": server.url,
        "project_token": server.project_token,
        "secret": server.project_secret,
        "ca_bundle": server.ca_path,
    }


@dataclass
class ServedInBackground:
    """A running ``mpconnect serve NAME`` and the settings it printed to paste.

    :param process: the ``mpconnect serve`` process.
    :param lines: what it printed on stdout, up to its ``press Ctrl-C to stop`` line.
    """

    process: Any
    lines: list[str]

    @property
    def toml(self) -> str:
        """The TOML it printed to paste into ``mpconnect.toml``."""
        start = self.lines.index("paste into mpconnect.toml:") + 1
        end = next(
            (
                i
                for i in range(start, len(self.lines))
                if self.lines[i].startswith("and set its secret")
            ),
            len(self.lines),
        )
        return "\n".join(self.lines[start:end]).strip().removesuffix("press Ctrl-C to stop")

    @property
    def environment(self) -> dict[str, str]:
        """The ``export NAME=value`` lines it printed, as a dict."""
        import shlex

        found = {}
        for line in self.lines:
            if line.startswith("export ") and "=" in line:
                name, _, value = line[len("export ") :].partition("=")
                words = shlex.split(value, comments=True)
                found[name] = words[0] if words else ""
        return found

    def stop(self) -> int:
        """Stop it with SIGTERM, as a supervisor would; return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return int(self.process.wait(timeout=30))
        except Exception:
            self.process.kill()
            return int(self.process.wait(timeout=30))


@contextmanager
def serve_in_background(
    name: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> Iterator[ServedInBackground]:
    """Run ``mpconnect serve NAME ARGS`` in a subprocess until it has printed its settings.

    Yields a :class:`ServedInBackground` (``.toml``, ``.environment``, ``.lines``), and
    stops the server with SIGTERM afterwards. Pass ``--port 0`` to take a free port.

    :param env: the subprocess's environment (default: this process's).
    :param timeout: seconds to wait for the settings before failing.
    :raises RuntimeError: when the server exits, or prints nothing in time, with its output.
    """
    import queue
    import subprocess
    import sys
    import threading

    command = [sys.executable, "-c", "from mpconnect.cli import main; main()", "serve", name, *args]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    served = ServedInBackground(process, [])
    try:
        while not served.lines or served.lines[-1] != "press Ctrl-C to stop":
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                served.stop()
                error = process.stderr.read() if process.stderr else ""
                raise RuntimeError(
                    f"mpconnect serve {name} did not start; it printed "
                    f"{served.lines} and on stderr: {error[-2000:]}"
                )
            served.lines.append(line)
        yield served
    finally:
        served.stop()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


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
