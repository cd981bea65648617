"""``mpconnect versions list`` and ``mpconnect inspect``."""

from __future__ import annotations

import re
from pathlib import Path

import click

from mpconnect.cli.context import CliState, echo_json, echo_table
from mpconnect.errors import MpconnectError
from mpconnect.paths import home_dir

#: The Datasets API's rule for a dataset id (as ``sources.NAME.dataset_id`` is checked).
_DATASET_ID = re.compile(r"[A-Za-z0-9]{1,255}")


def register(cli: click.Group) -> None:
    """Add ``versions`` and ``inspect``."""
    cli.add_command(versions)
    cli.add_command(inspect)


@click.group()
def versions() -> None:
    """Dataset versions in the configured sink."""


@versions.command("list")
@click.argument("dataset_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the API's objects).")
@click.pass_obj
def versions_list(state: CliState, dataset_id: str, as_json: bool) -> None:
    """List DATASET_ID's versions with their state, newest first."""
    check_dataset_id(dataset_id)
    sink = state.engine.make_sink()
    try:
        found = sink.list_versions(dataset_id)
    finally:
        sink.close()
    if as_json:
        echo_json([v.to_api() for v in found])
        return
    if not found:
        click.echo(
            f"dataset {dataset_id} has no versions in the {sink.name} sink"
            + (
                ""
                if sink.versioned
                else " (it loads without versions; its runs and batches: mpconnect runs)"
            )
        )
        return
    echo_table(
        ["VERSION", "CREATED", "LIVE", "READABLE", "WRITABLE", "READY", "READY AT"],
        [
            [
                v.version_id,
                v.created_at,
                _yes(v.is_live),
                _yes(v.readable),
                _yes(v.writable),
                _yes(v.ready),
                v.ready_at if v.ready else "-",
            ]
            for v in found
        ],
    )


def check_dataset_id(dataset_id: str) -> None:
    """Refuse a dataset id no dataset can have, rather than report it has no versions.

    :raises click.BadParameter: naming the rule.
    """
    if not _DATASET_ID.fullmatch(dataset_id):
        raise click.BadParameter(
            f"{dataset_id!r} is not a dataset id: it must be 1 to 255 letters and digits "
            "(the Datasets API's rule), such as STRIPE",
            param_hint="DATASET_ID",
        )


def _yes(value: bool) -> str:
    return "yes" if value else "no"


@click.command()
@click.argument("dataset_id")
@click.option(
    "--version", "version_id", help="A version id (default: the live one, else the newest)."
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, exists=True),
    help="An embedded store file (default: the configured one), such as the file "
    "`mpconnect serve --store` writes.",
)
@click.option(
    "--samples",
    default=3,
    show_default=True,
    type=click.IntRange(min=0),
    help="Sample records to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def inspect(
    state: CliState,
    dataset_id: str,
    version_id: str | None,
    store_path: str | None,
    samples: int,
    as_json: bool,
) -> None:
    """Show what a version of DATASET_ID in the embedded store holds."""
    from mpconnect.sinks.embedded import embedded_store_path
    from mpconnect.store.datasets import DatasetStore, StoreError

    check_dataset_id(dataset_id)
    sink = state.config.mixpanel.sink
    if store_path is None and sink != "embedded":
        click.echo(
            f"mpconnect: note: the configured sink is {sink!r}; this shows the local "
            "embedded store (give --store PATH for the file `mpconnect serve --store` "
            "writes; `mpconnect versions list` asks the sink)",
            err=True,
        )
    path = (
        Path(store_path) if store_path else embedded_store_path(state.config.mixpanel, home_dir())
    )
    if not path.exists():
        raise MpconnectError(
            f"no embedded store at {path}; run a source first (mpconnect run demo)"
        )
    store = DatasetStore(path)
    try:
        if not store.has_dataset(dataset_id):
            known = ", ".join(store.list_datasets()) or "none"
            raise MpconnectError(f"dataset {dataset_id} is not in {path}; datasets: {known}")
        all_versions = store.list_versions(dataset_id)
        if version_id is None:
            chosen = next((v for v in all_versions if v.is_live), None) or (
                all_versions[0] if all_versions else None
            )
            if chosen is None:
                raise MpconnectError(f"dataset {dataset_id} has no versions")
        else:
            chosen = store.get_version(dataset_id, version_id)
            if chosen is None:
                raise MpconnectError(f"dataset {dataset_id} has no version {version_id}")
        contents = store.contents(dataset_id, chosen.version_id)
        report = {
            "dataset_id": dataset_id,
            "version_id": chosen.version_id,
            "is_live": chosen.is_live,
            "state": chosen.to_api()["state"],
            "events_total": contents.events_total,
            "events_by_name": contents.events_by_name,
            "events_received": contents.events_received,
            "people_total": contents.people_total,
            "profiles": contents.profiles,
            "people_received": contents.people_received,
            "sample_events": store.sample_events(dataset_id, chosen.version_id, samples),
            "sample_people": store.sample_people(dataset_id, chosen.version_id, samples),
        }
    except StoreError as exc:
        raise MpconnectError(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        echo_json(report)
        return
    live = "live" if chosen.is_live else "not live"
    click.echo(f"dataset {dataset_id} version {chosen.version_id} ({live}) in {path}")
    click.echo(f"events: {contents.events_total:,}")
    for name, count in contents.events_by_name.items():
        click.echo(f"  {name}: {count:,}")
    click.echo(f"people records: {contents.people_total:,} ({contents.profiles:,} profiles)")
    for label, records in (
        ("sample events", report["sample_events"]),
        ("sample people", report["sample_people"]),
    ):
        if records:
            click.echo(f"{label}:")
            for record in records:
                click.echo(f"  {_short(record)}")


def _short(record: dict) -> str:
    import json

    text = json.dumps(record, default=str)
    return text if len(text) <= 160 else text[:157] + "..."
