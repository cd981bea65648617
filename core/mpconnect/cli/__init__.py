"""The ``mpconnect`` command line, built in :func:`build_cli` so tests load plugins afresh.

Each command group lives in its own module; this one wires them together, loads the
configuration and plugins lazily, and turns mpconnect's errors into one clear line
(a traceback only with ``--debug`` or ``MPCONNECT_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterable, Sequence

import click

from mpconnect.cli.context import CliState, echo_error
from mpconnect.cli.global_options import hoist_global_options
from mpconnect.disk import file_problem
from mpconnect.errors import MpconnectError
from mpconnect.event_lines import PURE_PYTHON_VARIABLE, compiled, event_line_function
from mpconnect.malloc_tuning import keep_freed_memory
from mpconnect.redact import redact


class _Group(click.Group):
    """A group that prints mpconnect errors as one line (after the traceback with --debug),
    secrets redacted, and exits 1. Global options may follow the subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Accept the global options after the subcommand too."""
        if ctx.parent is None:
            args = hoist_global_options(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MpconnectError as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                click.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)
            echo_error(exc)
            ctx.exit(1)
        except OSError as exc:
            state = ctx.find_object(CliState)
            if (state is not None and state.debug) or exc.filename is None:
                raise
            click.echo(f"mpconnect: error: {file_problem(exc, exc.filename)}", err=True)
            ctx.exit(1)


def build_cli(extra_plugins: Iterable[object] = (), *, entry_points: bool = True) -> click.Group:
    """Build the command group.

    :param extra_plugins: plugin objects to register besides the entry points (tests).
    :param entry_points: load plugins from the ``mpconnect`` entry-point group.
    """
    from mpconnect import __version__
    from mpconnect.cli import datasets, listing, quarantine, runs
    from mpconnect.cli import state as state_commands

    @click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="Configuration file (default: $MPCONNECT_CONFIG, else ./mpconnect.toml).",
    )
    @click.option(
        "--home",
        type=click.Path(file_okay=False),
        help="mpconnect's data directory: ledger, store, spools, quarantine "
        "(default: $MPCONNECT_HOME, else the user data directory).",
    )
    @click.option(
        "--debug",
        is_flag=True,
        default=lambda: os.environ.get("MPCONNECT_DEBUG") == "1",
        help="Show tracebacks (also MPCONNECT_DEBUG=1).",
    )
    @click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Log lines for people or for machines.",
    )
    @click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="No progress, summaries or informational log lines; errors only.",
    )
    @click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
    @click.version_option(__version__, prog_name="mpconnect", message=_version_message())
    @click.pass_context
    def cli(
        ctx: click.Context,
        config_path: str | None,
        home: str | None,
        debug: bool,
        log_format: str,
        quiet: bool,
        verbose: bool,
    ) -> None:
        """Load business data into Mixpanel, one of two ways (the [mixpanel] sink key):
        as dataset versions through the Datasets API (sink = "datasets"; "embedded" is a
        local store of the same kind), or in batches through the ingestion API's /import
        and /engage (sink = "ingestion"; no versions).

        Without a configuration file the built-in `demo` source loads synthetic data into
        the embedded store: try `mpconnect run demo` and `mpconnect inspect DEMO`.
        Global options may also follow the subcommand: `mpconnect run demo --quiet`.
        """
        if home:
            from mpconnect.paths import HOME_ENV

            os.environ[HOME_ENV] = home  # also for the processes a run starts
        state = CliState(
            config_path=config_path,
            debug=debug,
            log_format=log_format,
            verbose=verbose,
            quiet=quiet,
            extra_plugins=tuple(extra_plugins),
            entry_points=entry_points,
        )
        state.setup_logging()
        ctx.obj = state

    for module in (listing, runs, datasets, quarantine, state_commands):
        module.register(cli)
    _register_optional(cli)
    return cli


def _register_optional(cli: click.Group) -> None:
    """Add command modules that other parts of mpconnect provide, when present."""
    import importlib

    for name in (
        "mpconnect.cli.serve",
        "mpconnect.cli.schedule",
        "mpconnect.cli.ui",
        "mpconnect.cli.distributed",
    ):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(cli)


def _version_message() -> str:
    """``mpconnect --version``: the version and whether the C accelerator is in use."""
    if not compiled():
        accelerator = "not compiled (no C compiler at install): the Python path alone"
    elif event_line_function() is None:
        accelerator = f"compiled, switched off by {PURE_PYTHON_VARIABLE}"
    else:
        accelerator = "compiled"
    return f"%(prog)s, version %(version)s\nC accelerator: {accelerator}"


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    keep_freed_memory()
    cli = build_cli()
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="mpconnect")
