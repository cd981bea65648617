"""Loading plugins and collecting what they register.

Built-in connectors and sinks are entry points of the ``mpconnect`` distribution and
load through exactly the path third-party plugins take. Each entry point is loaded in
its own ``try``: a broken plugin is reported by name and the rest still load.
``MPCONNECT_DISABLE_PLUGINS=name,name`` blocks plugins by entry-point name.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pluggy

from mpconnect import hookspecs
from mpconnect.connector_ref import ConnectorRef
from mpconnect.errors import ConnectorUnavailable, PluginError

if TYPE_CHECKING:  # imported when used: `connectors list` loads no sink and no pydantic
    from mpconnect.connector import Connector
    from mpconnect.served import LocalServer
    from mpconnect.sink import Sink

ENTRY_POINT_GROUP = "mpconnect"
DISABLE_ENV = "MPCONNECT_DISABLE_PLUGINS"


@dataclass(frozen=True)
class Provider:
    """Who provided a connector or sink: a plugin name and its distribution."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"{self.plugin} ({self.distribution} {self.version})"
        return self.plugin


@dataclass(frozen=True)
class ConnectorEntry:
    """A registered connector (a class or a :class:`ConnectorRef`), its provider, and
    whether it can run here."""

    name: str
    registered: type[Connector] | ConnectorRef
    provider: Provider
    missing: tuple[str, ...] = ()

    @cached_property
    def cls(self) -> type[Connector]:
        """The connector class, imported on first use when registered by reference."""
        if isinstance(self.registered, ConnectorRef):
            return self.registered.load()
        return self.registered

    @property
    def description(self) -> str:
        """One line saying what the connector reads (without importing it)."""
        return self.registered.description

    @property
    def incremental(self) -> bool:
        """True when the connector can read only what changed (without importing it)."""
        return bool(self.registered.incremental)

    @property
    def available(self) -> bool:
        """True when every module the connector requires is importable."""
        return not self.missing

    @property
    def unavailable_reason(self) -> str | None:
        """Why the connector cannot run, with the command that fixes it."""
        if not self.missing:
            return None
        package = self.provider.distribution or self.name
        hint = self.registered.install_hint or f'pip install "{package}"'
        return f"needs {', '.join(self.missing)}: {hint}"


@dataclass(frozen=True)
class SinkEntry:
    """A registered sink class and its provider."""

    name: str
    cls: type[Sink]
    provider: Provider


@dataclass
class Plugins:
    """The loaded plugins: the pluggy manager and the registered connectors and sinks."""

    pm: pluggy.PluginManager
    connectors: dict[str, ConnectorEntry] = field(default_factory=dict)
    load_errors: list[str] = field(default_factory=list)
    providers: dict[str, Provider] = field(default_factory=dict)

    @cached_property
    def sinks(self) -> dict[str, SinkEntry]:
        """The registered sinks, collected (and their modules imported) when first asked.

        :raises PluginError: as for connectors.
        """
        from mpconnect.sink import Sink

        return {
            name: SinkEntry(name, cls, provider)
            for name, (cls, provider) in _collect(
                self, "register_sinks", _subclass(Sink), "mpconnect.sinks.base.Sink", "sink"
            ).items()
        }

    @property
    def hook(self) -> Any:
        """The pluggy hook relay, to call hooks: ``plugins.hook.version_live(...)``."""
        return self.pm.hook

    def connector(self, name: str) -> ConnectorEntry:
        """Return the connector ``name``.

        :raises PluginError: when no plugin registered it (the message lists the known ones).
        :raises ConnectorUnavailable: when its extra is not installed (the message says how).
        """
        entry = self.connectors.get(name)
        if entry is None:
            known = ", ".join(sorted(self.connectors)) or "none"
            raise PluginError(f"unknown connector {name!r}; installed connectors: {known}")
        if not entry.available:
            raise ConnectorUnavailable(f"connector {name!r} {entry.unavailable_reason}")
        return entry

    def sink(self, name: str) -> SinkEntry:
        """Return the sink ``name``, or raise PluginError listing the known ones."""
        entry = self.sinks.get(name)
        if entry is None:
            known = ", ".join(sorted(self.sinks)) or "none"
            raise PluginError(f"unknown sink {name!r}; installed sinks: {known}")
        return entry

    def local_servers(self) -> dict[str, tuple[type[LocalServer], Provider]]:
        """The local servers plugins register (``mpconnect serve NAME``), with providers.

        Collected when asked, so a plugin's broken server never stops a run.

        :raises PluginError: as for connectors: not a LocalServer, a bad name, two of one name.
        """
        from mpconnect.served import LocalServer

        return _collect(
            self,
            "register_local_servers",
            _subclass(LocalServer),
            "mpconnect.LocalServer",
            "local server",
        )

    @property
    def has_transformers(self) -> bool:
        """True when some plugin implements ``transform_record``."""
        return bool(self.pm.hook.transform_record.get_hookimpls())


