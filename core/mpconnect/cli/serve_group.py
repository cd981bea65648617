"""``mpconnect serve NAME``: the local servers plugins register, one subcommand each.

``mixpanel`` (the local Datasets and ingestion API) and each connector's stand-in for its
source API are registered through the ``register_local_servers`` hook. The spelling from
before there were several, ``mpconnect serve --dataset DEMO ...`` (options right after
``serve``, or nothing at all), still starts the Mixpanel server.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from mpconnect.cli.context import CliState
from mpconnect.emulator.background import LocalServer, ServedSource, ServeOptions
from mpconnect.errors import MpconnectError
from mpconnect.paths import home_dir
from mpconnect.plugins import load_plugins

#: The server ``mpconnect serve`` starts when no server is named.
DEFAULT_SERVER = "mixpanel"
#: The last line every ``mpconnect serve NAME`` prints once it serves.
READY_LINE = "press Ctrl-C to stop"


class ServeGroup(click.Group):
    """The ``serve`` group: subcommands come from the plugins, lazily."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Route ``serve`` and ``serve --option ...`` to ``serve mixpanel``."""
        if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
            args = [DEFAULT_SERVER, *args]
        return super().parse_args(ctx, args)

    def _servers(self, ctx: click.Context) -> dict[str, type[LocalServer]]:
        state = ctx.find_object(CliState)
        plugins = state.plugins if state is not None else load_plugins()
        return {name: cls for name, (cls, _provider) in plugins.local_servers().items()}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The registered servers' names."""
        try:
            return sorted(self._servers(ctx))
        except MpconnectError as exc:
            click.echo(f"mpconnect: error: {exc}", err=True)
            return []

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command of the server ``cmd_name``, or None."""
        cls = self._servers(ctx).get(cmd_name)
        if cls is None:
            return None
        return cls.command() or source_server_command(cls)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Name the installed servers when the one asked for is not among them."""
        name = args[0] if args else ""
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            known = ", ".join(self.list_commands(ctx)) or "none"
            raise click.UsageError(f"no local server {name!r}; installed: {known}", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=ServeGroup, name="serve")
def serve() -> None:
    """Serve a local stand-in for Mixpanel or a source's API: mpconnect serve NAME.

    Each server prints the settings to paste into mpconnect.toml. Without NAME (or with
    options right after `serve`), the local Mixpanel server starts, as before.
    """


def source_server_command(cls: type[LocalServer]) -> click.Command:
    """The standard ``mpconnect serve NAME`` command of a :class:`LocalServer` class."""
    size_flag = "--" + cls.size_option.replace("_", "-")

    def run(host: str, port: int, size: int, seed: int, directory: Path | None) -> None:
        options = ServeOptions(
            host=host,
            port=port,
            size=size,
            seed=seed,
            directory=directory or home_dir() / f"serve-{cls.name}",
        )
        serve_source(cls, options)

    params: list[click.Parameter] = [
        click.Option(
            ["--host"], default="127.0.0.1", show_default=True, help="Address to listen on."
        ),
        click.Option(
            ["--port"],
            default=cls.default_port,
            show_default=True,
            type=click.IntRange(0, 65535),
            help="Port (0 picks a free one).",
        ),
        click.Option(
            [size_flag, "size"],
            default=cls.default_size,
            show_default=True,
            type=click.IntRange(min=0),
            help=cls.size_help,
        ),
        click.Option(
            ["--seed"],
            default=1,
            show_default=True,
            help="Seed of the generated data: the same seed serves the same data.",
        ),
        click.Option(
            ["--dir", "directory"],
            type=click.Path(file_okay=False, path_type=Path),
            help=f"Where the server writes its files, such as a CA's ca.pem "
            f"(default $MPCONNECT_HOME/serve-{cls.name}).",
        ),
    ]
    summary = cls.summary or f"a local server for the {cls.connector} connector"
    return click.Command(
        cls.name,
        callback=run,
        params=params,
        help=f"Serve {summary} and print the source settings that use it.",
        short_help=f"Serve {summary}.",
    )


def serve_source(cls: type[LocalServer], options: ServeOptions) -> None:
    """Start ``cls``, print what to paste, and serve until SIGINT or SIGTERM."""
    missing = cls.missing_requirements()
    if missing:
        hint = cls.install_hint or 'pip install "mpconnect[server]"'
        raise MpconnectError(f"mpconnect serve {cls.name} needs {', '.join(missing)}: {hint}")
    try:
        served = cls().start(options)
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise MpconnectError(
            f"mpconnect serve {cls.name}: cannot listen on {options.host}:{options.port}: "
            f"{reason}; choose another --port (0 picks a free one)"
        ) from None
    try:
        click.echo(paste_text(cls, served))
        click.echo(f"\n{READY_LINE}")
        sys.stdout.flush()  # a pipe reader (a test, a supervisor) sees the settings at once
        wait_for_stop_signal()
    finally:
        served.stop()
    click.echo("stopped", err=True)


def paste_text(cls: type[LocalServer], served: ServedSource) -> str:
    """What ``mpconnect serve NAME`` prints: the source table and the ``export`` lines."""
    source = cls.source_name or cls.name
    table = {
        "connector": cls.connector,
        "dataset_id": cls.dataset_id or source.upper(),
        **served.source_options,
    }
    lines = [
        f"serving {cls.summary or cls.name} on {served.url}: {served.contents}",
        "",
        "paste into mpconnect.toml:",
        "",
        f"[sources.{source}]",
        *(f"{key} = {toml_value(value)}" for key, value in table.items()),
        f"[sources.{source}.settings]",
        *(f"{key} = {toml_value(value)}" for key, value in served.settings.items()),
    ]
    if served.environment:
        lines += ["", "and set its secrets in your shell:", ""]
        lines += [
            f"export {name}={shell_quote(value)}" for name, value in served.environment.items()
        ]
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    """``value`` written as TOML (strings, numbers, booleans, paths and lists of them)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def shell_quote(value: str) -> str:
    """``value`` quoted for a POSIX shell when it needs it."""
    import shlex

    return shlex.quote(value)


def wait_for_stop_signal() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM; the previous handlers are restored."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {
        signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
