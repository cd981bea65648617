"""``mpconnect connectors list`` and ``mpconnect sources list``."""

from __future__ import annotations

import click

from mpconnect.cli.context import CliState, echo_json, echo_table


def register(cli: click.Group) -> None:
    """Add the ``connectors`` and ``sources`` groups."""
    cli.add_command(connectors)
    cli.add_command(sources)


@click.group()
def connectors() -> None:
    """Installed source connectors."""


@connectors.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def connectors_list(state: CliState, as_json: bool) -> None:
    """List connectors: name, provider, available or not and why."""
    rows = []
    for name, entry in sorted(state.plugins.connectors.items()):
        rows.append({
            "name": name,
            "description": entry.cls.description,
            "plugin": entry.provider.plugin,
            "distribution": entry.provider.distribution,
            "version": entry.provider.version,
            "available": entry.available,
            "reason": entry.unavailable_reason,
        })
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["NAME", "PROVIDED BY", "STATUS", "DESCRIPTION"],
        [[r["name"],
          f"{r['distribution']} {r['version']}" if r["distribution"] else r["plugin"],
          "available" if r["available"] else f"unavailable: {r['reason']}",
          r["description"]] for r in rows],
    )


@click.group()
def sources() -> None:
    """Configured sources."""


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def sources_list(state: CliState, as_json: bool) -> None:
    """List configured sources (and the built-in demo) with their last run."""
    config = state.config
    ledger = state.engine.ledger
    rows = []
    for name, source in sorted(config.sources.items()):
        last = ledger.list_runs(name, limit=1)
        rows.append({
            "name": name,
            "connector": source.connector,
            "dataset_id": source.dataset_id,
            "schedule": source.schedule,
            "keep_versions": source.keep_versions,
            "last_status": last[0]["status"] if last else None,
            "last_version": last[0]["version_id"] if last else None,
        })
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["NAME", "CONNECTOR", "DATASET", "SCHEDULE", "KEEP", "LAST RUN"],
        [[r["name"], r["connector"], r["dataset_id"], r["schedule"] or "-", r["keep_versions"],
          r["last_status"] or "never"] for r in rows],
    )
