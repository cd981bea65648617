"""The kit's check of an incremental connector: its incremental runs load exactly what
its full runs load at the same moment."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpconnect.connector import Connector

if TYPE_CHECKING:
    from mpconnect.testing import LoadedVersion


def _snapshot(loaded: LoadedVersion) -> tuple[list[bytes], list[bytes]]:
    import orjson

    def key(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)

    return sorted(map(key, loaded.events)), sorted(map(key, loaded.people))


def assert_incremental_matches_full(
    connector: str | type[Connector],
    settings: Mapping[str, Any] | None = None,
    *,
    home: Path,
    runs: int = 3,
    change: Callable[[int], None] | None = None,
    plugins: Iterable[object] = (),
) -> list[LoadedVersion]:
    """Run a connector ``runs`` times into the embedded store and, before each run after
    the first, a full run (``--full-refresh``) of the same source at the same moment from
    a copy of ``home``; assert both live versions hold exactly the same records.

    :param home: a directory for the runs (the incremental runs use ``home/incremental``).
    :param change: called with the run's number (1, 2, ...) before it, to change the
        source between runs (add, update and delete objects on your local server).
    :returns: what each incremental run loaded.
    :raises AssertionError: naming the run and the first record that differs, or when a
        run after the first did not read incrementally.
    """
    from mpconnect.testing import run_source

    incremental_home = Path(home) / "incremental"
    loaded = [run_source(connector, settings, home=incremental_home, plugins=plugins)]
    for number in range(1, runs):
        if change is not None:
            change(number)
        full_home = Path(home) / f"full-{number}"
        shutil.copytree(incremental_home, full_home)
        full = run_source(connector, settings, home=full_home, plugins=plugins, full_refresh=True)
        result = run_source(connector, settings, home=incremental_home, plugins=plugins)
        if result.summary.sync != "incremental":
            raise AssertionError(
                f"run {number + 1} was a {result.summary.sync} run "
                f"({result.summary.sync_reason}); expected an incremental one"
            )
        ours, theirs = _snapshot(result), _snapshot(full)
        for kind, mine, wanted in (("event", ours[0], theirs[0]), ("people", ours[1], theirs[1])):
            if mine != wanted:
                extra = sorted(set(mine) - set(wanted))[:1]
                missing = sorted(set(wanted) - set(mine))[:1]
                raise AssertionError(
                    f"run {number + 1}: the incremental snapshot's {kind} records differ from "
                    f"a full run's ({len(mine)} against {len(wanted)}); only incremental: "
                    f"{extra!r}; only full: {missing!r}"
                )
        loaded.append(result)
    return loaded
