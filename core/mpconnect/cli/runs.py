"""``mpconnect run``, ``mpconnect runs`` and ``mpconnect check``."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator

import click

from mpconnect.cli.context import CliState, echo_error, echo_json, echo_table
from mpconnect.config import connector_settings, require_connector
from mpconnect.connector import RunContext
from mpconnect.engine.lifecycle import RunOptions
from mpconnect.engine.progress import default_progress
from mpconnect.errors import MpconnectError, RunFailed, RunLocked
from mpconnect.retry import short_retries


def register(cli: click.Group) -> None:
    """Add ``run``, ``runs`` and ``check``."""
    cli.add_command(run)
    cli.add_command(runs)
    cli.add_command(check)


@click.command()
@click.argument("sources", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every configured source.")
@click.option("--restart", is_flag=True,
              help="Abandon (delete) an unfinished version instead of resuming it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary; errors only.")
@click.option("--concurrency", type=click.IntRange(1, 64),
              help="Upload workers (default: [engine] concurrency, 4).")
@click.option("--max-quarantined", type=click.FloatRange(min=0),
              help="Fail before publishing when more records are quarantined: a count, or a "
                   "fraction of records read such as 0.01 (default 0 = no limit).")
@click.pass_obj
def run(state: CliState, sources: tuple[str, ...], run_all: bool, restart: bool, quiet: bool,
        concurrency: int | None, max_quarantined: float | None) -> None:
    """Run SOURCES: each becomes a new live dataset version, then prints its summary."""
    names = list(sources)
    if run_all:
        config = state.config
        names = [n for n in config.sources if n not in config.builtin_sources] or ["demo"]
    if not names:
        raise click.UsageError("name at least one source, or give --all")
    for name in names:
        state.config.source(name)  # unknown names fail before anything runs
    failures = 0
    stop = threading.Event()
    with _stop_on_signals(stop):
        for name in names:
            if stop.is_set():
                break
            failures += _run_one(state, name, stop, restart=restart, quiet=quiet,
                                 concurrency=concurrency, max_quarantined=max_quarantined)
    if failures:
        raise click.exceptions.Exit(1)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn the first SIGTERM or SIGINT into a stop at the next checkpoint.

    A second one interrupts at once (the run is then resumed like after a crash).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo(f"mpconnect: {signal.Signals(signum).name}: stopping at the next checkpoint "
                   "(again to stop at once)", err=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run_one(state: CliState, name: str, stop: threading.Event, *, restart: bool, quiet: bool,
             concurrency: int | None, max_quarantined: float | None) -> int:
    """Run one source and print its summary; return 1 if it failed, else 0."""
    options = RunOptions(restart=restart, concurrency=concurrency, max_quarantined=max_quarantined,
                         progress=default_progress(quiet), stop=stop)
    try:
        summary = state.engine.run(name, options)
    except RunLocked as exc:
        echo_error(exc)
        return 1
    except RunFailed as exc:
        last = state.engine.ledger.list_runs(name, limit=1)
        if not quiet and last:
            click.echo(_describe_row(last[0]), err=True)
        echo_error(exc)
        return 1
    except MpconnectError as exc:  # refused before it started: the other sources still run
        echo_error(exc)
        return 1
    if state.log_format == "json":  # for machines: the summary as one JSON object
        click.echo(json.dumps(summary.to_dict()))
    elif not quiet:
        click.echo(summary.describe())
    return 0


def _describe_row(row: dict) -> str:
    return (f"{row['source']}: {row['status']}; read {row['read']:,}, imported "
            f"{row['imported']:,}, quarantined {row['quarantined']:,}; version "
            f"{row['version_id'] or '-'}")


@click.command()
@click.option("--source", help="Only this source's runs.")
@click.option("--limit", default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def runs(state: CliState, source: str | None, limit: int, as_json: bool) -> None:
    """List past runs, newest first: status, version, counts, duration, error."""
    rows = state.engine.ledger.list_runs(source, limit=limit)
    for row in rows:
        lock = state.engine.lock_factory(row["source"], "")
        if row["status"] == "running" and not lock.is_held():
            row["status"] = "dead"  # killed or lost power: the next run resumes or restarts
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["STARTED", "SOURCE", "SINK", "STATUS", "VERSION", "READ", "IMPORTED", "QUAR.",
         "RETRIES", "SECONDS", "ERROR"],
        [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])), r["source"],
          r["sink"], r["status"], r["version_id"] or "-", r["read"], r["imported"],
          r["quarantined"],
          r["retries"], r["duration"] if r["duration"] is not None else "-",
          (r["error"] or "")[:80]] for r in rows],
    )


@click.command()
@click.argument("source")
@click.pass_obj
def check(state: CliState, source: str) -> None:
    """Check SOURCE's settings and credentials with one cheap call to the source (retried
    at most once)."""
    config = state.config
    source_config = config.source(source)
    require_connector(config, source_config, state.plugins.connectors)
    entry = state.plugins.connector(source_config.connector)

    settings = connector_settings(config, source_config, entry.cls.Settings)
    connector = entry.cls(settings)
    ctx = RunContext(source=source, dataset_id=source_config.dataset_id,
                     log=logging.getLogger(f"mpconnect.source.{source}"))
    try:
        with short_retries():  # one cheap call: an answer within seconds, not minutes
            message = connector.check(ctx)
    except MpconnectError:
        raise
    except Exception as exc:
        raise MpconnectError(f"{source}: check failed: {type(exc).__name__}: {exc}") from exc
    finally:
        connector.close()
    click.echo(f"{source}: ok: {message}")
