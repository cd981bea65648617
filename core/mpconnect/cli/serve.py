"""``mpconnect serve``: the local Datasets API server, in the foreground until Ctrl-C."""

from __future__ import annotations

import asyncio
import secrets
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mpconnect.errors import ConfigError, MpconnectError
from mpconnect.paths import home_dir


def register(cli: click.Group) -> None:
    """Add ``serve``."""
    cli.add_command(serve)


def _dataset_secrets(values: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        dataset_id, sep, secret = value.partition("=")
        if not sep or not dataset_id or not secret:
            raise click.BadParameter("expected ID=SECRET", param_hint="--dataset-secret")
        parsed[dataset_id] = secret
    return parsed


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535),
              help="HTTPS port (0 picks a free one).")
@click.option("--http-port", type=click.IntRange(0, 65535),
              help="Also listen on plain HTTP here, answering every request with the "
                   "HTTPS-required error, as the real API rejects HTTP.")
@click.option("--dataset", "datasets", multiple=True, metavar="ID",
              help="A dataset that exists (repeatable; default DEMO when the store has none).")
@click.option("--project-token", default="local-project-token", show_default=True,
              envvar="MPCONNECT_SERVE_PROJECT_TOKEN",
              help="The project token requests and records must carry.")
@click.option("--project-secret", envvar="MPCONNECT_SERVE_PROJECT_SECRET",
              help="The project secret (also $MPCONNECT_SERVE_PROJECT_SECRET; "
                   "default: generated and printed).")
@click.option("--dataset-secret", "dataset_secret_values", multiple=True, metavar="ID=SECRET",
              help="A dataset's own secret (repeatable).")
@click.option("--live-delay", default=3.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds from readable to live.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The embedded store file to write (default $MPCONNECT_HOME/serve.sqlite3); "
                   "`mpconnect inspect DATASET --store PATH` reads it.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Certificate (PEM) to serve; default: one from a local CA made at start.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The certificate's private key (PEM).")
@click.option("--tls-dir", "ca_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the generated CA's ca.pem goes (default $MPCONNECT_HOME/serve-ca).")
@click.option("--fail-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction of requests answered with 500.")
@click.option("--rate-limit", default=0, type=click.IntRange(min=0),
              help="Requests per second before 429 with Retry-After (0: no limit).")
@click.option("--latency", "latency_ms", default=0.0, type=click.FloatRange(min=0),
              help="Milliseconds added to every answer.")
@click.option("--drop-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction of connections closed without a response.")
@click.option("--seed", default=0, show_default=True, help="Seed of fault injection.")
@click.option("--project-id", default="1", show_default=True,
              help="The project id of the ingestion API (/import, /engage); what they accept "
                   "goes to dataset PROJECT<id>.")
@click.option("--service-account", "service_account", envvar="MPCONNECT_SERVE_SERVICE_ACCOUNT",
              metavar="USER:SECRET",
              help="A service account /import accepts with --project-id "
                   "(also $MPCONNECT_SERVE_SERVICE_ACCOUNT).")
