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
from mpconnect.engine.wording import loaded, row_is_versioned, sink_is_versioned, snapshot_columns
from mpconnect.errors import MpconnectError, RunFailed, RunLocked
from mpconnect.redact import redact


def register(cli: click.Group) -> None:
    """Add ``run``, ``runs`` and ``check``."""
    cli.add_command(run)
    cli.add_command(runs)
    cli.add_command(check)


class _QuarantineLimit(click.ParamType):
    """A count, a fraction or ``unlimited``."""

    name = "LIMIT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | str:
        if isinstance(value, str) and value != "unlimited":
            with contextlib.suppress(ValueError):
                value = float(value)
        from mpconnect.config import check_max_quarantined

        try:
            return check_max_quarantined(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command()
@click.argument("sources", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every configured source.")
@click.option(
    "--restart",
    is_flag=True,
    help="Extract the source again instead of resuming its unfinished run (an "
    "unfinished dataset version is deleted).",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Read everything again and rebuild the source-object cache (sources that read "
    "incrementally; others read everything anyway).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary; errors only.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    help="Upload workers (default: [engine] concurrency, 4).",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    help="Processes reading a partitioned source's partitions at once; 1 reads them in "
    "this process (default: [engine] processes, else the number of cores).",
)
@click.option(
    "--max-quarantined",
    type=_QuarantineLimit(),
    help="Fail before publishing when more records are quarantined: a count, a "
    'fraction of records read such as 0.01, or "unlimited" (default: the '
    "source's max_quarantined, 0.01).",
)
@click.pass_obj
def run(
    state: CliState,
    sources: tuple[str, ...],
    run_all: bool,
    restart: bool,
    full_refresh: bool,
    quiet: bool,
    concurrency: int | None,
    processes: int | None,
    max_quarantined: float | str | None,
) -> None:
    """Run SOURCES, each ending with its summary.

    With the datasets or embedded sink each run becomes a new live dataset version; with
    the ingestion sink (no versions) each run sends its records in batches to /import and
    /engage. The next run of a source resumes its failed or stopped run whose extraction
    had finished, sending only what was not acknowledged.

    A source whose connector reads incrementally reads only what changed since its last
    successful run (the summary says "incremental run" or "full run (REASON)");
    --full-refresh reads everything. A run its connector pauses (an API quota) ends as
    "paused: REASON" with exit status 0; the next run goes on from there.
    """
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
            failures += _run_one(
                state,
                name,
                stop,
                restart=restart,
                full_refresh=full_refresh,
                quiet=quiet,
                concurrency=concurrency,
                max_quarantined=max_quarantined,
                processes=processes,
            )
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
        click.echo(
            f"mpconnect: {signal.Signals(signum).name}: stopping at the next checkpoint "
            "(again to stop at once)",
            err=True,
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run_one(
    state: CliState,
    name: str,
    stop: threading.Event,
    *,
    restart: bool,
    quiet: bool,
    concurrency: int | None,
    max_quarantined: float | str | None,
    processes: int | None = None,
    full_refresh: bool = False,
) -> int:
    """Run one source and print its summary; return 1 if it failed, else 0."""
    from mpconnect.engine.lifecycle import RunOptions
    from mpconnect.engine.progress import default_progress

    quiet = quiet or state.quiet
    options = RunOptions(
        restart=restart,
        full_refresh=full_refresh,
        concurrency=concurrency,
        max_quarantined=max_quarantined,
        processes=processes,
        progress=default_progress(quiet),
        stop=stop,
    )
    try:
        summary = state.engine.run(name, options)
    except RunLocked as exc:
        echo_error(exc)
        return 1
    except RunFailed as exc:
        failed = getattr(exc, "summary", None)
        if state.log_format == "json" and failed is not None:
            click.echo(redact(json.dumps(failed.to_dict())))
        elif not quiet and failed is not None:
            click.echo(redact(failed.describe()), err=True)
        elif not quiet:
            last = state.engine.ledger.list_runs(name, limit=1)
            if last:
                click.echo(
                    _describe_row(last[0], sink_is_versioned(state.plugins, last[0]["sink"])),
                    err=True,
                )
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


def _describe_row(row: dict, versioned: bool) -> str:
    return (
        f"{row['source']}: {row['status']}; read {row['read']:,}, imported "
        f"{row['imported']:,}, quarantined {row['quarantined']:,}; "
        f"{loaded(versioned, row['version_id'], row['batches'])}"
    )


@click.command()
@click.option("--source", help="Only this source's runs.")
@click.option("--limit", default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def runs(state: CliState, source: str | None, limit: int, as_json: bool) -> None:
    """List past runs, newest first: status, version (or run and batches with the
    ingestion sink), counts, duration, error."""
    rows = state.ledger.list_runs(source, limit=limit)
    for row in rows:
        if row["status"] == "running" and not state.source_lock(row["source"]).is_held():
            row["status"] = "dead"  # killed or lost power: the next run resumes or restarts
    if as_json:
        echo_json(rows)
        return
    snapshot, batches = snapshot_columns([row_is_versioned(r) for r in rows])
    echo_table(
        [
            "STARTED",
            "SOURCE",
            "SINK",
            "STATUS",
            snapshot,
            *batches,
            "READ",
            "IMPORTED",
            "QUAR.",
            "RETRIES",
            "SECONDS",
            "ERROR",
        ],
        [
            [
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])),
                r["source"],
                r["sink"],
                r["status"],
                r["version_id"] or "-",
                *[r["batches"] for _ in batches],
                r["read"],
                r["imported"],
                r["quarantined"],
                r["retries"],
                r["duration"] if r["duration"] is not None else "-",
                (r["error"] or "")[:80],
            ]
            for r in rows
        ],
    )


@click.command()
@click.argument("source")
@click.pass_obj
def check(state: CliState, source: str) -> None:
    """Check SOURCE's settings and credentials with one cheap call to the source (retried
    at most once)."""
    from mpconnect.config import connector_settings, require_connector
    from mpconnect.connector import RunContext
    from mpconnect.transport.retry import short_retries

    config = state.config
    source_config = config.source(source)
    require_connector(config, source_config, state.plugins.connectors)
    entry = state.plugins.connector(source_config.connector)

    settings = connector_settings(config, source_config, entry.cls.Settings)
    connector = entry.cls(settings)
    ctx = RunContext(
        source=source,
        dataset_id=source_config.dataset_id,
        log=logging.getLogger(f"mpconnect.source.{source}"),
    )
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