def _provider_of(plugins: Plugins, plugin: object) -> Provider:
    name = plugins.pm.get_name(plugin) or repr(plugin)
    return plugins.providers.get(name, Provider(name))


def _extra_name(pm: pluggy.PluginManager, plugin: object) -> str:
    """Name a plugin object given in code after its module or class, uniquely."""
    base = getattr(plugin, "__name__", None) or type(plugin).__name__
    name, number = base, 1
    while pm.has_plugin(name) or pm.is_blocked(name):
        number += 1
        name = f"{base}#{number}"
    return name


def _disabled_names() -> set[str]:
    return {part.strip() for part in os.environ.get(DISABLE_ENV, "").split(",") if part.strip()}


def _load_entry_points(
    pm: pluggy.PluginManager, errors: list[str], providers: dict[str, Provider]
) -> None:
    disabled = _disabled_names()
    for name in disabled:
        pm.set_blocked(name)
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"]
        key = (dist_name or "").lower().replace("_", "-")
        if key in seen:  # the same project twice on sys.path: the first one is imported
            continue
        seen.add(key)
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in disabled or pm.is_blocked(ep.name):
                continue
            if ep.name in providers:
                errors.append(
                    f"plugin {ep.name!r} ({dist_name}) not loaded: {providers[ep.name]} "
                    f"already uses that name"
                )
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # one broken plugin must not take down the rest
                errors.append(
                    f"plugin {ep.name!r} ({dist.metadata['Name']}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                )
                continue
            providers[ep.name] = Provider(ep.name, dist.metadata["Name"], dist.version)


def _subclass(base: type) -> Callable[[object], bool]:
    return lambda cls: isinstance(cls, type) and issubclass(cls, base)


def _is_connector(cls: object) -> bool:
    if isinstance(cls, ConnectorRef):
        return True
    from mpconnect.connector import Connector

    return isinstance(cls, type) and issubclass(cls, Connector)


def _collect(
    plugins: Plugins,
    hook_name: str,
    accepts: Callable[[object], bool],
    expected: str,
    kind: str,
) -> dict[str, tuple[Any, Provider]]:
    found: dict[str, list[tuple[Any, Provider]]] = {}
    hook = getattr(plugins.pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        provider = _provider_of(plugins, impl.plugin)
        collected: list[Any] = []
        try:
            impl.function(collected.append)
        except Exception as exc:
            raise PluginError(
                f"plugin {provider} raised in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
        for cls in collected:
            if not accepts(cls):
                raise PluginError(
                    f"plugin {provider} registered {cls!r} in {hook_name}; "
                    f"expected a subclass of {expected}"
                )
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name.isidentifier():
                raise PluginError(
                    f"plugin {provider} registered {kind} {_label(cls)} with name {name!r}; "
                    "a name must be a non-empty identifier such as 'acme_crm'"
                )
            found.setdefault(name, []).append((cls, provider))
    result: dict[str, tuple[Any, Provider]] = {}
    for name, providers in found.items():
        if len(providers) > 1:
            who = ", ".join(f"{_label(cls)} from {prov}" for cls, prov in providers)
            raise PluginError(f"conflicting plugins: {kind} {name!r} is provided by {who}")
        result[name] = providers[0]
    return result


def _label(registered: Any) -> str:
    if isinstance(registered, ConnectorRef):
        return registered.target.rpartition(":")[2]
    return str(registered.__qualname__)


def load_plugins(extra: Iterable[object] = (), *, entry_points: bool = True) -> Plugins:
    """Load the plugins and collect their connectors and sinks.

    :param extra: plugin objects (modules or instances with hook implementations) to
        register besides the entry points, as tests do.
    :param entry_points: load the ``mpconnect`` entry-point group (built-ins included).
    :raises PluginError: for a misspelt hook, a plugin that raises while registering,
        something registered that is not a connector or sink, or two of one name.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    errors: list[str] = []
    providers: dict[str, Provider] = {}
    if entry_points:
        _load_entry_points(pm, errors, providers)
    for plugin in extra:
        pm.register(plugin, name=_extra_name(pm, plugin))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from exc
    plugins = Plugins(pm=pm, load_errors=errors, providers=providers)
    connectors = _collect(
        plugins, "register_connectors", _is_connector, "mpconnect.connector.Connector", "connector"
    )
    for name, (cls, provider) in connectors.items():
        missing = tuple(cls.missing_requirements())
        plugins.connectors[name] = ConnectorEntry(name, cls, provider, missing)
    return plugins


def notify(plugins: Plugins, hook_name: str, log: Any, **kwargs: Any) -> None:
    """Call an observer hook on every plugin; a plugin that raises is logged by name.

    Observers cannot break a run: each implementation is called on its own.
    """
    hook = getattr(plugins.pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        argnames = impl.argnames
        try:
            impl.function(**{k: v for k, v in kwargs.items() if k in argnames})
        except Exception as exc:
            log.warning(
                "plugin %r raised in %s: %s: %s",
                plugins.pm.get_name(impl.plugin),
                hook_name,
                type(exc).__name__,
                exc,
            )
