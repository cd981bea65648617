"""What a plugin registers with ``register_local_servers`` to get ``mpconnect serve NAME``.

:class:`LocalServer` is the contract (part of the plugin contract at the bottom of the
package); :meth:`LocalServer.start` gets :class:`ServeOptions` and returns a
:class:`ServedSource`. The helpers to run one (:class:`~mpconnect.BackgroundServer`,
:class:`~mpconnect.LocalCA`) are in :mod:`mpconnect.emulator.background`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class ServeOptions:
    """What ``mpconnect serve NAME`` was asked for.

    :param host: the address to bind.
    :param port: the port (0 picks a free one).
    :param size: how much data to seed (the server's ``size_option``).
    :param seed: the seed of the generated data; the same seed serves the same data.
    :param directory: a directory the server may write to, such as for its CA file.
    """

    host: str
    port: int
    size: int
    seed: int
    directory: Path


@dataclass
class ServedSource:
    """A running local server and the source settings that point a connector at it.

    :param url: where it listens.
    :param settings: the source's ``settings`` table; secrets as ``${NAME}`` references.
    :param environment: the value of each ``${NAME}`` the settings refer to.
    :param contents: what it serves, for people, such as ``"200 customers, 512 charges"``.
    :param stop: stops serving.
    :param source_options: further keys of the ``[sources.SOURCE]`` table, such as
        ``{"max_quarantined": 0.05}`` for seeded data that holds bad rows on purpose.
    """

    url: str
    settings: dict[str, Any]
    environment: dict[str, str]
    contents: str
    stop: Callable[[], None]
    source_options: dict[str, Any] = field(default_factory=dict)


class LocalServer:
    """A local stand-in for a source's API that ``mpconnect serve NAME`` starts.

    Subclass it, set the class attributes, implement :meth:`start`, and register the
    class with the ``register_local_servers`` hook. ``mpconnect serve NAME`` then takes
    ``--host``, ``--port``, ``--seed``, ``--dir`` and ``--SIZE_OPTION N``, starts the
    server, prints the ``[sources.SOURCE]`` table and ``export`` lines to paste, and
    serves until Ctrl-C or SIGTERM.
    """

    #: The server's name: ``mpconnect serve NAME``.
    name: ClassVar[str] = ""
    #: The connector the printed source uses.
    connector: ClassVar[str] = ""
    #: One line for ``mpconnect serve --help``.
    summary: ClassVar[str] = ""
    #: The source's name and dataset in the printed table.
    source_name: ClassVar[str] = ""
    dataset_id: ClassVar[str] = ""
    #: The option that sizes the seeded data (``--customers N``) and its default.
    size_option: ClassVar[str] = "size"
    size_help: ClassVar[str] = "How much data to seed."
    default_size: ClassVar[int] = 100
    #: The default port (0: a free one).
    default_port: ClassVar[int] = 0
    #: Import names the server needs, and the command that installs them.
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str | None] = None

    def start(self, options: ServeOptions) -> ServedSource:
        """Start serving in the background and return how to reach it."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement start()")

    @classmethod
    def command(cls) -> Any:
        """A ``click.Command`` of the server's own, instead of the standard one (None).

        For a server whose options differ from the standard ones, such as
        ``mpconnect serve mixpanel``; its name must be :attr:`name`.
        """
        return None

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """The import names in ``requires`` that cannot be imported."""
        import importlib.util

        missing = []
        for module in cls.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(module)
        return missing
