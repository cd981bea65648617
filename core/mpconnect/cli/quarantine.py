"""``mpconnect quarantine SOURCE``: why a run's records were quarantined, with samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mpconnect.cli.context import CliState, echo_json
from mpconnect.errors import MpconnectError
from mpconnect.redact import SECRET_NAME, redact

#: What a value under a key that names a secret (``api_key``, ``password``) is shown as.
HIDDEN = "***"
#: Runs searched for the latest one with a quarantine file.
_RUNS_SEARCHED = 1000


def register(cli: click.Group) -> None:
    """Add ``quarantine``."""
    cli.add_command(quarantine)


@click.command()
@click.argument("source")
@click.option(
    "--run",
    "run_id",
    help="A run id (default: the source's latest run with "
    "quarantined records); `mpconnect runs --source SOURCE` lists them.",
)
@click.option(
    "--samples",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="Sample records to show per reason.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def quarantine(
    state: CliState, source: str, run_id: str | None, samples: int, as_json: bool
) -> None:
    """Show why SOURCE's records were quarantined: reasons with counts and samples.

    Values that look like secrets are shown as ***.
    """
    _remember_source_secrets(state, source)
    row = _find_run(state, source, run_id)
    path = Path(row["quarantine_file"]) if row.get("quarantine_file") else None
    entries = read_entries(path) if path is not None and path.exists() else []
    report = summarize(source, row["run_id"], path, entries, samples)
    if as_json:
        echo_json(report)
        return
    click.echo(
        f"{source}: run {row['run_id']}: {report['total']:,} records quarantined"
        + (f" ({path})" if path is not None and entries else "")
    )
    for reason in report["reasons"]:
        fields = ", ".join(reason["fields"])
        click.echo(
            f"{reason['count']:>8,}  {reason['reason']}" + (f" [field {fields}]" if fields else "")
        )
        for sample in reason["samples"]:
            click.echo(f"          {_short(sample)}")


def _find_run(state: CliState, source: str, run_id: str | None) -> dict[str, Any]:
    rows = state.ledger.list_runs(source, limit=_RUNS_SEARCHED)
    if not rows:
        raise MpconnectError(
            f"source {source!r} has no runs; `mpconnect runs` lists the runs of every source"
        )
    if run_id is not None:
        for row in rows:
            if row["run_id"] == run_id:
                return row
        raise MpconnectError(
            f"source {source!r} has no run {run_id!r}; "
            f"`mpconnect runs --source {source}` lists its runs"
        )
    return next((row for row in rows if row["quarantined"]), rows[0])


def _remember_source_secrets(state: CliState, source: str) -> None:
    """Load the source's settings so its configured secrets are redacted (best effort)."""
    try:
        from mpconnect.config import connector_settings

        config = state.config
        entry = state.plugins.connector(config.source(source).connector)
        connector_settings(config, config.source(source), entry.cls.Settings)
    except MpconnectError:
        pass  # a source no longer configured still has its quarantine files


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of a quarantine file; a line that is not JSON is an entry saying so."""
    entries: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                entry = {
                    "reason": f"line {number} of the quarantine file is not a JSON object",
                    "what": None,
                    "field": None,
                    "record": None,
                }
            entries.append(entry)
    return entries


def summarize(
    source: str, run_id: str, path: Path | None, entries: list[dict[str, Any]], samples: int
) -> dict[str, Any]:
    """Group entries by reason, most frequent first, with redacted sample records."""
    groups: dict[str, dict[str, Any]] = {}
    for entry in entries:
        reason = redact(str(entry.get("reason") or "no reason given"))
        group = groups.setdefault(
            reason, {"reason": reason, "count": 0, "fields": [], "samples": []}
        )
        group["count"] += 1
        field = entry.get("field")
        if field and str(field) not in group["fields"]:
            group["fields"].append(str(field))
        if len(group["samples"]) < samples:
            group["samples"].append(
                {
                    "what": entry.get("what"),
                    "field": field,
                    "record": redact_value(entry.get("record")),
                }
            )
    reasons = sorted(groups.values(), key=lambda g: -g["count"])
    return {
        "source": source,
        "run_id": run_id,
        "file": str(path) if path else None,
        "total": len(entries),
        "reasons": reasons,
    }


def redact_value(value: Any, key: str = "") -> Any:
    """``value`` with secrets hidden: values under keys naming a secret, and known shapes
    and configured secrets in every string."""
    if isinstance(value, str) and key and SECRET_NAME.search(key):
        return HIDDEN
    if isinstance(value, dict):
        return {redact(str(k)): redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, key) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def _short(sample: dict[str, Any]) -> str:
    text = json.dumps(sample, default=str, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + "..."
