"""What every command shares: the configuration, the plugins, the engine, output helpers."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

from mpconnect.logprefix import SourcePrefixFilter
from mpconnect.paths import home_dir
from mpconnect.redact import redact

if TYPE_CHECKING:  # imported when a command uses them: `--help` and `runs` start fast
    from mpconnect.config import Config
    from mpconnect.engine.ledger import RunLedger
    from mpconnect.engine.lock import SourceLock
    from mpconnect.plugins import Plugins


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message (secrets redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        """Format the record as JSON."""
        data = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data)


class TextLogFormatter(logging.Formatter):
    """``time LEVEL message`` per log line, secrets redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        """Format the record as text."""
        return redact(super().format(record))


@dataclass
class CliState:
    """Options of the top-level command and what is loaded from them, lazily."""

    config_path: str | None = None
    debug: bool = False
    log_format: str = "text"
    verbose: bool = False
    quiet: bool = False
    extra_plugins: tuple[object, ...] = ()
    entry_points: bool = True
    _handler: logging.Handler | None = field(default=None, repr=False)

    def setup_logging(self) -> None:
        """Send mpconnect's log lines to stderr, as text or JSON."""
        root = logging.getLogger("mpconnect")
        for handler in list(root.handlers):
            if getattr(handler, "_mpconnect", False):
                root.removeHandler(handler)
        handler = logging.StreamHandler(sys.stderr)
        if self.log_format == "json":
            handler.setFormatter(JsonLogFormatter())
        else:
            handler.setFormatter(TextLogFormatter())
        handler.addFilter(SourcePrefixFilter())
        handler._mpconnect = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        level = logging.WARNING if self.quiet else logging.INFO
        root.setLevel(logging.DEBUG if self.verbose else level)
        root.propagate = False

    @cached_property
    def config(self) -> Config:
        """The configuration file, loaded and validated."""
        from mpconnect.config import load_config

        return load_config(self.config_path)

    @cached_property
    def plugins(self) -> Plugins:
        """The loaded plugins; load errors are printed as warnings."""
        from mpconnect.plugins import load_plugins

        plugins = load_plugins(self.extra_plugins, entry_points=self.entry_points)
        for error in plugins.load_errors:
            click.echo(f"mpconnect: warning: {error}", err=True)
        return plugins

    @cached_property
    def engine(self) -> Any:
        """The lifecycle engine over the configuration and plugins (with ``[distributed]``:
        the shared ledger, locks, incremental state and source-object caches)."""
        from mpconnect.engine import Engine

        url = self.shared_database_url()
        if url is None:
            return Engine(self.config, self.plugins, home_dir(), ledger=self.ledger)
        from mpconnect.distributed.locks import PostgresSourceLock
        from mpconnect.distributed.state import shared_incremental

        return Engine(
            self.config,
            self.plugins,
            home_dir(),
            ledger=self.ledger,
            lock_factory=lambda source, run_id: PostgresSourceLock(url, source, run_id),
            **shared_incremental(url),
        )

    @cached_property
    def ledger(self) -> RunLedger:
        """The run ledger: the shared database's when ``[distributed]`` is configured,
        else the one under ``$MPCONNECT_HOME`` (read without the plugins)."""
        url = self.shared_database_url()
        if url is not None:
            from mpconnect.distributed.ledger import PostgresRunLedger

            return PostgresRunLedger(url)
        from mpconnect.engine.ledger import SqliteRunLedger

        return SqliteRunLedger(home_dir() / "ledger.sqlite3")

    def shared_database_url(self) -> str | None:
        """``[distributed] database``, or None in single-machine mode. The file is only
        validated (pydantic) when it has a ``[distributed]`` table, so `runs` stays light."""
        import os
        import tomllib
        from pathlib import Path

        # As mpconnect.config.find_config_path, which would import pydantic.
        named = self.config_path or os.environ.get("MPCONNECT_CONFIG") or "mpconnect.toml"
        path = Path(named)
        try:
            with path.open("rb") as handle:
                if "distributed" not in tomllib.load(handle):
                    return None
        except (OSError, tomllib.TOMLDecodeError):
            return None  # the commands that read the file report it
        config = self.config
        if config.distributed is None:
            return None
        return config.distributed.database.get_secret_value()

    def source_lock(self, source: str) -> SourceLock:
        """The lock of ``source``, to ask whether a run of it holds it."""
        url = self.shared_database_url()
        if url is not None:
            from mpconnect.distributed.locks import PostgresSourceLock

            return PostgresSourceLock(url, source)
        from mpconnect.engine.lock import FileSourceLock

        return FileSourceLock(home_dir() / "locks", source, "")


def echo_error(error: BaseException | str) -> None:
    """Print ``mpconnect: error: ...`` on stderr, without secrets."""
    click.echo(f"mpconnect: error: {redact(str(error))}", err=True)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, default=str))


def echo_table(headers: list[str], rows: list[list[Any]]) -> None:
    """Print a plain, aligned table."""
    cells = [headers, *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
