"""``mpconnect worker`` and ``mpconnect dispatch``: runs on Celery workers (``[distributed]``)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from typing import Any

import click

from mpconnect.cli.context import CliState, echo_error
from mpconnect.errors import MpconnectError
from mpconnect.redact import redact

log = logging.getLogger("mpconnect.worker")

INSTALL = "pip install 'mpconnect[distributed]'"


def register(cli: click.Group) -> None:
    """Add ``worker`` and ``dispatch``."""
    cli.add_command(worker)
    cli.add_command(dispatch)


def require_distributed() -> None:
    """Raise MpconnectError with the install line when celery or psycopg is missing."""
    for module in ("celery", "psycopg"):
        try:
            __import__(module)
        except ImportError:
            raise MpconnectError(
                f"distributed runs need {module}, which is not installed; {INSTALL}"
            ) from None


@click.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Runs at once in this worker (default: the number of CPUs).",
)
@click.pass_obj
def worker(state: CliState, concurrency: int | None) -> None:
    """Start a Celery worker that runs dispatched sources (logs in JSON, one object per
    line). Stop it with SIGTERM: it finishes its runs first (a second SIGTERM or SIGQUIT
    stops at once; the runs are then delivered again and resumed)."""
    require_distributed()
    from mpconnect.cli.context import JsonLogFormatter
    from mpconnect.distributed.app import QUEUE, make_app
    from mpconnect.distributed.connection import Database
    from mpconnect.distributed.schema import migrate

    config = state.config
    app = make_app(config)
    settings = app.conf
    database = Database(config.distributed.database.get_secret_value())  # type: ignore[union-attr]
    try:
        migrate(database)  # before any task, so a schema problem is told at start
    finally:
        database.close()
    if config.path is not None:  # the pool's processes read it afresh for each run
        os.environ["MPCONNECT_CONFIG"] = str(config.path.resolve())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if state.verbose else logging.INFO)
    mp = logging.getLogger("mpconnect")
    mp.handlers = [handler]
    mp.propagate = False
    log.info(
        "worker starting: queue %s, broker %s, concurrency %s",
        QUEUE,
        redact(settings.broker_url),
        concurrency or os.cpu_count(),
    )
    logging.captureWarnings(True)  # Celery's warnings become JSON lines too
    argv = ["--quiet", "worker", "--queues", QUEUE, "--loglevel", "INFO", "--without-mingle"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    app.worker_main(argv)


@click.command()
@click.argument("sources", nargs=-1)
@click.option("--all", "dispatch_all", is_flag=True, help="Dispatch every configured source.")
@click.option(
    "--wait",
    is_flag=True,
    help="Block until every run ended, print each one's summary, exit 1 if one failed.",
)
@click.pass_obj
def dispatch(state: CliState, sources: tuple[str, ...], dispatch_all: bool, wait: bool) -> None:
    """Enqueue runs of SOURCES for the workers (`mpconnect worker`) and print each
    dispatch's id; with --wait, block and print each run's summary as it ends."""
    require_distributed()
    from mpconnect.distributed.dispatch import Dispatcher

    config = state.config
    names = list(sources)
    if dispatch_all:
        names = [n for n in config.sources if n not in config.builtin_sources] or ["demo"]
    if not names:
        raise click.UsageError("name at least one source, or give --all")
    for name in names:
        config.source(name)  # unknown names fail before anything is sent
    dispatcher = Dispatcher(config)
    try:
        ids = []
        for name in names:
            made = dispatcher.dispatch(name, f"dispatch@{os.uname().nodename}")
            if made is not None:
                ids.append(made)
                if state.log_format != "json" and not state.quiet:
                    click.echo(f"{name}: dispatched ({made})", err=True)
        if not wait:
            for made in ids:
                click.echo(made)
            return
        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
        failed = 0

        def ended(row: dict[str, Any]) -> None:
            nonlocal failed
            failed += _show(state, row)

        try:
            rows = dispatcher.wait(ids, stop=stop, on_end=ended)
        finally:
            signal.signal(signal.SIGINT, previous)
        if stop.is_set():
            waiting = [r["source"] for r in rows if r["state"] not in ("succeeded",)]
            echo_error(f"stopped waiting; still going on the workers: {', '.join(waiting)}")
            raise click.exceptions.Exit(130)
        if failed:
            raise click.exceptions.Exit(1)
    finally:
        dispatcher.close()


def _show(state: CliState, row: dict[str, Any]) -> int:
    """Print an ended dispatch; return 1 if it did not succeed."""
    from mpconnect.distributed.dispatches import GOOD
    from mpconnect.engine.summary import RunSummary

    good = row["state"] in GOOD
    summary = row["summary"]
    if state.log_format == "json":
        click.echo(
            redact(
                json.dumps(
                    {
                        "dispatch_id": row["dispatch_id"],
                        "source": row["source"],
                        "state": row["state"],
                        "worker": row["worker"],
                        "attempts": row["attempts"],
                        "error": row["error"],
                        "summary": summary,
                    }
                )
            )
        )
    elif not state.quiet or not good:
        if summary is not None:
            fields = {k: v for k, v in summary.items() if k not in ("duration",)}
            fields["quarantine_reasons"] = [
                (r["reason"], r["count"]) for r in fields.get("quarantine_reasons", [])
            ]
            text = RunSummary(**fields).describe()
            click.echo(redact(f"{text}\n  worker {row['worker']}, attempts {row['attempts']}"))
        else:
            ended = time.strftime("%H:%M:%S", time.localtime(row["ended_at"] or time.time()))
            click.echo(f"{row['source']}: {row['state']} at {ended}")
    if not good:
        echo_error(f"{row['source']}: {row['state']}: {row['error'] or 'see mpconnect runs'}")
    return 0 if good else 1
