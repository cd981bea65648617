"""``mpconnect connectors list`` and ``mpconnect sources list``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click

from mpconnect.cli.context import CliState, echo_error, echo_json, echo_table
from mpconnect.errors import ConfigError, MpconnectError


def register(cli: click.Group) -> None:
    """Add the ``connectors`` and ``sources`` groups."""
    cli.add_command(connectors)
    cli.add_command(sources)


@click.group(invoke_without_command=True)
@click.pass_context
def connectors(ctx: click.Context) -> None:
    """Installed source connectors (bare `mpconnect connectors` lists them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(connectors_list)


@connectors.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def connectors_list(state: CliState, as_json: bool = False) -> None:
    """List connectors: name, provider, available or not and why, and whether it can read
    incrementally (only what changed since the last run)."""
    rows = []
    for name, entry in sorted(state.plugins.connectors.items()):
        rows.append(
            {
                "name": name,
                "description": entry.description,
                "plugin": entry.provider.plugin,
                "distribution": entry.provider.distribution,
                "version": entry.provider.version,
                "available": entry.available,
                "reason": entry.unavailable_reason,
                "incremental": entry.incremental,
            }
        )
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["NAME", "PROVIDED BY", "STATUS", "SYNC", "DESCRIPTION"],
        [
            [
                r["name"],
                f"{r['distribution']} {r['version']}" if r["distribution"] else r["plugin"],
                "available" if r["available"] else f"unavailable: {r['reason']}",
                "incremental" if r["incremental"] else "full",
                r["description"],
            ]
            for r in rows
        ],
    )


@click.group(invoke_without_command=True)
@click.pass_context
def sources(ctx: click.Context) -> None:
    """Configured sources (bare `mpconnect sources` lists them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(sources_list)


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def sources_list(state: CliState, as_json: bool = False) -> None:
    """List configured sources (and the built-in demo): schedule, next run, last run.

    Problems `mpconnect check` would refuse (an unknown connector, a secret in clear, an
    unset variable, a bad schedule) are shown too, and make the exit status 1.
    """
    from mpconnect.cli.source_problems import source_problems

    config = state.config
    ledger = state.ledger
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for name, source in sorted(config.sources.items()):
        last = ledger.list_runs(name, limit=1)
        next_run, next_text, problem = _next_run(
            source.schedule, config.scheduler.timezone, name, now
        )
        problems = source_problems(config, state.plugins, name)
        if problem is not None:
            problems.append(problem)
        rows.append(
            {
                "name": name,
                "connector": source.connector,
                "dataset_id": source.dataset_id,
                "schedule": source.schedule,
                "timezone": config.scheduler.timezone if source.schedule else None,
                "next_run": next_run.isoformat() if next_run else None,
                "next_run_error": problem,
                "keep_versions": source.keep_versions,
                "last_status": last[0]["status"] if last else None,
                "last_started_at": last[0]["started_at"] if last else None,
                "last_version": last[0]["version_id"] if last else None,
                "last_error": last[0]["error"] if last else None,
                "problems": problems,
            }
        )
        rows[-1]["_next_text"] = next_text
    if as_json:
        echo_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    else:
        echo_table(
            ["NAME", "CONNECTOR", "DATASET", "SCHEDULE", "NEXT RUN", "LAST RUN", "STATUS", "KEEP"],
            [
                [
                    r["name"],
                    r["connector"],
                    r["dataset_id"],
                    r["schedule"] or "-",
                    r["_next_text"],
                    _when(r["last_started_at"]),
                    r["last_status"] or "never",
                    r["keep_versions"],
                ]
                for r in rows
            ],
        )
        for row in rows:
            for text in row["problems"]:
                echo_error(text)
    if any(row["problems"] for row in rows):
        raise click.exceptions.Exit(1)


def _next_run(
    schedule: str | None, timezone: str, name: str, now: datetime
) -> tuple[datetime | None, str, str | None]:
    """The next scheduled time of a source, how to show it, and what prevents it."""
    if schedule is None:
        return None, "-", None
    try:
        from mpconnect.scheduler import CronSchedule, format_time, load_zone

        zone = load_zone(timezone)
        moment = CronSchedule(schedule, zone, f"sources.{name}.schedule").next_after(now)
    except ConfigError as exc:
        return None, "invalid schedule", str(exc)
    except MpconnectError as exc:
        return None, "needs mpconnect[schedule]", str(exc)
    return moment, format_time(moment, zone), None


def _when(started_at: float | None) -> str:
    if started_at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_at))
