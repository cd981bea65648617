"""The end of a versioned run: publish the version, wait until it is live (or find it
superseded by a newer live version another run published), and prune older versions.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING

from mpconnect.engine.phases import phase
from mpconnect.errors import ApiError, MpconnectError, RunFailed
from mpconnect.plugins import notify
from mpconnect.sink import VersionInfo

if TYPE_CHECKING:
    from mpconnect.engine.lifecycle import Run

log = logging.getLogger("mpconnect.engine")


def publish(run: Run) -> None:
    """Publish the run's version and tell the ``version_published`` hook."""
    summary = run.summary
    run.progress.stage(f"publishing version {summary.version_id}")
    with phase(run.ledger, summary.run_id, "publish"):
        run.api(lambda: run.sink.publish(run.source.dataset_id, summary.version_id or ""))
    run.ledger.mark_published(summary.run_id)
    notify(
        run.plugins,
        "version_published",
        log,
        source=summary.source,
        dataset_id=summary.dataset_id,
        version_id=summary.version_id,
        summary=summary,
    )


def wait_live(run: Run) -> str | None:
    """Wait until the version is live; return the id of a newer live version that
    superseded it instead (another run loads the same dataset), or None."""
    summary = run.summary
    deadline = time.monotonic() + run.engine.config.engine.live_timeout
    wait = 0.2
    run.progress.stage(f"waiting until version {summary.version_id} is live")
    while True:
        versions = run.api(lambda: run.sink.list_versions(run.source.dataset_id))
        newer = newer_live_version(versions, summary.version_id or "")
        if newer is not None:
            log.warning(
                "%s: version %s was superseded by version %s before it went "
                "live: another run loads dataset %s; not pruning",
                run.source.name,
                summary.version_id,
                newer,
                summary.dataset_id,
            )
            return newer
        if any(v.version_id == summary.version_id and v.is_live for v in versions):
            break
        if time.monotonic() + wait > deadline:
            raise RunFailed(
                f"version {summary.version_id} was published but is not live after "
                f"{run.engine.config.engine.live_timeout:.0f} s (engine.live_timeout)"
            )
        if run.stop.wait(wait):
            raise run.halted()
        wait = min(wait * 2, 10.0)
    notify(
        run.plugins,
        "version_live",
        log,
        source=summary.source,
        dataset_id=summary.dataset_id,
        version_id=summary.version_id,
    )
    return None


def prune(run: Run) -> None:
    """Delete versions older than the live one: unreadable ones (left by failed runs or
    a lost answer to a create; never one the ledger says a run is writing) and readable
    ones beyond ``keep_versions``.

    The version is live already, so a failure here is a warning, not a failed run.
    """
    try:
        versions = run.api(lambda: run.sink.list_versions(run.source.dataset_id))
    except MpconnectError as exc:
        log.warning("%s: not pruning: %s", run.source.name, exc)
        return
    live_index = next((i for i, v in enumerate(versions) if v.is_live), None)
    if live_index is None:
        return
    older = versions[live_index + 1 :]
    readable = [v for v in older if v.readable]
    writing = run.ledger.versions_being_written(run.source.dataset_id)
    orphans = [v for v in older if not v.readable and v.version_id not in writing]
    doomed = orphans + readable[run.source.keep_versions - 1 :]
    for version in doomed:
        run.progress.stage(f"pruning version {version.version_id}")
        try:
            run.api(partial(run.sink.delete_version, run.source.dataset_id, version.version_id))
        except ApiError as exc:
            if exc.status != 404:  # 404: already gone (a retried delete)
                log.warning(
                    "%s: could not prune version %s: %s",
                    run.source.name,
                    version.version_id,
                    exc,
                )


def newer_live_version(versions: list[VersionInfo], ours: str) -> str | None:
    """The live version listed before ``ours`` (lists are newest first), if any."""
    newer_live = None
    for version in versions:
        if version.version_id == ours:
            return newer_live
        if version.is_live:
            newer_live = version.version_id
    return None  # ours is not listed: nothing to compare it with