def serve(host: str, port: int, http_port: int | None, datasets: tuple[str, ...],
          project_token: str, project_secret: str | None, dataset_secret_values: tuple[str, ...],
          live_delay: float, store_path: Path | None, tls_cert: Path | None,
          tls_key: Path | None, ca_dir: Path | None, fail_rate: float, rate_limit: int,
          latency_ms: float, drop_rate: float, seed: int, project_id: str,
          service_account: str | None) -> None:
    """Serve the Datasets API locally over HTTPS, backed by an embedded store.

    Point a configuration at it with [mixpanel] sink = "datasets", api_url = the URL
    printed, ca_bundle = the CA file printed, project_token and secret.
    """
    try:
        from mpconnect.datasets import server as ds
        from mpconnect.datasets.store import DatasetStore
        from mpconnect.localserver import LocalCA, server_context_from_files
    except ModuleNotFoundError as exc:
        raise MpconnectError(f"mpconnect serve needs the server extra ({exc.name} is missing): "
                             'pip install "mpconnect[server]"') from None
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    for dataset_id in datasets:
        try:
            ds.check_dataset_id(dataset_id, "--dataset")
        except ds.Refused as exc:
            raise ConfigError(exc.message) from None
    home = home_dir()
    store = DatasetStore(store_path or home / "serve.sqlite3", live_delay=live_delay)
    if not datasets and not store.list_datasets():
        datasets = ("DEMO",)
    for dataset_id in datasets:
        store.ensure_dataset(dataset_id)
    options = ds.ServerOptions(project_token, project_secret or secrets.token_hex(16),
                               _dataset_secrets(dataset_secret_values))
    faults = ds.Faults(fail_rate=fail_rate, rate_limit=rate_limit, latency_ms=latency_ms,
                       drop_rate=drop_rate)
    ingestion = _ingestion_project(project_id, service_account, options)
    app = ds.make_app(store, options, ds.FaultInjector(faults, seed), ingestion=ingestion)
    if tls_cert is not None and tls_key is not None:
        context = server_context_from_files(tls_cert, tls_key)
        trust = f"certificate: {tls_cert}"
    else:
        ca = LocalCA(ca_dir or home / "serve-ca")
        context = ca.server_context()
        trust = f"CA: {ca.ca_path}"

    def banner(url: str, http_url: str | None) -> None:
        click.echo(f"serving the Datasets API on {url} ({trust})")
        if http_url:
            click.echo(f"plain HTTP on {http_url} answers every request with the "
                       "HTTPS-required error")
        click.echo(f"datasets: {', '.join(store.list_datasets())}")
        click.echo(f"project token: {options.project_token}")
        if project_secret is None:
            click.echo(f"project secret (generated for this server): {options.project_secret}")
        if options.dataset_secrets:
            click.echo(f"dataset secrets for: {', '.join(sorted(options.dataset_secrets))}")
        accounts = ", ".join(ingestion.service_accounts) or "none"
        click.echo(f"ingestion API: {url}/import and /engage for project {project_id} "
                   f"(service accounts: {accounts}); stored as dataset {ingestion.dataset_id}")
        click.echo(f"store: {store.path} (live delay {live_delay:g} s); inspect with: "
                   f"mpconnect inspect DATASET --store {store.path}")
        click.echo("press Ctrl-C to stop", err=True)
        sys.stdout.flush()  # a pipe reader (a test, a supervisor) sees the banner at once

    try:
        asyncio.run(_serve_forever(app, ds.make_https_required_app, host, port, http_port,
                                   context, banner))
    finally:
        store.close()
    click.echo("stopped", err=True)


def _ingestion_project(project_id: str, service_account: str | None,
                       options: Any) -> Any:
    """The project ``/import`` and ``/engage`` stand in for."""
    from mpconnect.datasets.ingestion_api import IngestionProject

    if not project_id.isdigit():
        raise click.BadParameter("must be a numeric project id", param_hint="--project-id")
    accounts: dict[str, str] = {}
    if service_account:
        user, sep, secret = service_account.partition(":")
        if not sep or not user or not secret:
            raise click.BadParameter("expected USER:SECRET", param_hint="--service-account")
        accounts[user] = secret
    return IngestionProject(project_id, token=options.project_token, service_accounts=accounts,
                            api_secret=options.project_secret)


async def _serve_forever(
    app: Any,
    http_app_factory: Callable[[str], Any],
    host: str,
    port: int,
    http_port: int | None,
    context: ssl.SSLContext,
    banner: Callable[[str, str | None], None],
) -> None:
    """Serve until SIGINT or SIGTERM; ``banner(https_url, http_url)`` once bound."""
    from aiohttp import web

    runners = []
    try:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, host, port, ssl_context=context, backlog=512)
        await site.start()
        shown_host = f"[{host}]" if ":" in host else host
        url = f"https://{shown_host}:{_bound_port(site) or port}"
        http_url = None
        if http_port is not None:
            http_runner = web.AppRunner(http_app_factory(url), access_log=None,
                                        handle_signals=False)
            await http_runner.setup()
            runners.append(http_runner)
            http_site = web.TCPSite(http_runner, host, http_port)
            await http_site.start()
            http_url = f"http://{shown_host}:{_bound_port(http_site) or http_port}"
        banner(url, http_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        for each in reversed(runners):
            await each.cleanup()


def _bound_port(site: Any) -> int | None:
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    return sockets[0].getsockname()[1] if sockets else None
