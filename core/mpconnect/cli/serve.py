"""``mpconnect serve mixpanel`` (and ``mpconnect serve``): the local Datasets API server,
in the foreground until Ctrl-C. The ``serve`` group is :mod:`mpconnect.cli.serve_group`."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mpconnect.errors import ConfigError, MpconnectError
from mpconnect.paths import home_dir

if TYPE_CHECKING:  # the server extra may be missing; serve() says so
    from mpconnect.emulator.ingestion_api import IngestionProject
    from mpconnect.emulator.options import ServerOptions


def register(cli: click.Group) -> None:
    """Add the ``serve`` group (``mixpanel`` and the servers plugins register)."""
    from mpconnect.cli.serve_group import serve

    cli.add_command(serve)


def _dataset_secrets(values: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        dataset_id, sep, secret = value.partition("=")
        if not sep or not dataset_id or not secret:
            raise click.BadParameter("expected ID=SECRET", param_hint="--dataset-secret")
        parsed[dataset_id] = secret
    return parsed


@click.command(name="mixpanel")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8443,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="HTTPS port (0 picks a free one).",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    help="Also listen on plain HTTP here, answering every request with the "
    "HTTPS-required error, as the real API rejects HTTP.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="ID",
    help="A dataset that exists (repeatable; default DEMO when the store has none).",
)
@click.option(
    "--project-token",
    default="local-project-token",
    show_default=True,
    envvar="MPCONNECT_SERVE_PROJECT_TOKEN",
    help="The project token requests and records must carry.",
)
@click.option(
    "--project-secret",
    envvar="MPCONNECT_SERVE_PROJECT_SECRET",
    help="The project secret (also $MPCONNECT_SERVE_PROJECT_SECRET; "
    "default: generated and printed).",
)
@click.option(
    "--dataset-secret",
    "dataset_secret_values",
    multiple=True,
    metavar="ID=SECRET",
    help="A dataset's own secret (repeatable).",
)
@click.option(
    "--live-delay",
    default=3.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds from readable to live.",
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The embedded store file to write (default $MPCONNECT_HOME/serve.sqlite3); "
    "`mpconnect inspect DATASET --store PATH` reads it.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Certificate (PEM) to serve; default: one from a local CA made at start.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The certificate's private key (PEM).",
)
@click.option(
    "--tls-dir",
    "ca_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the generated CA's ca.pem goes (default $MPCONNECT_HOME/serve-ca).",
)
@click.option(
    "--fail-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Fraction of requests answered with 500.",
)
@click.option(
    "--rate-limit",
    default=0,
    type=click.IntRange(min=0),
    help="Requests per second before 429 with Retry-After (0: no limit).",
)
@click.option(
    "--latency",
    "latency_ms",
    default=0.0,
    type=click.FloatRange(min=0),
    help="Milliseconds added to every answer.",
)
@click.option(
    "--drop-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Fraction of connections closed without a response.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of fault injection.")
@click.option(
    "--project-id",
    default="1",
    show_default=True,
    help="The project id of the ingestion API (/import, /engage); what they accept "
    "goes to dataset PROJECT<id>.",
)
@click.option(
    "--service-account",
    "service_account",
    envvar="MPCONNECT_SERVE_SERVICE_ACCOUNT",
    metavar="USER:SECRET",
    help="A service account /import accepts with --project-id "
    "(also $MPCONNECT_SERVE_SERVICE_ACCOUNT).",
)
@click.option(
    "--limit-events",
    default=0,
    type=click.IntRange(min=0),
    help="The project's import budget: records per rolling window before 429 with "
    "Retry-After (0: none; Mixpanel's is about 1,800,000 a minute).",
)
@click.option(
    "--limit-bytes",
    default=0,
    type=click.IntRange(min=0),
    help="The project's import budget in bytes of JSON per rolling window "
    "(0: none; Mixpanel's is 2,000,000,000 a minute).",
)
@click.option(
    "--limit-window",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds of the rolling window of --limit-events and --limit-bytes.",
)
def mixpanel(
    host: str,
    port: int,
    http_port: int | None,
    datasets: tuple[str, ...],
    project_token: str,
    project_secret: str | None,
    dataset_secret_values: tuple[str, ...],
    live_delay: float,
    store_path: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    ca_dir: Path | None,
    fail_rate: float,
    rate_limit: int,
    latency_ms: float,
    drop_rate: float,
    seed: int,
    project_id: str,
    service_account: str | None,
    limit_events: int,
    limit_bytes: int,
    limit_window: float,
) -> None:
    """Serve the Datasets API locally over HTTPS, backed by an embedded store.

    Point a configuration at it with [mixpanel] sink = "datasets", api_url = the URL
    printed, ca_bundle = the CA file printed, project_token and secret.
    """
    try:
        from mpconnect.emulator.app import make_app, make_https_required_app
        from mpconnect.emulator.background import LocalCA, server_context_from_files
        from mpconnect.emulator.checks import check_dataset_id
        from mpconnect.emulator.faults import FaultInjector, Faults
        from mpconnect.emulator.foreground import serve_forever
        from mpconnect.emulator.options import ServerOptions
        from mpconnect.emulator.project_limit import ProjectLimit
        from mpconnect.emulator.responses import Refused
        from mpconnect.store.datasets import DatasetStore
    except ModuleNotFoundError as exc:
        raise MpconnectError(
            f"mpconnect serve needs the server extra ({exc.name} is missing): "
            'pip install "mpconnect[server]"'
        ) from None
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    for dataset_id in datasets:
        try:
            check_dataset_id(dataset_id, "--dataset")
        except Refused as exc:
            raise ConfigError(exc.message) from None
    home = home_dir()
    store = DatasetStore(store_path or home / "serve.sqlite3", live_delay=live_delay)
    if not datasets and not store.list_datasets():
        datasets = ("DEMO",)
    for dataset_id in datasets:
        store.ensure_dataset(dataset_id)
    options = ServerOptions(
        project_token,
        project_secret or secrets.token_hex(16),
        _dataset_secrets(dataset_secret_values),
    )
    faults = Faults(
        fail_rate=fail_rate, rate_limit=rate_limit, latency_ms=latency_ms, drop_rate=drop_rate
    )
    ingestion = _ingestion_project(project_id, service_account, options)
    app = make_app(
        store,
        options,
        FaultInjector(faults, seed),
        ingestion=ingestion,
        project_limit=ProjectLimit(limit_events, limit_bytes, limit_window),
    )
    if tls_cert is not None and tls_key is not None:
        context = server_context_from_files(tls_cert, tls_key)
        trust = f"certificate: {tls_cert}"
        ca_path: Path | None = None
    else:
        ca = LocalCA(ca_dir or home / "serve-ca")
        context = ca.server_context()
        trust = f"CA: {ca.ca_path}"
        ca_path = ca.ca_path.resolve()

    def banner(url: str, http_url: str | None) -> None:
        click.echo(f"serving the Datasets API on {url} ({trust})")
        if http_url:
            click.echo(
                f"plain HTTP on {http_url} answers every request with the HTTPS-required error"
            )
        click.echo(f"datasets: {', '.join(store.list_datasets())}")
        click.echo(f"project token: {options.project_token}")
        if project_secret is None:
            click.echo(f"project secret (generated for this server): {options.project_secret}")
        if options.dataset_secrets:
            click.echo(f"dataset secrets for: {', '.join(sorted(options.dataset_secrets))}")
        accounts = ", ".join(ingestion.service_accounts) or "none"
        click.echo(
            f"ingestion API: {url}/import and /engage for project {project_id} "
            f"(service accounts: {accounts}); stored as dataset {ingestion.dataset_id}"
        )
        click.echo(
            f"store: {store.path} (live delay {live_delay:g} s); inspect with: "
            f"mpconnect inspect DATASET --store {store.path}"
        )
        click.echo(
            _paste_text(
                url,
                options.project_token,
                ca_path,
                options.project_secret if project_secret is None else None,
            )
        )
        click.echo("\npress Ctrl-C to stop")  # serve_group.READY_LINE, the banner's last line
        sys.stdout.flush()  # a pipe reader (a test, a supervisor) sees the banner at once

    try:
        asyncio.run(
            serve_forever(app, make_https_required_app, host, port, http_port, context, banner)
        )
    finally:
        store.close()
    click.echo("stopped", err=True)


def _paste_text(
    url: str, project_token: str, ca_path: Path | None, generated_secret: str | None
) -> str:
    """The ``[mixpanel]`` table that points the ``datasets`` sink here, and the secret."""
    from mpconnect.cli.serve_group import toml_value

    table = {
        "sink": "datasets",
        "api_url": url,
        "project_token": project_token,
        "secret": "${MIXPANEL_SECRET}",
    }
    if ca_path is not None:
        table["ca_bundle"] = str(ca_path)
    lines = ["", "paste into mpconnect.toml:", "", "[mixpanel]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    lines += ["", "and set its secret in your shell:", ""]
    lines.append(
        f"export MIXPANEL_SECRET={generated_secret}"
        if generated_secret
        else "export MIXPANEL_SECRET=...   # the project secret this server was given"
    )
    return "\n".join(lines)


def _ingestion_project(
    project_id: str, service_account: str | None, options: ServerOptions
) -> IngestionProject:
    """The project ``/import`` and ``/engage`` stand in for."""
    from mpconnect.emulator.ingestion_api import IngestionProject

    if not project_id.isdigit():
        raise click.BadParameter("must be a numeric project id", param_hint="--project-id")
    accounts: dict[str, str] = {}
    if service_account:
        user, sep, secret = service_account.partition(":")
        if not sep or not user or not secret:
            raise click.BadParameter("expected USER:SECRET", param_hint="--service-account")
        accounts[user] = secret
    return IngestionProject(
        project_id,
        token=options.project_token,
        service_accounts=accounts,
        api_secret=options.project_secret,
    )
