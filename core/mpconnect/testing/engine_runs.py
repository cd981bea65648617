"""The kit's complete level: runs of the real engine into the embedded store
(:func:`run_source`, :class:`EmbeddedTarget`) and ``mpconnect`` commands in-process
(:func:`run_cli`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from mpconnect.connector import Connector

if TYPE_CHECKING:
    from click.testing import Result

    from mpconnect.engine.summary import RunSummary

from mpconnect.testing.collect import (
    QuarantinedRecord,
    _Records,
    connector_plugin,
    load_test_plugins,
)

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
    full_refresh: bool = False,
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
    :param full_refresh: read everything, as ``mpconnect run --full-refresh``.
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
    summary = engine.run(source, RunOptions(restart=restart, full_refresh=full_refresh))
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
