"""A connector registered by where its class lives, imported only when a command uses it.

``mpconnect connectors list`` and ``mpconnect --help`` must not import every connector's
settings model (pydantic) and client library: a plugin may register
``ConnectorRef("acme", "acme_plugin.connector:AcmeConnector", description=...)`` instead
of the class. The class is imported on first use and must agree with the reference.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpconnect.errors import PluginError

if TYPE_CHECKING:
    from mpconnect.connector import Connector


def missing_modules(names: Iterable[str]) -> list[str]:
    """The import names in ``names`` that cannot be imported (found without importing)."""
    missing = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # "pkg.sub" when pkg itself is missing
            spec = None
        if spec is None:
            missing.append(name)
    return missing


@dataclass(frozen=True)
class ConnectorRef:
    """What ``connectors list`` shows of a connector, and where its class is.

    :param name: the connector's name (``connector = "acme"``), as the class's ``name``.
    :param target: ``"package.module:ClassName"`` of the :class:`mpconnect.Connector`.
    :param description: one line saying what it reads (the class's ``description``).
    :param requires: import names it needs (the class's ``requires``).
    :param install_hint: the command that installs them (the class's ``install_hint``).
    :param incremental: whether it reads only what changed (the class's ``incremental``).
    """

    name: str
    target: str
    description: str = ""
    requires: tuple[str, ...] = ()
    install_hint: str | None = None
    incremental: bool = False

    def missing_requirements(self) -> list[str]:
        """The import names in ``requires`` that cannot be imported."""
        return missing_modules(self.requires)

    def load(self) -> type[Connector]:
        """Import the connector class.

        :raises PluginError: when it cannot be imported or is not the connector named.
        """
        from mpconnect.connector import Connector

        module_name, _, attribute = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"connector {self.name!r}: cannot import {self.target}: {type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Connector)) or cls.name != self.name:
            raise PluginError(
                f"connector {self.name!r}: {self.target} is not a "
                f"mpconnect.Connector named {self.name!r}"
            )
        return cls
