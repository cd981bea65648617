"""``mpconnect schedule --print-crontab``: the same schedules as crontab lines."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from mpconnect.paths import HOME_ENV
from mpconnect.scheduler.plan import Plan


def mpconnect_command() -> str:
    """The absolute command that runs mpconnect (cron's PATH is short)."""
    beside = Path(sys.executable).parent / "mpconnect"
    if beside.is_file():
        return str(beside)
    found = shutil.which("mpconnect")
    return found or "mpconnect"


def crontab_lines(plan: Plan, command: str | None = None) -> list[str]:
    """Return crontab lines running ``mpconnect run SOURCE`` at each source's schedule.

    Schedules with a seconds field cannot be written for cron; they come out as comments.
    """
    command = command or mpconnect_command()
    config = plan.config.path.resolve() if plan.config.path else None
    prefix = shlex.quote(command)
    if config is not None:
        prefix += f" --config {shlex.quote(str(config))}"
    lines = [
        f"# mpconnect sources from {config or 'the built-in configuration'}",
        "# install with: crontab -e (or put these lines in a file under /etc/cron.d/, adding",
        "# a user name before each command). Overlapping runs of a source are refused by",
        "# its lock. Export the ${NAME} variables the configuration uses, or name a",
        "# secrets_file in it: cron starts commands with an almost empty environment.",
        "# CRON_TZ is honoured by cronie; other cron daemons use the system time zone.",
        f"CRON_TZ={plan.zone.key}",
    ]
    home = os.environ.get(HOME_ENV)
    if home:
        lines.append(f"{HOME_ENV}={Path(home).expanduser().resolve()}")
    for name, cron in plan.crons.items():
        run = f"{prefix} run --quiet {shlex.quote(name)}".replace("%", "\\%")
        if cron.has_seconds:
            lines.append(
                f"# {name}: {cron.expression!r} has a seconds field, which cron "
                "cannot express; run it with `mpconnect schedule` instead"
            )
        else:
            lines.append(f"{cron.expression} {run}")
    return lines
